"""A stack's state file, like Pulumi's self-managed backend: what the local engine manages.

One JSON file per stack records, per resource, its URN, type, inputs, outputs and ID, its
`protect` flag, parent and dependencies. Secret inputs and outputs (the trust policy once it holds
an external ID) are never written: a salted SHA-256 stands in, enough to tell a change.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

STATE_VERSION = 1
SEALED_KEY = "secretSha256"


class StateError(SandboxError):
    """A stack state file that is corrupt, from another stack, or missing its resources."""


@dataclass
class ResourceState:
    """One managed resource as the last operation left it."""

    urn: str
    type: str
    name: str
    custom: bool
    id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool = False
    parent: str | None = None
    dependencies: list[str] = field(default_factory=list)
    retain_on_delete: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain data for the file."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "custom": self.custom,
            "id": self.id,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "protect": self.protect,
            "parent": self.parent,
            "dependencies": list(self.dependencies),
            "retainOnDelete": self.retain_on_delete,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceState:
        """The inverse of to_json; KeyError/TypeError on a malformed entry."""
        return cls(
            urn=str(data["urn"]),
            type=str(data["type"]),
            name=str(data["name"]),
            custom=bool(data["custom"]),
            id=data.get("id"),
            inputs=dict(data["inputs"]),
            outputs=dict(data["outputs"]),
            protect=bool(data.get("protect", False)),
            parent=data.get("parent"),
            dependencies=list(data.get("dependencies") or []),
            retain_on_delete=bool(data.get("retainOnDelete", False)),
        )


@dataclass
class StackState:
    """Every resource a stack manages, in dependency order, plus its last outputs."""

    project: str
    stack: str
    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    resources: dict[str, ResourceState] = field(default_factory=dict)
    pending_deletes: list[ResourceState] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def seal(self, value: Any) -> dict[str, str]:
        """A secret's stand-in: a salted digest that changes when the secret does."""
        text = json.dumps(value, sort_keys=True)
        digest = hashlib.sha256(f"{self.salt}:{text}".encode()).hexdigest()
        return {SEALED_KEY: digest}

    def to_json(self) -> dict[str, Any]:
        """Plain data for the file."""
        return {
            "version": STATE_VERSION,
            "project": self.project,
            "stack": self.stack,
            "salt": self.salt,
            "resources": [r.to_json() for r in self.resources.values()],
            "pendingDeletes": [r.to_json() for r in self.pending_deletes],
            "outputs": self.outputs,
        }


def is_sealed(value: Any) -> bool:
    """True for a secret's stand-in."""
    return isinstance(value, dict) and set(value) == {SEALED_KEY}


def seal_paths(state: StackState, value: dict[str, Any], secret_keys: set[str]) -> dict[str, Any]:
    """`value` with each top-level key in `secret_keys` replaced by its stand-in."""
    return {k: state.seal(v) if k in secret_keys else v for k, v in value.items()}


def default_state_dir(world_file: Path) -> Path:
    """Next to the world file: `<world file's folder>/stacks/`."""
    return world_file.parent / "stacks"


def state_path(state_dir: Path, stack: str) -> Path:
    """`<state dir>/<stack>.json`."""
    return state_dir / f"{stack}.json"


def load_state(path: Path, *, project: str, stack: str) -> StackState:
    """The stack's state; a fresh, empty one when the file does not exist yet.

    A file that is not ours (corrupt, another project's or stack's) is an error naming the file
    and the fix, never silently replaced.
    """
    if not path.exists():
        return StackState(project=project, stack=stack)
    fix = (
        f"restore {path} from a backup, or move it aside and adopt the resources it managed "
        "with the importStream/importRole/importPolicy config keys"
    )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(
            f"stack state {path}: not a readable JSON state file ({exc}); {fix}"
        ) from exc
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise StateError(
            f"stack state {path}: not a version-{STATE_VERSION} state file of this engine; {fix}"
        )
    if data.get("project") != project or data.get("stack") != stack:
        raise StateError(
            f"stack state {path}: belongs to project {data.get('project')!r} stack "
            f"{data.get('stack')!r}, not project {project!r} stack {stack!r}; pass the "
            f"matching --stack, or a --state-dir holding this stack's own state"
        )
    try:
        resources = [ResourceState.from_json(r) for r in data["resources"]]
        pending = [ResourceState.from_json(r) for r in data.get("pendingDeletes") or []]
        state = StackState(
            project=project,
            stack=stack,
            salt=str(data["salt"]),
            resources={r.urn: r for r in resources},
            pending_deletes=pending,
            outputs=dict(data.get("outputs") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"stack state {path}: malformed entry ({exc!r}); {fix}") from exc
    return state


def save_state(path: Path, state: StackState) -> None:
    """Write atomically (a crash leaves the old file or the new one), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state.to_json(), handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(temporary, path)
