"""The two-account moto world: principals, enforcement, restoration, and serving it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws, settings
from moto.core.authorization import ActionAuthenticatorMixin

from provisioning import constants as c
from provisioning.policies import trust_policy
from sandbox import iam_gaps
from sandbox.errors import SandboxError
from sandbox.server import start_server
from sandbox.world import STRANGER_ACCOUNT_ID, Credentials, MotoWorld, moto_world

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STRANGER_ACCOUNT = "210987654321"


@pytest.fixture
def world() -> Iterator[MotoWorld]:
    with moto_world() as w:
        yield w


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


# --- credentials and serialization --------------------------------------------------------


def test_credentials_repr_hides_secrets() -> None:
    credentials = Credentials("AKIAEXAMPLE", "very-secret", "session-token-xyz")

    text = repr(credentials)

    assert "AKIAEXAMPLE" in text
    assert "very-secret" not in text
    assert "session-token-xyz" not in text


def test_world_round_trips_through_json() -> None:
    world = MotoWorld(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:5000",
        customer_account_id="123456789012",
        amplitude_account_id=c.AMPLITUDE_ACCOUNT_ID,
        customer_admin=Credentials("AKIA1", "s1"),
        amplitude=Credentials("ASIA2", "s2", "t2"),
        stranger_admin=Credentials("AKIA3", "s3"),
    )

    document = json.loads(json.dumps(world.to_json()))

    assert MotoWorld.from_json(document) == world


# --- the in-process world -----------------------------------------------------------------


def test_principals_live_in_their_accounts(world: MotoWorld) -> None:
    admin = world.client("sts", world.customer_admin).get_caller_identity()
    amplitude = world.client("sts", world.amplitude).get_caller_identity()

    assert admin["Arn"] == "arn:aws:iam::123456789012:user/customer-admin"
    assert amplitude["Arn"] == f"arn:aws:iam::{c.AMPLITUDE_ACCOUNT_ID}:user/amplitude-exporter"
    assert (world.customer_account_id, world.amplitude_account_id) == (
        "123456789012",
        c.AMPLITUDE_ACCOUNT_ID,
    )


def test_enforcement_is_on(world: MotoWorld) -> None:
    # GIVEN credentials moto has never issued
    unknown = Credentials("AKIAUNKNOWNUNKNOWN00", "nope")

    # WHEN they call IAM THEN moto refuses to authenticate them
    with pytest.raises(ClientError) as exc_info:
        world.client("iam", unknown).list_users()

    assert _code(exc_info) == "InvalidClientTokenId"


def test_new_principal_in_a_third_account(world: MotoWorld) -> None:
    stranger = world.new_principal(STRANGER_ACCOUNT, "mallory")

    identity = world.client("sts", stranger).get_caller_identity()
    with pytest.raises(ClientError) as exc_info:
        world.client("kinesis", stranger).list_streams()

    assert identity["Arn"] == f"arn:aws:iam::{STRANGER_ACCOUNT}:user/mallory"
    assert _code(exc_info) == "AccessDeniedException"  # no policy, no rights


def test_new_principal_gets_its_policy(world: MotoWorld) -> None:
    policy = {
        "Version": c.POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": "kinesis:ListStreams", "Resource": "*"}],
    }
    user = world.new_principal(world.customer_account_id, "lister", policy)

    assert world.client("kinesis", user).list_streams()["StreamNames"] == []


def test_client_honours_region() -> None:
    with moto_world(region="eu-west-1") as world:
        kinesis = world.client("kinesis", world.customer_admin)
        kinesis.create_stream(StreamName="s", ShardCount=1)
        summary = kinesis.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"]

    assert summary["StreamARN"] == "arn:aws:kinesis:eu-west-1:123456789012:stream/s"


def test_world_neither_needs_nor_leaks_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an environment that would send boto3 elsewhere
    hostile = {
        "AWS_PROFILE": "no-such-profile",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "AKIAREALLOOKING00000",
        "MOTO_ACCOUNT_ID": "999999999999",
    }
    for key, value in hostile.items():
        monkeypatch.setenv(key, value)
    before = dict(os.environ)

    # WHEN a world runs
    with moto_world() as world:
        identity = world.client("sts", world.customer_admin).get_caller_identity()

    # THEN it ignored them, and they are back exactly as they were
    assert identity["Account"] == "123456789012"
    assert dict(os.environ) == before


def test_world_restores_moto_on_exit() -> None:
    saved = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)

    with moto_world():
        assert settings.INITIAL_NO_AUTH_ACTION_COUNT == 0
        assert iam_gaps.is_installed()

    assert (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count) == saved
    assert not iam_gaps.is_installed()


def test_plain_mock_aws_afterwards_is_unaffected() -> None:
    with moto_world():
        pass

    # moto's own behaviour: no enforcement, and a missing role may be "assumed"
    with mock_aws():
        sts = boto3.client("sts", region_name="us-east-1")
        response = sts.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/missing", RoleSessionName="plain"
        )

    assert response["AssumedRoleUser"]["Arn"].endswith(":assumed-role/missing/plain")


# --- the served world ---------------------------------------------------------------------


def test_start_server_serves_an_enforced_world_and_stops_cleanly() -> None:
    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT

    with start_server() as served:
        world = served.world
        assert world.endpoint_url == served.url
        assert served.url.startswith("http://127.0.0.1:")
        stranger = world.new_principal(STRANGER_ACCOUNT, "mallory")
        identity = world.client("sts", stranger).get_caller_identity()
        with pytest.raises(ClientError) as exc_info:
            world.client("iam", stranger).list_users()

    assert identity["Account"] == STRANGER_ACCOUNT
    assert _code(exc_info) == "AccessDenied"
    assert saved == settings.INITIAL_NO_AUTH_ACTION_COUNT
    assert not iam_gaps.is_installed()
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url, timeout=2)
    served.stop()  # idempotent


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _served_in_subprocess(
    tmp_path: Path, use_world_file: bool, *, stop: signal.Signals = signal.SIGINT
) -> Iterator[tuple[MotoWorld, list[str]]]:
    world_file = tmp_path / "world.json"
    command = [sys.executable, "-m", "sandbox.server"]
    if use_world_file:
        command += ["--world-file", str(world_file)]
    # Started as a shell starts a background job (`local serve &` in a script): SIGINT ignored.
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip(), process.stdout.readline().strip()]
        document = world_file.read_text() if use_world_file else lines[1]
        yield MotoWorld.from_json(json.loads(document)), lines
    finally:
        process.send_signal(stop)  # serve_forever stops on either, whatever it inherited
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_served_world_stops_on_sigint_or_sigterm_even_started_in_the_background(
    tmp_path: Path, stop: signal.Signals
) -> None:
    # GIVEN a server started with SIGINT ignored, WHEN it gets SIGINT or SIGTERM
    with _served_in_subprocess(tmp_path, use_world_file=True, stop=stop) as (world, lines):
        assert lines[0] == world.endpoint_url
    # THEN it stopped cleanly (exit 0): the context manager waited for it


@pytest.mark.parametrize("use_world_file", [False, True])
def test_a_world_served_by_another_process(tmp_path: Path, use_world_file: bool) -> None:
    with _served_in_subprocess(tmp_path, use_world_file) as (world, lines):
        # GIVEN the world another process serves, rebuilt from its JSON
        assert lines[0] == world.endpoint_url
        if use_world_file:
            assert lines[1] == f"world: {tmp_path / 'world.json'}"
            assert world.customer_admin.secret_access_key not in "\n".join(lines)
            assert (tmp_path / "world.json").stat().st_mode & 0o777 == 0o600

        # WHEN the customer creates a role for Amplitude and a stranger appears
        iam = world.client("iam", world.customer_admin)
        role_arn: Any = iam.create_role(
            RoleName="amplitude",
            AssumeRolePolicyDocument=json.dumps(trust_policy(world.amplitude_account_id)),
        )["Role"]["Arn"]
        policy = {
            "Version": c.POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        }
        # (over HTTP, as the admin of the world's stranger account: no window without auth)
        stranger = world.new_principal(STRANGER_ACCOUNT_ID, "mallory", policy)
        with pytest.raises(SandboxError) as no_admin:
            world.new_principal(STRANGER_ACCOUNT, "mallory")
        assert str(no_admin.value) == (
            f"account {STRANGER_ACCOUNT}: a served world creates principals only in the accounts "
            f"it has an admin of ({STRANGER_ACCOUNT_ID}, {world.customer_account_id}); "
            "use one of them"
        )

        # THEN Amplitude gets in, the stranger does not, and enforcement resumed after the setup
        session = world.client("sts", world.amplitude).assume_role(
            RoleArn=role_arn, RoleSessionName="amplitude"
        )
        assert session["AssumedRoleUser"]["Arn"].endswith(":assumed-role/amplitude/amplitude")
        with pytest.raises(ClientError) as exc_info:
            world.client("sts", stranger).assume_role(RoleArn=role_arn, RoleSessionName="x1")
        assert _code(exc_info) == "AccessDenied"
        with pytest.raises(ClientError) as unauthenticated:
            world.client("iam", Credentials("AKIAUNKNOWNUNKNOWN00", "nope")).list_users()
        assert _code(unauthenticated) == "InvalidClientTokenId"
