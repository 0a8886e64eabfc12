"""Run the unmodified Pulumi program offline under Pulumi's mock runtime and collect its outputs."""

from __future__ import annotations

import contextvars
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

from provisioning import constants as c

PROGRAM_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Registration:
    """One resource the program registered: what it asked for and what came back."""

    type: str
    name: str
    parent_type: str | None
    inputs: Mapping[str, Any]
    id: str | None
    state: Mapping[str, Any]


@dataclass
class ProgramRun:
    """What running the program produced: its resources in order and its stack outputs."""

    resources: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Registration]:
        """Registrations of one resource type, in declaration order."""
        return [r for r in self.resources if r.type == type_]


class _RecordingMocks(pulumi.runtime.Mocks):
    """Forwards to a backend Mocks and records each registration with its parent's type."""

    def __init__(self, backend: pulumi.runtime.Mocks, run: ProgramRun) -> None:
        self._backend = backend
        self._run = run
        self._urn_types: dict[str, str] = {}

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = self._backend.new_resource(args)
        self._run.resources.append(
            Registration(args.typ, args.name, None, dict(args.inputs), resource_id, dict(state))
        )
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return self._backend.call(args)


class _Monitor(pulumi_mocks.MockMonitor):
    """Records each resource's parent type (component resources never reach Mocks.new_resource)."""

    def __init__(self, mocks: _RecordingMocks, run: ProgramRun) -> None:
        super().__init__(mocks)
        self._run = run
        self.parents: dict[str, str | None] = {}
        self.components: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        before = len(self._run.resources)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        parent_type = request.parent.split("::")[-2].split("$")[-1] if request.parent else None
        if len(self._run.resources) > before:
            last = self._run.resources[-1]
            self._run.resources[-1] = Registration(
                last.type, last.name, parent_type, last.inputs, last.id, last.state
            )
        elif request.type != "pulumi:pulumi:Stack" and not request.custom:
            self._run.resources.append(
                Registration(request.type, request.name, parent_type, {}, None, {})
            )
        return response


def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    resolved = _sync_await(output.future())
    secret = bool(_sync_await(output.is_secret()))
    return resolved, secret


def run_program(
    backend: pulumi.runtime.Mocks,
    *,
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: tuple[str, ...] = (),
    program: Path | None = None,
    preview: bool = False,
) -> ProgramRun:
    """Execute `__main__.py` as `pulumi up` would, with `backend` standing in for the engine.

    `config` uses the program's own (unprefixed) keys; provider keys such as `aws:region` keep
    their namespace. Each run has a fresh Pulumi runtime context, so runs never share state.
    """
    run = ProgramRun()
    path = program or PROGRAM_DIR / "__main__.py"

    def execute() -> None:
        monitor = _Monitor(_RecordingMocks(backend, run), run)
        pulumi.runtime.set_mocks(
            monitor.mocks, project=c.PROJECT_NAME, stack=stack, preview=preview, monitor=monitor
        )
        full = {
            (k if ":" in k else f"{c.PROJECT_NAME}:{k}"): _config_text(v)
            for k, v in (config or {}).items()
        }
        secrets = [k if ":" in k else f"{c.PROJECT_NAME}:{k}" for k in secret_keys]
        pulumi.runtime.set_all_config(full, secrets)
        root = pulumi_settings.get_root_resource()
        assert root is not None
        runpy.run_path(str(path), run_name="__main__")
        outputs = getattr(root, "outputs", {})
        for key, value in dict(outputs).items():
            resolved, secret = _resolve(value)
            run.outputs[key] = resolved
            if secret:
                run.secret_outputs.add(key)

    contextvars.Context().run(execute)
    return run


def _config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)
