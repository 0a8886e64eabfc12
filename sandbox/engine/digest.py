"""`pulumi preview --json`'s document for an outcome: Pulumi's PreviewDigest and PreviewStep.

The shape is pulumi/pulumi's `sdk/pkg/display/json.go` (re-exported by `pkg/display/json.go`):
a PreviewDigest holds `config` (secrets blinded), `steps`, `diagnostics`, `duration` (a Go
`time.Duration`: nanoseconds) and `changeSummary`; each PreviewStep holds `op`, `urn`,
`provider`, `oldState`/`newState` (`apitype.ResourceV3`: `urn`, `custom`, `id`, `type`, `inputs`,
`outputs`, `parent`, `protect`, `dependencies`, `provider`), `diffReasons`, `replaceReasons` and
`detailedDiff` (property -> `{kind, inputDiff}`). Empty fields are left out where Go's
`omitempty` leaves them out; `detailedDiff` has no omitempty and is `null` when there is none.
Secret values are shown as `[secret]`, as Pulumi shows them without --show-secrets. Beside
Pulumi's fields the document keeps this engine's `notices` (Amplitude's destination form).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sandbox.engine import deploy
from sandbox.engine.render import SECRET_PLACEHOLDER as SECRET
from sandbox.engine.stack import StackConfig
from sandbox.engine.state import ResourceState, StackState, is_sealed

# Which states a step of each op carries, as Pulumi's engine fills them in.
_OLD_STATE = {
    deploy.SAME,
    deploy.UPDATE,
    deploy.REPLACE,
    deploy.CREATE_REPLACEMENT,
    deploy.DELETE_REPLACED,
    deploy.DELETE,
}
_NEW_STATE = {
    deploy.SAME,
    deploy.CREATE,
    deploy.UPDATE,
    deploy.REPLACE,
    deploy.CREATE_REPLACEMENT,
    deploy.IMPORT,
}


def preview_digest(
    outcome: deploy.Outcome, *, config: StackConfig, duration_ns: int
) -> dict[str, Any]:
    """The PreviewDigest of `outcome` (a preview, an up or a destroy) for the stack `config`."""
    provider = default_provider(config)
    document: dict[str, Any] = {
        "config": blinded_config(config),
        "steps": [_step(step, outcome, provider) for step in outcome.steps],
        "duration": duration_ns,
        "changeSummary": outcome.summary,
        "notices": [n.to_json() for n in outcome.notices],
    }
    diagnostics = [
        {"message": notice.render(), "severity": "warning"} for notice in outcome.notices
    ]
    if diagnostics:
        document["diagnostics"] = diagnostics
    return {key: value for key, value in document.items() if value or key == "notices"}


def blinded_config(config: StackConfig) -> dict[str, str]:
    """`project:key` (provider keys as they are) -> the value as text, secrets `[secret]`."""
    blinded = {}
    for key, value in config.values.items():
        full = key if ":" in key else f"{config.project}:{key}"
        if key in config.secret_keys:
            blinded[full] = SECRET
        else:
            blinded[full] = value if isinstance(value, str) else json.dumps(value)
    return dict(sorted(blinded.items()))


def default_provider(config: StackConfig) -> str:
    """The default AWS provider's reference, `<provider URN>::<ID>`, as Pulumi names it."""
    try:
        aws_version = version("pulumi_aws")
    except PackageNotFoundError:  # pragma: no cover - the sandbox extra installs it
        aws_version = "0.0.0"
    name = f"default_{aws_version.replace('.', '_')}"
    urn = f"urn:pulumi:{config.stack}::{config.project}::pulumi:providers:aws::{name}"
    return f"{urn}::{uuid.uuid5(uuid.NAMESPACE_URL, urn)}"


def _step(step: deploy.Step, outcome: deploy.Outcome, provider: str) -> dict[str, Any]:
    old = _find(outcome.old, step.urn) if step.op in _OLD_STATE else None
    new = _find(outcome.state, step.urn) if step.op in _NEW_STATE else None
    known = new or old
    custom = known.custom if known is not None else True
    document: dict[str, Any] = {"op": step.op, "urn": step.urn}
    if custom:
        document["provider"] = provider
    if old is not None:
        document["oldState"] = _resource(old, provider)
    if new is not None:
        document["newState"] = _resource(new, provider)
    if step.diff_reasons:
        document["diffReasons"] = list(step.diff_reasons)
    if step.replace_reasons:
        document["replaceReasons"] = list(step.replace_reasons)
    document["detailedDiff"] = _detailed_diff(step, old, new)
    return document


def _find(state: StackState | None, urn: str) -> ResourceState | None:
    if state is None:
        return None
    found = state.resources.get(urn)
    if found is None:
        found = next((r for r in state.pending_deletes if r.urn == urn), None)
    return found


def _resource(resource: ResourceState, provider: str) -> dict[str, Any]:
    """An `apitype.ResourceV3`, secrets blinded, empty optional fields left out."""
    document: dict[str, Any] = {"urn": resource.urn, "custom": resource.custom}
    if resource.custom and resource.id:
        document["id"] = resource.id
    document["type"] = resource.type
    optional: dict[str, Any] = {
        "inputs": blind(resource.inputs),
        "outputs": blind(resource.outputs),
        "parent": resource.parent,
        "protect": resource.protect,
        "dependencies": list(resource.dependencies),
        "provider": provider if resource.custom else None,
    }
    document.update({key: value for key, value in optional.items() if value})
    return document


def blind(value: Any) -> Any:
    """`value` with every secret (recorded as a salted digest) shown as `[secret]`."""
    if is_sealed(value):
        return SECRET
    if isinstance(value, Mapping):
        return {key: blind(item) for key, item in value.items()}
    if isinstance(value, list):
        return [blind(item) for item in value]
    return value


def _detailed_diff(
    step: deploy.Step, old: ResourceState | None, new: ResourceState | None
) -> dict[str, dict[str, Any]] | None:
    if not step.diff_reasons:
        return None
    detailed = {}
    for key in step.diff_reasons:
        if old is not None and key not in old.inputs:
            kind = "add"
        elif new is not None and key not in new.inputs:
            kind = "delete"
        else:
            kind = "update"
        if key in step.replace_reasons:
            kind += "-replace"
        detailed[key] = {"kind": kind, "inputDiff": True}
    return detailed
