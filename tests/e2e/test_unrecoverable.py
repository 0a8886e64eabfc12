"""Faults no retry can fix: the push stops, says why and how to fix it, and keeps what it owes.

Policy detached, stream deleted, trust removed, each before a push or in the middle of one. After
the operator's fix, `replay` (or the next push) delivers, and the consumer's membership ends equal
to the snapshot. Everything runs in-process through `sync.cli.main` against the moto world.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from provisioning import constants as c
from provisioning.policies import trust_policy
from sandbox.engine.stack import StackConfig
from sandbox.fault_plan import FaultPlan
from sandbox.faults import faults_installed
from sandbox.pytest_plugin import apply_destination
from sandbox.world import MotoWorld, moto_world
from sync.cli import main
from sync.destination import Destination
from sync.membership_store import MembershipStore, members
from sync.state import StateStore

pytestmark = [pytest.mark.e2e]

REGION = "us-east-1"
COHORT_ID = "unrec1"
USERS = 1_000
USERS_PER_MESSAGE = 2  # 500 records: exactly one full PutRecords call per 1,000 users
RECORDS = USERS // USERS_PER_MESSAGE
STRANGER_ACCOUNT = "111122223333"
EXIT_ERROR = 2


@dataclass(frozen=True)
class Run:
    """One CLI run's exit code and output."""

    code: int
    out: str
    err: str


@dataclass
class Loop:
    """The destination applied to the world, a snapshot, and the CLI acting as either party."""

    world: MotoWorld
    tmp: Path
    capsys: pytest.CaptureFixture[str]
    dest: Destination

    @property
    def state(self) -> Path:
        return self.tmp / "state.duckdb"

    def snapshot(self, name: str, users: range) -> Path:
        path = self.tmp / f"{name}.csv"
        lines = ["user_id,plan", *(f"u{n:05d},p{n % 4}" for n in users)]
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli(self, *args: str, who: str = "amplitude") -> Run:
        creds = self.world.amplitude if who == "amplitude" else self.world.customer_admin
        env = {"AWS_ACCESS_KEY_ID": creds.access_key_id}
        env["AWS_SECRET_ACCESS_KEY"] = creds.secret_access_key
        self.capsys.readouterr()
        with mock.patch.dict(os.environ, env):
            code = main(list(args))
        out, err = self.capsys.readouterr()
        return Run(code, out, err)

    def push(self, snapshot: Path, computed_time: int, *extra: str) -> Run:
        return self.cli(
            "push",
            "--destination",
            str(self.tmp / "destination.json"),
            "--cohort-id",
            COHORT_ID,
            "--cohort-name",
            "Unrecoverable",
            "--state",
            str(self.state),
            "--max-users-per-message",
            str(USERS_PER_MESSAGE),
            "--senders",
            "1",
            "--computed-time",
            str(computed_time),
            *extra,
            str(snapshot),
        )

    def replay(self) -> Run:
        return self.cli(
            "replay",
            "--destination",
            str(self.tmp / "destination.json"),
            "--state",
            str(self.state),
        )

    def pending(self) -> int:
        with StateStore(self.state) as store:
            return store.outbox.counts().pending

    def consumed_members(self) -> dict[str, Any]:
        consumer = self.tmp / "consumer.sqlite"
        run = self.cli(
            "consume",
            "--destination",
            str(self.tmp / "destination.json"),
            "--state",
            str(consumer),
            "--from-start",
            "--until-idle",
            who="customer",
        )
        assert run.code == 0, run.err
        with MembershipStore(consumer) as store:
            return {m.user_id: m.user_properties for m in members(store, COHORT_ID)}

    def iam(self) -> Any:
        return self.world.client("iam", self.world.customer_admin)

    def detach_policy(self) -> None:
        self.iam().detach_role_policy(RoleName=self.dest.role_name, PolicyArn=self.dest.policy_arn)

    def attach_policy(self) -> None:
        self.iam().attach_role_policy(RoleName=self.dest.role_name, PolicyArn=self.dest.policy_arn)

    def trust(self, account_id: str) -> None:
        self.iam().update_assume_role_policy(
            RoleName=self.dest.role_name, PolicyDocument=json.dumps(trust_policy(account_id))
        )

    def delete_stream(self) -> None:
        kinesis = self.world.client("kinesis", self.world.customer_admin)
        kinesis.delete_stream(StreamName=self.dest.stream_name)

    def create_stream(self) -> None:
        kinesis = self.world.client("kinesis", self.world.customer_admin)
        kinesis.create_stream(
            StreamName=self.dest.stream_name, StreamModeDetails={"StreamMode": "ON_DEMAND"}
        )


