"""sync.credentials: the assumed-role session refreshes itself; refusals name role and caller."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sync.credentials import assume_role_session
from sync.errors import PreflightError

ROLE_ARN = "arn:aws:iam::123456789012:role/amplitude-kinesis-cohort"
START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeSts:
    """Issues numbered keys, each valid for `lifetime`, or refuses with `error`."""

    def __init__(self, lifetime: timedelta, clock: list[datetime]) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.requests: list[dict[str, Any]] = []
        self.error: ClientError | None = None

    def assume_role(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        n = len(self.requests)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIAKEY{n}",
                "SecretAccessKey": f"secret{n}",
                "SessionToken": f"token{n}",
                "Expiration": self.clock[0] + self.lifetime,
            }
        }

    def get_caller_identity(self) -> dict[str, str]:
        return {"Arn": "arn:aws:iam::999999999999:user/pusher"}


class FakeBase:
    """A stand-in for the base boto3.Session: only its sts client is used."""

    def __init__(self, sts: FakeSts) -> None:
        self.sts = sts
        self.client_args: list[tuple[str, dict[str, Any]]] = []

    def client(self, service: str, **kwargs: Any) -> FakeSts:
        self.client_args.append((service, kwargs))
        return self.sts


@pytest.mark.unit
def test_credentials_refresh_within_the_margin_before_expiry() -> None:
    # GIVEN keys valid for an hour and a refresh margin of five minutes
    clock = [START]
    sts = FakeSts(timedelta(hours=1), clock)
    base = FakeBase(sts)
    session = assume_role_session(
        base,  # type: ignore[arg-type]
        ROLE_ARN,
        session_name="push",
        external_id="ext-secret",
        region="us-east-1",
        refresh_margin_seconds=300,
        endpoint_url="http://127.0.0.1:5000",
        time_fetcher=lambda: clock[0],
    )
    credentials = session.get_credentials()
    assert credentials.get_frozen_credentials().access_key == "ASIAKEY1"
    # WHEN time nears expiry but is still outside the margin, THEN the same keys are used
    clock[0] = START + timedelta(minutes=54)
    assert credentials.get_frozen_credentials().access_key == "ASIAKEY1"
    # WHEN it enters the margin, THEN the role is assumed again, transparently
    clock[0] = START + timedelta(minutes=56)
    assert credentials.get_frozen_credentials().access_key == "ASIAKEY2"
    # ... and again an hour later: a multi-hour push keeps working
    clock[0] = START + timedelta(minutes=112)
    assert credentials.get_frozen_credentials().access_key == "ASIAKEY3"
    assert sts.requests[0] == {
        "RoleArn": ROLE_ARN,
        "RoleSessionName": "push",
        "DurationSeconds": 3600,
        "ExternalId": "ext-secret",
    }
    assert base.client_args == [
        ("sts", {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:5000"})
    ]
    assert session.region_name == "us-east-1"


@pytest.mark.unit
def test_access_denied_names_role_caller_and_fix_but_not_the_external_id() -> None:
    sts = FakeSts(timedelta(hours=1), [START])
    sts.error = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole"
    )
    with pytest.raises(PreflightError) as info:
        assume_role_session(
            FakeBase(sts),  # type: ignore[arg-type]
            ROLE_ARN,
            session_name="push",
            external_id="ext-secret",
            region="us-east-1",
        )
    assert str(info.value) == (
        "AccessDenied: caller arn:aws:iam::999999999999:user/pusher cannot assume role "
        f"{ROLE_ARN} (with an external ID): the role's trust policy must allow this caller "
        "sts:AssumeRole, and its sts:ExternalId condition must match the external ID passed"
    )
    assert info.value.fix == (
        "run as the account the trust policy names (re-run `pulumi up` if it changed), "
        "or pass the destination's --external-id"
    )
    assert "ext-secret" not in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)


@pytest.mark.unit
def test_an_sts_error_echoing_the_external_id_is_reported_without_it() -> None:
    # GIVEN STS refusing the external ID's pattern, quoting it as AWS validation errors do
    secret = "ext secret#1"
    sts = FakeSts(timedelta(hours=1), [START])
    sts.error = ClientError(
        {
            "Error": {
                "Code": "ValidationError",
                "Message": f"1 validation error detected: Value '{secret}' at 'externalId' "
                "failed to satisfy constraint: Member must satisfy regular expression pattern",
            }
        },
        "AssumeRole",
    )
    # WHEN the role is assumed with it
    with pytest.raises(PreflightError) as info:
        assume_role_session(
            FakeBase(sts),  # type: ignore[arg-type]
            ROLE_ARN,
            session_name="push",
            external_id=secret,
            region="us-east-1",
        )
    # THEN the error names the code, the role and the rule, and nowhere in its chain the value
    assert str(info.value) == (
        f"ValidationError assuming role {ROLE_ARN}: An error occurred (ValidationError) when "
        "calling the AssumeRole operation: 1 validation error detected: Value '[external ID]' "
        "at 'externalId' failed to satisfy constraint: Member must satisfy regular expression "
        "pattern"
    )
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert all(secret not in f"{e!s} {e!r} {getattr(e, 'response', '')}" for e in chain)
    assert isinstance(info.value.__cause__, ClientError)


@pytest.mark.integration
def test_assumed_session_acts_as_the_role_in_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        base = boto3.Session(region_name="us-east-1")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = base.client("iam").create_role(
            RoleName="amplitude-kinesis-cohort", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]
        session = assume_role_session(base, role["Arn"], session_name="push", region="us-east-1")
        identity = session.client("sts").get_caller_identity()
        assert identity["Arn"].endswith(":assumed-role/amplitude-kinesis-cohort/push")
        frozen = session.get_credentials().get_frozen_credentials()
        assert frozen.access_key != "testing"
        assert "testing" not in repr(session)


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere boto3 looks, and one try per call."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.mark.unit
@pytest.mark.usefixtures("no_aws_environment")
@pytest.mark.parametrize(
    ("keys", "message", "fix"),
    [
        # Before: "cannot assume role …: Unable to locate credentials", and no fix.
        (
            {},
            "no AWS credentials found to call sts:AssumeRole with",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        ),
        # Before: "Could not connect to the endpoint URL", no hint to start `local serve`.
        (
            {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"},
            "nothing answers at http://127.0.0.1:9/",
            "start `cohort-sync local serve` first",
        ),
    ],
    ids=["no credentials", "dead endpoint"],
)
def test_an_unanswered_assume_role_names_its_fix(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, str], message: str, fix: str
) -> None:
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(PreflightError) as info:
        assume_role_session(
            boto3.Session(region_name="us-east-1"),
            ROLE_ARN,
            session_name="push",
            region="us-east-1",
            endpoint_url="http://127.0.0.1:9",
        )
    assert str(info.value) == f"cannot assume role {ROLE_ARN}: {message}"
    assert fix in info.value.fix
