"""How the local commands show what they plan and did: plans, applies, interrupts and drift.

One place for the text (`local preview|up|destroy|refresh`, `demo`); `digest.py` holds the JSON
document. Secrets are never shown: their values are masked as `[secret]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from sandbox.engine import deploy
from sandbox.engine.interrupts import Interrupted
from sandbox.engine.runner import ProgramRun, Registration
from sandbox.engine.secrets import unwrap_secrets

SECRET_PLACEHOLDER = "[secret]"

_SYMBOLS = {
    deploy.SAME: " ",
    deploy.CREATE: "+",
    deploy.UPDATE: "~",
    deploy.REPLACE: "+-",
    deploy.CREATE_REPLACEMENT: "++",
    deploy.DELETE_REPLACED: "--",
    deploy.DELETE: "-",
    deploy.IMPORT: "=",
}


def render_steps(outcome: deploy.Outcome) -> list[str]:
    """One line per step (`~ type name  update [diff: …]`), what changes beneath, and a count."""
    created = {r.name: r for r in (outcome.run.resources if outcome.run else [])}
    lines = []
    for step in outcome.steps:
        name = step.urn.rsplit("::", 1)[-1]
        reasons = ""
        if step.replace_reasons:
            reasons = f"  [replace: {', '.join(step.replace_reasons)}]"
        elif step.diff_reasons:
            reasons = f"  [diff: {', '.join(step.diff_reasons)}]"
        lines.append(f"  {_SYMBOLS[step.op]} {step.type}  {name}  {step.op}{reasons}")
        if step.op == deploy.CREATE and name in created:
            # A new resource's inputs in full, secrets masked, as the first preview showed them.
            lines.extend(render_resource(created[name])[1:])
        for key, old, new in step.changes:
            lines.append(f"        {key}: {_short(old)} => {_short(new)}")
    counts = ", ".join(
        f"{n} unchanged" if op == deploy.SAME else f"{n} to {op}"
        for op, n in outcome.summary.items()
    )
    lines.append(f"Plan: {counts or 'nothing to do'}.")
    lines.extend(notice.render() for notice in outcome.notices)
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return str(value)
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


_PAST = {
    deploy.CREATE: "created",
    deploy.UPDATE: "updated",
    deploy.REPLACE: "replaced",
    deploy.DELETE: "deleted",
    deploy.IMPORT: "imported",
}


def render_applied(outcome: deploy.Outcome) -> str:
    """`Applied: …` after an up: what changed in AWS, and protection changed in the state."""
    done = [f"{n} {_PAST.get(op, op)}" for op, n in outcome.summary.items() if op != deploy.SAME]
    for urn, protected in outcome.protect_changes:
        name = urn.rsplit("::", 1)[-1]
        done.append(f"{name} {'protected' if protected else 'unprotected'} (in the state)")
    return (
        f"Applied: {', '.join(done) or 'no changes'} "
        f"({len(outcome.state.resources)} resources in the stack)."
    )


def render_destroyed(outcome: deploy.Outcome) -> str:
    """`Destroyed: …` after a destroy: how many were deleted, how many the state still holds."""
    deleted = outcome.summary.get(deploy.DELETE, 0)
    return (
        f"Destroyed: {deleted} deleted ({len(outcome.state.resources)} resources left in "
        "the stack)."
    )


def render_interrupted(exc: Interrupted, state_file: Path | None) -> list[str]:
    """What an interrupted `up` or `destroy` did not do, and how to finish it."""
    where = f"in {state_file}" if state_file is not None else "in memory (embedded moto)"
    lines = [
        f"Interrupted ({exc.signal_name}): stopped after the steps under way; what was done is "
        f"recorded {where}.",
    ]
    if exc.left:
        lines.append("Left undone:")
        for op, type_, urn in exc.left:
            lines.append(f"  {_SYMBOLS[op]} {type_}  {urn.rsplit('::', 1)[-1]}  {op}")
    lines.append(f"Run `cohort-sync local {exc.command}` again to finish.")
    return lines


def interrupted_json(exc: Interrupted, state_file: Path | None) -> dict[str, Any]:
    """An interrupted `up` or `destroy` with --json: the error, what is left, and the fix."""
    lines = render_interrupted(exc, state_file)
    return {
        "steps": [],
        "changeSummary": {},
        "notices": [],
        "error": lines[0],
        "left": [{"op": op, "urn": urn} for op, _, urn in exc.left],
        "fix": lines[-1],
    }


def render_drift(drifts: list[deploy.Drift]) -> list[str]:
    """Field by field: what the state recorded and what AWS holds now."""
    if not drifts:
        return ["No drift: every resource matches the recorded state."]
    lines = []
    for drift in drifts:
        name = drift.urn.rsplit("::", 1)[-1]
        if drift.gone:
            lines.append(f"  ! {drift.type}  {name}: deleted outside the engine (up re-creates it)")
            continue
        lines.append(f"  ~ {drift.type}  {name}: changed outside the engine")
        for key, old, new in drift.changes:
            lines.append(f"        {key}: recorded {_short(old)}")
            lines.append(f"        {' ' * len(key)}  actual   {_short(new)}")
    lines.append(
        "The state now records what AWS holds; `local up` puts back what the program declares."
    )
    return lines


def _render_value(value: Any, indent: str) -> str:
    if isinstance(value, pulumi.FileArchive):
        value = f"FileArchive({value.path})"
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return text.replace("\n", "\n" + indent)


def _mask(value: Any, secret_paths: set[str], path: str = "") -> Any:
    if path in secret_paths:
        return SECRET_PLACEHOLDER
    if isinstance(value, dict):
        return {k: _mask(v, secret_paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    return value


def render_resource(registration: Registration) -> list[str]:
    """Lines for one resource: `+ type name` and its inputs, secrets masked."""
    depth = (
        1 if registration.parent_type and registration.parent_type != "pulumi:pulumi:Stack" else 0
    )
    pad = "    " * depth
    lines = [f"{pad}+ {registration.type}  {registration.name}"]
    plain, secret_paths = unwrap_secrets(dict(registration.inputs))
    masked = _mask(plain, secret_paths)
    if not masked:
        return lines
    width = max(len(key) for key in masked)
    for key in sorted(masked):
        prefix = f"{pad}      {key.ljust(width)} = "
        lines.append(prefix + _render_value(masked[key], " " * len(prefix)))
    return lines


def render_plan(run: ProgramRun) -> str:
    """The whole plan, resources in declaration order, ending with a count like `pulumi preview`."""
    lines: list[str] = []
    for registration in run.resources:
        lines.extend(render_resource(registration))
        lines.append("")
    lines.append(f"Plan: {len(run.resources)} to create.")
    return "\n".join(lines)


def render_outputs(outputs: dict[str, Any], secret_keys: set[str]) -> str:
    """Stack outputs as `pulumi stack output` shows them, secrets masked."""
    width = max((len(k) for k in outputs), default=0)
    lines = []
    for key in sorted(outputs):
        value = SECRET_PLACEHOLDER if key in secret_keys else outputs[key]
        prefix = f"    {key.ljust(width)} : "
        lines.append(prefix + _render_value(value, " " * len(prefix)))
    return "\n".join(lines)
