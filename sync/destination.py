"""The destination the sync delivers to, read from the stack outputs `pulumi up` printed."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning.constants import (
    FORM_AWS_REGION,
    FORM_DISPLAY_NAME,
    FORM_ROLE_ARN,
    FORM_STREAM_NAME,
    MANAGED_POLICY_ARN_PATTERN,
    OUTPUT_DESTINATION,
    OUTPUT_EXTERNAL_ID,
    OUTPUT_POLICY_ARN,
    OUTPUT_REGION,
    OUTPUT_ROLE_ARN,
    OUTPUT_ROLE_NAME,
    OUTPUT_STREAM_ARN,
    OUTPUT_STREAM_NAME,
    ROLE_NAME_PATTERN,
    STREAM_NAME_PATTERN,
)
from sync.errors import DestinationError

SECRET_PLACEHOLDER = "[secret]"  # what pulumi prints for a secret without --show-secrets
_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:kinesis:(?P<region>[a-z0-9-]+):\d{12}:stream/(?P<name>"
    + STREAM_NAME_PATTERN
    + ")"
)
_ROLE_ARN = re.compile(
    r"arn:aws[a-z-]*:iam::\d{12}:role/(?:[\x21-\x7e]*/)?(?P<name>" + ROLE_NAME_PATTERN + ")"
)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_REQUIRED = (
    OUTPUT_STREAM_NAME,
    OUTPUT_STREAM_ARN,
    OUTPUT_REGION,
    OUTPUT_ROLE_ARN,
    OUTPUT_ROLE_NAME,
    OUTPUT_POLICY_ARN,
)
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Destination:
    """Where Amplitude (and this engine) delivers: the stream, the role to assume, the form."""

    stream_name: str
    stream_arn: str
    region: str
    role_arn: str
    role_name: str
    policy_arn: str
    display_name: str
    external_id: str | None = field(default=None, repr=False)


def load_destination(path: Path | str) -> Destination:
    """Read and validate `pulumi stack output --json --show-secrets`; report every problem."""
    path = Path(path)
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DestinationError(
            f"{path}: no such file; export it with `pulumi stack output --json --show-secrets "
            f"> {path}` or `cohort-sync local up --out {path}`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DestinationError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(outputs, Mapping):
        raise DestinationError(f"{path}: {type(outputs).__name__}: must be a JSON object")
    problems = _problems(outputs)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise DestinationError(f"{path}: not a usable destination ({len(problems)}):\n{lines}")
    form = outputs[OUTPUT_DESTINATION]
    return Destination(
        stream_name=outputs[OUTPUT_STREAM_NAME],
        stream_arn=outputs[OUTPUT_STREAM_ARN],
        region=outputs[OUTPUT_REGION],
        role_arn=outputs[OUTPUT_ROLE_ARN],
        role_name=outputs[OUTPUT_ROLE_NAME],
        policy_arn=outputs[OUTPUT_POLICY_ARN],
        display_name=form[FORM_DISPLAY_NAME],
        external_id=outputs.get(OUTPUT_EXTERNAL_ID) or None,
    )


def _problems(outputs: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []

    def string(key: str, value: Any, *, secret: bool = False) -> str | None:
        if value == SECRET_PLACEHOLDER:
            problems.append(
                f"{key} {SECRET_PLACEHOLDER!r}: pulumi hid a secret; "
                "re-export with `pulumi stack output --json --show-secrets`"
            )
            return None
        if not isinstance(value, str) or not value:
            shown = f"({type(value).__name__})" if secret else _shown(value)
            problems.append(f"{key} {shown}: must be a non-empty string")
            return None
        return value

    values: dict[str, str | None] = {}
    for key in _REQUIRED:
        if key not in outputs:
            problems.append(f"{key}: missing")
            values[key] = None
        else:
            values[key] = string(key, outputs[key])
    if OUTPUT_EXTERNAL_ID in outputs and outputs[OUTPUT_EXTERNAL_ID] is not None:
        string(OUTPUT_EXTERNAL_ID, outputs[OUTPUT_EXTERNAL_ID], secret=True)
    stream_name, region = values[OUTPUT_STREAM_NAME], values[OUTPUT_REGION]
    role_name = values[OUTPUT_ROLE_NAME]
    if region is not None and not _REGION.fullmatch(region):
        problems.append(f"{OUTPUT_REGION} {region!r}: not an AWS region such as 'us-east-1'")
    stream_arn = values[OUTPUT_STREAM_ARN]
    if stream_arn is not None:
        match = _STREAM_ARN.fullmatch(stream_arn)
        if match is None:
            problems.append(
                f"{OUTPUT_STREAM_ARN} {stream_arn!r}: not a Kinesis stream ARN "
                "(arn:aws:kinesis:<region>:<account>:stream/<name>)"
            )
        else:
            if region is not None and match["region"] != region:
                problems.append(
                    f"{OUTPUT_STREAM_ARN} {stream_arn!r}: its region {match['region']!r} "
                    f"differs from {OUTPUT_REGION} {region!r}"
                )
            if stream_name is not None and match["name"] != stream_name:
                problems.append(
                    f"{OUTPUT_STREAM_ARN} {stream_arn!r}: names stream {match['name']!r}, "
                    f"not {OUTPUT_STREAM_NAME} {stream_name!r}"
                )
    role_arn = values[OUTPUT_ROLE_ARN]
    if role_arn is not None:
        match = _ROLE_ARN.fullmatch(role_arn)
        if match is None:
            problems.append(
                f"{OUTPUT_ROLE_ARN} {role_arn!r}: not an IAM role ARN "
                "(arn:aws:iam::<account>:role/<name>)"
            )
        elif role_name is not None and match["name"] != role_name:
            problems.append(
                f"{OUTPUT_ROLE_ARN} {role_arn!r}: names role {match['name']!r}, "
                f"not {OUTPUT_ROLE_NAME} {role_name!r}"
            )
    policy_arn = values[OUTPUT_POLICY_ARN]
    if policy_arn is not None and not re.fullmatch(MANAGED_POLICY_ARN_PATTERN, policy_arn):
        problems.append(
            f"{OUTPUT_POLICY_ARN} {policy_arn!r}: not a managed policy ARN "
            "(arn:aws:iam::<account>:policy/<name>)"
        )
    problems.extend(_form_problems(outputs, stream_name, region, role_arn))
    return problems


def _form_problems(
    outputs: Mapping[str, Any], stream_name: str | None, region: str | None, role_arn: str | None
) -> list[str]:
    if OUTPUT_DESTINATION not in outputs:
        return [f"{OUTPUT_DESTINATION}: missing"]
    form = outputs[OUTPUT_DESTINATION]
    if not isinstance(form, Mapping):
        return [
            f"{OUTPUT_DESTINATION} {_shown(form)}: must be an object of Amplitude's form fields"
        ]
    problems: list[str] = []
    expected = {
        FORM_STREAM_NAME: (OUTPUT_STREAM_NAME, stream_name),
        FORM_AWS_REGION: (OUTPUT_REGION, region),
        FORM_ROLE_ARN: (OUTPUT_ROLE_ARN, role_arn),
    }
    for key in (FORM_DISPLAY_NAME, *expected):
        name = f"{OUTPUT_DESTINATION}.{key}"
        value = form.get(key)
        if key not in form:
            problems.append(f"{name}: missing")
        elif not isinstance(value, str) or not value:
            problems.append(f"{name} {_shown(value)}: must be a non-empty string")
        elif key in expected:
            top_key, top_value = expected[key]
            if top_value is not None and value != top_value:
                problems.append(f"{name} {value!r}: differs from {top_key} {top_value!r}")
    return problems


def _shown(value: Any) -> str:
    """A JSON value as the message shows it: `null` reads as not set, never Python's None."""
    return "not set (null)" if value is None else repr(value)


def export_from_pulumi(stack: str | None, out: Path | str, runner: Runner = subprocess.run) -> Path:
    """Write `pulumi stack output --json --show-secrets` to `out`, validated; return `out`."""
    out = Path(out)
    command = ["pulumi", "stack", "output", "--json", "--show-secrets"]
    if stack:
        command += ["--stack", stack]
    try:
        result = runner(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DestinationError(
            "pulumi: not found on PATH; install the Pulumi CLI, or write the destination file "
            f"without it: `cohort-sync local up --out {out}`"
        ) from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()
        raise DestinationError(
            f"`{' '.join(command)}` exited {result.returncode}: {detail or 'no output'}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)  # --show-secrets output may hold the external ID
    out.write_text(result.stdout, encoding="utf-8")
    load_destination(out)  # fail now, naming every problem, rather than at push time
    return out
