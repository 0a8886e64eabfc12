"""Preview without an account: placeholder IDs and ARNs, and a Terraform-style rendering."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from sandbox.engine.invokes import answer_invoke
from sandbox.engine.registry import handler_for
from sandbox.engine.runner import ProgramRun, Registration
from sandbox.engine.secrets import unwrap_secrets

ACCOUNT_PLACEHOLDER = "<account>"
SECRET_PLACEHOLDER = "[secret]"


class PlanMocks(pulumi.runtime.Mocks):
    """Answers every registration with placeholders, as a preview shows values known after apply.

    The placeholders are the stateful engine's own (each handler's `predict`), in account
    `<account>`: one place for what a resource's name and ARN will be.
    """

    def __init__(self, region: str) -> None:
        self._region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Echo the inputs and fill in the name and ARN the resource would get."""
        inputs = dict(args.inputs)
        if not args.custom:
            return f"{args.name}-id", inputs
        handler = handler_for(args.typ, args.name)
        return f"{args.name}-id", handler.predict(
            ACCOUNT_PLACEHOLDER, self._region, args.name, inputs
        )

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Provider functions answer from the configured region."""
        answer = answer_invoke(
            args.token, dict(args.args), region=self._region, account=ACCOUNT_PLACEHOLDER
        )
        return answer, []


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