@pytest.fixture
def loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backoff_in_milliseconds: None
) -> Iterator[Loop]:
    with moto_world(REGION) as world:
        applied = apply_destination(world, StackConfig(stack="unrecoverable"), tmp_path)
        yield Loop(world, tmp_path, capsys, applied.destination)


def expected(users: range) -> dict[str, Any]:
    return {f"u{n:05d}": {"plan": f"p{n % 4}"} for n in users}


def report_line(label: str, count: int) -> str:
    return f"  {label:<18}{count:>12,}"


def faults(spec: str | None) -> AbstractContextManager[object]:
    return nullcontext() if spec is None else faults_installed(FaultPlan.parse(spec))


# --- policy detached -----------------------------------------------------------------------


def access_fix(dest: Destination) -> str:
    return (
        f"AccessDeniedException from PutRecords on {dest.stream_arn}: role lacks "
        f"kinesis:PutRecords on {dest.stream_arn}: re-run `pulumi up` / check the policy attachment"
    )


@pytest.mark.parametrize(
    ("when", "spec", "options", "left"),
    [
        # the second PutRecords call finds the policy gone: the first call's records are in
        ("mid-run", "detach-policy=@2", (), RECORDS),
        # no preflight to catch it: everything staged is refused and kept
        ("before the push", None, ("--skip-preflight",), 2 * RECORDS),
    ],
)
def test_policy_detached_stops_the_push_and_replay_delivers_after_reattaching(
    loop: Loop, when: str, spec: str | None, options: tuple[str, ...], left: int
) -> None:
    # GIVEN a snapshot of 2,000 users (two PutRecords calls), and the policy detached
    users = range(2 * USERS)
    snapshot = loop.snapshot("day1", users)
    if spec is None:
        loop.detach_policy()

    # WHEN the push runs
    with faults(spec):
        run = loop.push(snapshot, 1_700_000_000, *options)

    # THEN it exits non-zero naming the cause and the fix, keeping every unacked record
    assert run.code == EXIT_ERROR, when
    assert run.err.startswith("cohort-sync: error: ")
    assert access_fix(loop.dest) in run.err
    assert loop.pending() == left

    # WHEN the policy is attached again and the outbox replayed
    loop.attach_policy()
    replayed = loop.replay()

    # THEN everything is delivered and the consumer holds exactly the snapshot
    assert replayed.code == 0, replayed.err
    assert report_line("records sent", left) in replayed.out
    assert loop.pending() == 0
    assert loop.consumed_members() == expected(users)


