"""sync.destination: stack outputs read, every problem named; pulumi export with and without CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from sync.destination import Destination, export_from_pulumi, load_destination
from sync.errors import DestinationError

ROLE_ARN = "arn:aws:iam::123456789012:role/amplitude-kinesis-cohort"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/amplitude-cohorts"


def outputs(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        c.OUTPUT_STREAM_NAME: "amplitude-cohorts",
        c.OUTPUT_STREAM_ARN: STREAM_ARN,
        c.OUTPUT_REGION: "us-east-1",
        c.OUTPUT_ROLE_ARN: ROLE_ARN,
        c.OUTPUT_ROLE_NAME: "amplitude-kinesis-cohort",
        c.OUTPUT_POLICY_ARN: "arn:aws:iam::123456789012:policy/amplitude-kinesis-cohort-write",
        c.OUTPUT_DESTINATION: {
            c.FORM_DISPLAY_NAME: "Kinesis cohorts (dev)",
            c.FORM_STREAM_NAME: "amplitude-cohorts",
            c.FORM_AWS_REGION: "us-east-1",
            c.FORM_ROLE_ARN: ROLE_ARN,
        },
        c.OUTPUT_EXTERNAL_ID: "ext-secret-1234",
    }
    base.update(overrides)
    return base


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "destination.json"
    path.write_text(json.dumps(data))
    return path


def test_loads_a_complete_destination_and_hides_the_external_id(tmp_path: Path) -> None:
    destination = load_destination(write(tmp_path, outputs()))
    assert destination == Destination(
        stream_name="amplitude-cohorts",
        stream_arn=STREAM_ARN,
        region="us-east-1",
        role_arn=ROLE_ARN,
        role_name="amplitude-kinesis-cohort",
        policy_arn="arn:aws:iam::123456789012:policy/amplitude-kinesis-cohort-write",
        display_name="Kinesis cohorts (dev)",
        external_id="ext-secret-1234",
    )
    assert "ext-secret-1234" not in repr(destination)


def test_external_id_is_optional(tmp_path: Path) -> None:
    data = outputs()
    del data[c.OUTPUT_EXTERNAL_ID]
    assert load_destination(write(tmp_path, data)).external_id is None


def test_reports_every_problem_at_once(tmp_path: Path) -> None:
    # GIVEN outputs with a missing key, a bad ARN, a region mismatch and a hidden secret
    data = outputs(
        **{
            c.OUTPUT_STREAM_ARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/amplitude-cohorts",
            c.OUTPUT_ROLE_ARN: "not-an-arn",
            c.OUTPUT_EXTERNAL_ID: "[secret]",
        }
    )
    del data[c.OUTPUT_POLICY_ARN]
    path = write(tmp_path, data)
    # WHEN loaded, THEN one error lists each problem with key, value and rule
    with pytest.raises(DestinationError) as info:
        load_destination(path)
    assert str(info.value) == "\n".join(
        [
            f"{path}: not a usable destination (5):",
            "  - policyArn: missing",
            "  - externalId '[secret]': pulumi hid a secret; re-export with "
            "`pulumi stack output --json --show-secrets`",
            "  - streamArn 'arn:aws:kinesis:eu-west-1:123456789012:stream/amplitude-cohorts': "
            "its region 'eu-west-1' differs from region 'us-east-1'",
            "  - roleArn 'not-an-arn': not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
            "  - destination.role_arn "
            "'arn:aws:iam::123456789012:role/amplitude-kinesis-cohort': "
            "differs from roleArn 'not-an-arn'",
        ]
    )


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {c.OUTPUT_STREAM_NAME: "other"},
            "names stream 'amplitude-cohorts', not streamName 'other'",
        ),
        (
            {c.OUTPUT_ROLE_NAME: "other"},
            "names role 'amplitude-kinesis-cohort', not roleName 'other'",
        ),
        ({c.OUTPUT_POLICY_ARN: "arn:aws:iam::1:policy/x"}, "not a managed policy ARN"),
        ({c.OUTPUT_REGION: "mars"}, "region 'mars': not an AWS region"),
        ({c.OUTPUT_STREAM_ARN: "arn:aws:s3:::bucket"}, "not a Kinesis stream ARN"),
        ({c.OUTPUT_DESTINATION: {}}, "destination.display_name: missing"),
        ({c.OUTPUT_EXTERNAL_ID: 42}, "externalId (int): must be a non-empty string"),
    ],
)
def test_each_rule(tmp_path: Path, overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(DestinationError, match="not a usable destination") as info:
        load_destination(write(tmp_path, outputs(**overrides)))
    assert problem in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DestinationError) as info:
        load_destination(missing)
    assert str(info.value) == (
        f"{missing}: no such file; export it with `pulumi stack output --json --show-secrets "
        f"> {missing}` or `cohort-sync local up --out {missing}`"
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DestinationError, match=r"bad.json: not readable JSON"):
        load_destination(bad)
    with pytest.raises(DestinationError, match=r"list: must be a JSON object"):
        load_destination(write(tmp_path, []))


def test_export_runs_pulumi_and_validates(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(outputs()), stderr="")

    out = export_from_pulumi("dev", tmp_path / "out" / "destination.json", runner=runner)
    assert seen == [["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", "dev"]]
    assert load_destination(out).stream_arn == STREAM_ARN
    assert out.stat().st_mode & 0o077 == 0


def test_export_reports_pulumi_failure(tmp_path: Path) -> None:
    def runner(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 255, stdout="", stderr="error: no stack\n")

    with pytest.raises(DestinationError) as info:
        export_from_pulumi(None, tmp_path / "d.json", runner=runner)
    assert str(info.value) == (
        "`pulumi stack output --json --show-secrets` exited 255: error: no stack"
    )


@pytest.mark.integration  # runs a subprocess
def test_export_without_pulumi_on_path_points_to_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no pulumi binary
    out = tmp_path / "d.json"
    with pytest.raises(DestinationError) as info:
        export_from_pulumi(None, out)
    assert str(info.value) == (
        "pulumi: not found on PATH; install the Pulumi CLI, or write the destination file "
        f"without it: `cohort-sync local up --out {out}`"
    )
