"""`cohort-sync local serve` and `local up` as a customer runs them: separate processes, HTTP."""

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioning import constants as c
from sandbox.world import MotoWorld

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def cohort_sync(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def local_serve(world_file: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """`cohort-sync local serve` on a free port, stopped when the block ends."""
    command = ["local", "serve", "--port", "0", "--world-file", str(world_file), *extra]
    server = subprocess.Popen(
        [sys.executable, "-m", "sync", *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    world_file = tmp_path / "world.json"
    with local_serve(world_file) as server:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else url
        assert server.stdout.readline().strip() == f"world: {world_file}"
        yield url, world_file


def test_local_up_against_local_serve(served: tuple[str, Path], tmp_path: Path) -> None:
    url, world_file = served
    out = tmp_path / "destination.json"

    result = cohort_sync(
        "local",
        "up",
        "--stack",
        "example",
        "--endpoint-url",
        url,
        "--world-file",
        str(world_file),
        "--out",
        str(out),
        "--config",
        "externalId=ext-0042",
    )

    assert result.returncode == 0, result.stderr
    assert "Plan: 5 to create." in result.stdout
    assert "Applied: 5 created (5 resources in the stack)." in result.stdout
    assert "  Stream Name  amplitude-cohorts-example" in result.stdout
    assert result.stdout.count("  PASS  ") == 7 and "FAIL" not in result.stdout
    assert "ext-0042" not in result.stdout  # the external ID only goes to the 0600 file
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    outputs = json.loads(out.read_text())
    assert outputs["externalId"] == "ext-0042"

    # THEN over HTTP, from this process, the same checks hold
    world = MotoWorld.from_json({**json.loads(world_file.read_text()), "endpoint_url": url})
    sts = world.client("sts", world.amplitude)
    with pytest.raises(ClientError) as caught:
        sts.assume_role(RoleArn=outputs["roleArn"], RoleSessionName="no-external-id")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    creds = sts.assume_role(
        RoleArn=outputs["roleArn"], RoleSessionName="amplitude", ExternalId="ext-0042"
    )["Credentials"]
    kinesis = boto3.client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert kinesis.put_record(StreamARN=outputs["streamArn"], Data=b"{}", PartitionKey="k")
    with pytest.raises(ClientError) as caught:
        kinesis.describe_stream(StreamName="amplitude-cohorts-example")
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_local_up_runs_any_number_of_times_into_one_served_world(
    served: tuple[str, Path],
) -> None:
    # GIVEN one served world (in another process, so the proof's principals go over HTTP)
    url, world_file = served
    target = ["--endpoint-url", url, "--world-file", str(world_file)]

    # WHEN one stack is applied twice and a second stack beside it
    first = cohort_sync("local", "up", *target)
    again = cohort_sync("local", "up", *target)
    other = cohort_sync(
        "local",
        "up",
        *target,
        "--stack",
        "example",
        "--config",
        "streamName=s2",
        "--config",
        "roleName=r2",
    )

    # THEN every run proves its role, and each stack keeps its own state beside the world file
    # (that the second run changes nothing is tests/sandbox/test_deploy.py's, down to AWS calls)
    for result in (first, again, other):
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("  PASS  ") == 6 and "FAIL" not in result.stdout
    assert (world_file.parent / "stacks" / "example.json").exists()


def test_local_up_bad_config_creates_nothing(served: tuple[str, Path]) -> None:
    # GIVEN a served world, which outlives the command (an embedded one would die with it)
    url, world_file = served
    target = ["--endpoint-url", url, "--world-file", str(world_file)]

    # WHEN local up runs with two invalid keys beside valid names
    names = ["--config", "streamName=never-made", "--config", "roleName=never-made"]
    invalid = ["--config", "retentionHours=1", "--config", "shardCount=2"]
    result = cohort_sync("local", "up", *target, *names, *invalid)

    # THEN it names both problems, exits 2, and the world holds no stream, role or stack state
    assert result.returncode == 2
    assert "invalid stack configuration (2 problems)" in result.stderr
    assert "retentionHours 1: must be between 24 and 8760" in result.stderr
    world = MotoWorld.from_json({**json.loads(world_file.read_text()), "endpoint_url": url})
    kinesis = world.client("kinesis", world.customer_admin)
    assert kinesis.list_streams()["StreamNames"] == []
    roles = world.client("iam", world.customer_admin).list_roles()["Roles"]
    assert "never-made" not in {role["RoleName"] for role in roles}
    assert not (world_file.parent / "stacks").exists()


def test_local_up_honours_aws_endpoint_url(tmp_path: Path) -> None:
    missing = tmp_path / "world.json"

    result = cohort_sync(
        "local",
        "up",
        "--world-file",
        str(missing),
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )

    assert result.returncode == 2
    assert f"--world-file {missing}: not found" in result.stderr
    assert "for the server at http://127.0.0.1:9" in result.stderr


def test_local_serve_with_faults_throttles_as_planned(tmp_path: Path) -> None:
    world_file = tmp_path / "world.json"
    with local_serve(world_file, "--faults", "throttle=@1-,seed=3") as server:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "faults: seed=3,throttle=@1-"
        url = server.stdout.readline().strip()
        server.stdout.readline()  # where the world was written
        world = MotoWorld.from_json({**json.loads(world_file.read_text()), "endpoint_url": url})
        kinesis = world.client("kinesis", world.customer_admin)
        kinesis.create_stream(StreamName="s", ShardCount=1)

        with pytest.raises(ClientError) as caught:
            kinesis.put_records(StreamName="s", Records=[{"Data": b"{}", "PartitionKey": "k"}])

        assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"


def test_concurrent_ups_on_one_stack_one_applies_the_others_are_refused(
    served: tuple[str, Path],
) -> None:
    # GIVEN a stack applied to a served world
    url, world_file = served
    target = ["--endpoint-url", url, "--world-file", str(world_file)]
    assert cohort_sync("local", "up", *target).returncode == 0

    # WHEN three `local up` with three different changes start at once
    changes = ["retentionHours=48", "maxSessionSeconds=7200", "externalId=ext-concurrent"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "sync", "local", "up", *target, "--config", change],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for change in changes
    ]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]

    # THEN one applies; the others are refused naming the holder and the lock file, no traceback
    # (on a loaded machine a run may start only after the holder ended: then it applies too,
    # after it, which is no lost update; at least one of the three overlaps the holder)
    applied = [out for code, out, _ in results if code == 0]
    refused = [err for code, _, err in results if code != 0]
    assert applied and refused and len(applied) + len(refused) == 3, results
    assert all("Applied: 1 updated" in out for out in applied), applied
    lock_file = world_file.parent / "stacks" / "dev.lock"
    for err in refused:
        assert f"stack lock {lock_file}: the stack is locked by `cohort-sync local up " in err
        assert "Traceback" not in err
    assert not lock_file.exists()
    # and nothing was deleted or lost: the stream is there and AWS holds what the state records
    world = MotoWorld.from_json({**json.loads(world_file.read_text()), "endpoint_url": url})
    kinesis = world.client("kinesis", world.customer_admin)
    assert kinesis.describe_stream_summary(StreamName=c.DEFAULT_STREAM_NAME)
    drift = cohort_sync("local", "refresh", *target)
    assert drift.returncode == 0, drift.stderr
    assert "No drift" in drift.stdout


def _sigint_once_planned(command: str, *args: str) -> tuple[int, str, str]:
    """Run `cohort-sync local <command>` as a process and SIGINT it on its `Plan:` line (the
    changes start right after); its exit status, stdout and stderr."""
    run = subprocess.Popen(
        [sys.executable, "-m", "sync", "local", command, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("Plan:"):
            run.send_signal(signal.SIGINT)
            break
    out, err = run.communicate(timeout=120)
    return run.returncode, out, err


def test_sigint_during_local_up_stops_cleanly_and_the_next_up_finishes(
    served: tuple[str, Path],
) -> None:
    # GIVEN `local up` of a new stack in a served world, interrupted as the apply starts
    url, world_file = served
    target = ["--endpoint-url", url, "--world-file", str(world_file)]
    status, out, err = _sigint_once_planned("up", *target)

    # THEN it exits 130 saying what is left, with no traceback and no "Applied"
    assert status == 130, out + err
    assert "Interrupted (SIGINT): stopped after the steps under way" in err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert "Applied" not in out
    # and the next `local up` finishes the job, a third changes nothing
    finished = cohort_sync("local", "up", *target)
    assert finished.returncode == 0, finished.stderr
    assert "(5 resources in the stack)" in finished.stdout
    _, _, again = cohort_sync("local", "up", *target).stdout.partition("Applied: ")
    assert again.startswith("no changes (5 resources in the stack).")


def test_sigint_during_local_destroy_records_what_is_left_and_the_next_destroy_finishes(
    served: tuple[str, Path],
) -> None:
    # GIVEN an unprotected stack in a served world, and `local destroy` interrupted once its
    # plan is printed (the deletes start right after)
    url, world_file = served
    target = ["--endpoint-url", url, "--world-file", str(world_file)]
    target += ["--config", "protectStream=false"]
    assert cohort_sync("local", "up", *target).returncode == 0
    status, out, err = _sigint_once_planned("destroy", *target)

    # THEN it exits 130 naming what is left, with no traceback, and nothing claims it finished
    assert status == 130, out + err
    assert "Run `cohort-sync local destroy` again to finish." in err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert "Destroyed" not in out
    left = [line for line in err.splitlines() if line.startswith("  - ")]
    assert left, err  # the signal came before the last delete could finish
    # and the next `local destroy` deletes exactly those; AWS keeps nothing of the stack
    finished = cohort_sync("local", "destroy", *target)
    assert finished.returncode == 0, finished.stderr
    assert f"Destroyed: {len(left)} deleted (0 resources left in the stack)." in finished.stdout
    world = MotoWorld.from_json({**json.loads(world_file.read_text()), "endpoint_url": url})
    assert world.client("kinesis", world.customer_admin).list_streams()["StreamNames"] == []