def test_policy_detached_before_the_push_is_caught_by_preflight_and_nothing_is_staged(
    loop: Loop,
) -> None:
    # GIVEN day 1 delivered, then the role's policy detached
    assert loop.push(loop.snapshot("day1", range(USERS)), 1_700_000_000).code == 0
    loop.detach_policy()

    # WHEN day 2 is pushed
    day2 = range(USERS // 2, USERS + USERS // 2)
    run = loop.push(loop.snapshot("day2", day2), 1_700_086_400)

    # THEN preflight fails naming the missing permission and its fix; nothing was staged
    assert run.code == EXIT_ERROR
    assert "cohort-sync: error: preflight failed:" in run.err
    assert f"FAIL iam:SimulatePrincipalPolicy on {loop.dest.role_arn}: AccessDenied" in run.err
    assert f"attach {loop.dest.policy_arn} / re-run `pulumi up`" in run.err
    assert loop.pending() == 0

    # WHEN the policy is attached again and day 2 pushed again
    loop.attach_policy()
    again = loop.push(loop.snapshot("day2", day2), 1_700_086_400)

    # THEN day 2's whole diff goes out and the consumer holds exactly day 2
    assert again.code == 0, again.err
    assert report_line("entered", USERS // 2) in again.out
    assert report_line("exited", USERS // 2) in again.out
    assert loop.consumed_members() == expected(day2)


# --- stream deleted ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "spec"),
    [
        ("mid-run", "delete-stream=@1"),  # staged and sending: the first call finds no stream
        ("before the push", None),  # preflight simulates policy only: it cannot see the stream
    ],
)
def test_stream_deleted_stops_the_push_and_replay_delivers_after_recreating(
    loop: Loop, when: str, spec: str | None
) -> None:
    # GIVEN a snapshot and the stream deleted (before the push, or by its first PutRecords)
    users = range(USERS)
    snapshot = loop.snapshot("day1", users)
    if spec is None:
        loop.delete_stream()

    # WHEN the push runs
    with faults(spec):
        run = loop.push(snapshot, 1_700_000_000)

    # THEN it exits non-zero naming the missing stream and the fix; the outbox keeps it all
    assert run.code == EXIT_ERROR, when
    arn = loop.dest.stream_arn
    assert (
        f"ResourceNotFoundException from PutRecords on {arn}: stream {arn} not found: check the "
        "destination's region and stream name, or re-run `pulumi up`; a re-created stream is "
        "empty, so `replay` what is pending, then push with --resend-all"
    ) in run.err
    assert loop.pending() == RECORDS

    # WHEN the stream is created again and the outbox replayed
    loop.create_stream()
    replayed = loop.replay()

    # THEN everything is delivered and the consumer holds exactly the snapshot
    assert replayed.code == 0, replayed.err
    assert loop.pending() == 0
    assert loop.consumed_members() == expected(users)


# --- trust removed -------------------------------------------------------------------------


def trust_fix(loop: Loop) -> str:
    caller = f"arn:aws:iam::{c.AMPLITUDE_ACCOUNT_ID}:user/amplitude-exporter"
    return (
        f"AccessDenied: caller {caller} cannot assume role {loop.dest.role_arn} (without an "
        "external ID): the role's trust policy must allow this caller sts:AssumeRole, and its "
        "sts:ExternalId condition must match the external ID passed\ncohort-sync: fix: run as "
        "the account the trust policy names (re-run `pulumi up` if it changed), or pass the "
        "destination's --external-id"
    )


def test_trust_removed_before_the_push_stages_nothing_and_the_next_push_delivers(
    loop: Loop,
) -> None:
    # GIVEN day 1 delivered, then the role trusting another account instead of Amplitude's
    assert loop.push(loop.snapshot("day1", range(USERS)), 1_700_000_000).code == 0
    loop.trust(STRANGER_ACCOUNT)

    # WHEN day 2 is pushed
    day2 = range(USERS // 2, USERS + USERS // 2)
    run = loop.push(loop.snapshot("day2", day2), 1_700_086_400)

    # THEN it exits non-zero naming the trust policy and the fix; nothing was staged
    assert run.code == EXIT_ERROR
    assert trust_fix(loop) in run.err
    assert loop.pending() == 0

    # WHEN the trust is restored and day 2 pushed again
    loop.trust(c.AMPLITUDE_ACCOUNT_ID)
    again = loop.push(loop.snapshot("day2", day2), 1_700_086_400)

    # THEN the consumer holds exactly day 2
    assert again.code == 0, again.err
    assert loop.consumed_members() == expected(day2)


def test_trust_removed_mid_run_keeps_the_outbox_until_trust_is_restored(loop: Loop) -> None:
    # GIVEN a push whose session expires before its first PutRecords, and trust then removed
    users = range(USERS)
    with faults("expire-after-s=0"):
        run = loop.push(loop.snapshot("day1", users), 1_700_000_000)
    loop.trust(STRANGER_ACCOUNT)

    # THEN the push exits non-zero naming the expired session and what to check
    assert run.code == EXIT_ERROR
    assert (
        f"ExpiredTokenException from PutRecords on {loop.dest.stream_arn}: the session's "
        "credentials expired and could not be refreshed"
    ) in run.err
    assert "check the role can still be assumed" in run.err
    assert loop.pending() == RECORDS

    # WHEN replay runs while the role still trusts someone else
    refused = loop.replay()

    # THEN it cannot assume the role, says why, and the outbox still holds everything
    assert refused.code == EXIT_ERROR
    assert trust_fix(loop) in refused.err
    assert loop.pending() == RECORDS

    # WHEN the trust is restored and the outbox replayed
    loop.trust(c.AMPLITUDE_ACCOUNT_ID)
    replayed = loop.replay()

    # THEN everything is delivered and the consumer holds exactly the snapshot
    assert replayed.code == 0, replayed.err
    assert loop.pending() == 0
    assert loop.consumed_members() == expected(users)
