"""sync.push through the harness: the applied program on moto, Amplitude's assumed role, IAM on.

Records are read back from the stream with the customer's own credentials and decoded; the
snapshot files go through the real loader, the CLI through `sync.cli.main`.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning import constants as c
from sandbox.engine.stack import StackConfig
from sandbox.pytest_plugin import apply_destination
from sandbox.streams import read_records
from sandbox.world import MotoWorld, moto_world
from sync.cli import main
from sync.commands import run_preflight
from sync.contract import USER_ID, USER_PROPERTIES, problems_of
from sync.credentials import assume_role_session
from sync.destination import Destination
from sync.limits import MAX_RECORD_BYTES
from sync.mass_exit import ExitGuard
from sync.push import DeliveryOptions, PushReport, PushRequest, run_push
from sync.state import StateStore

pytestmark = pytest.mark.integration

REGION = "us-east-1"
COHORT_ID = "gs72ns"
COHORT_NAME = "Test Cohort"
T1, T2 = 1_700_000_000, 1_700_086_400

Users = dict[str, dict[str, str]]  # user_id -> properties (CSV cells are text)


@dataclass(frozen=True)
class Record:
    """One record as read back from the stream."""

    partition_key: str
    data: bytes

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.data)
        return loaded


@dataclass(frozen=True)
class Env:
    """A two-account moto world with the program applied and its destination file written."""

    world: MotoWorld
    destination: Destination
    destination_file: Path
    outputs: dict[str, Any]
    tmp: Path

    def connect(self) -> boto3.Session:
        """Amplitude's exporter assuming the customer's role, as a push does."""
        return assume_role_session(
            self.world.amplitude.session(REGION),
            self.destination.role_arn,
            session_name="amplitude-cohort-sync",
            region=REGION,
        )

    def read_stream(self) -> list[Record]:
        """Every record of every shard, read with the customer's credentials."""
        kinesis = self.world.client("kinesis", self.world.customer_admin)
        records = read_records(kinesis, self.destination.stream_name)
        return [Record(r["PartitionKey"], r["Data"]) for r in records]

    def push(
        self,
        snapshot: Path,
        state: Path,
        computed_time: int,
        *,
        options: DeliveryOptions | None = None,
        cohort_id: str = COHORT_ID,
        session: Any = None,
        preflight: bool = True,
        exit_guard: ExitGuard | None = None,
    ) -> PushReport:
        """One run_push as Amplitude, preflight included unless told otherwise."""
        request = PushRequest(
            destination=self.destination,
            snapshot=snapshot,
            cohort_id=cohort_id,
            cohort_name=COHORT_NAME,
            state=state,
            computed_time=str(computed_time),
            options=options or DeliveryOptions(),
            skip_preflight=not preflight,
            exit_guard=exit_guard or ExitGuard(),
        )
        return run_push(
            request,
            connect=(lambda: session) if session is not None else self.connect,
            check=lambda s: run_preflight(s, self.destination, None),
        )


def write_csv(path: Path, users: Users) -> Path:
    """A CSV snapshot; a property a user lacks is an empty cell."""
    columns = sorted({key for props in users.values() for key in props})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([USER_ID, *columns])
        for user_id, props in users.items():
            writer.writerow([user_id, *(props.get(col, "") for col in columns)])
    return path


def users_of(records: list[Record], *, in_cohort: bool) -> Users:
    """The users the records carry with the given in_cohort, as the snapshot would list them."""
    found: Users = {}
    for record in records:
        payload = record.payload
        if payload["in_cohort"] is not in_cohort:
            continue
        for user in payload["users"]:
            assert user[USER_ID] not in found, f"user {user[USER_ID]} sent twice"
            found[user[USER_ID]] = dict(user.get(USER_PROPERTIES) or {})
    return found


def staged_payloads(state: Path) -> dict[str, bytes]:
    """message_id -> data of every record the state store's outbox holds."""
    with StateStore(state) as store:
        return {record.message_id: record.data for record in store.outbox.pending()}


def assert_nothing_staged(state: Path) -> None:
    """The store exists (the push opened it) but holds no sync, record or member."""
    with StateStore(state) as store:
        con = store.connection
        for table in ("syncs", "outbox", "membership"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table


def cohort(size: int, *, start: int = 0) -> Users:
    """`size` users with one or two properties (every 7th has only one), non-ASCII included."""
    users: Users = {}
    for n in range(start, start + size):
        props = {"plan": ["free", "pro", "team"][n % 3]}
        if n % 7:
            props["city"] = ["San Francisco", "Zürich", "東京"][n % 3]
        users[f"user-{n:06d}"] = props
    return users


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with moto_world(REGION) as world:
        yield make_env(world, tmp_path)


def make_env(world: MotoWorld, tmp: Path) -> Env:
    """Apply the program as the customer and write the outputs as the destination file."""
    applied = apply_destination(world, StackConfig(stack="test"), tmp)
    return Env(
        world=world,
        destination=applied.destination,
        destination_file=tmp / "destination.json",
        outputs=dict(applied.outputs),
        tmp=tmp,
    )


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_sends_the_snapshot_then_only_who_entered_and_exited(env: Env) -> None:
    # GIVEN a first snapshot of 1,200 users, 100 users a message
    first = cohort(1200)
    options = DeliveryOptions(max_users_per_message=100)
    state = env.tmp / "state.duckdb"

    # WHEN it is pushed as Amplitude, then read back with the customer's credentials
    report = env.push(write_csv(env.tmp / "day1.csv", first), state, T1, options=options)
    records = env.read_stream()

    # THEN the stream holds exactly the snapshot, in valid records under 1 MiB, ids unique
    assert report.ok, report.render()
    assert (report.entered, report.exited, report.messages) == (1200, 0, 12)
    assert (report.records, len(records)) == (12, 12)
    assert [problems_of(r.payload) for r in records] == [[]] * 12
    assert max(len(r.data) + len(r.partition_key.encode()) for r in records) <= MAX_RECORD_BYTES
    ids = [r.payload["message_id"] for r in records]
    assert sorted(ids) == sorted(f"{report.sync_id}:{n}" for n in range(12))
    assert {r.payload["computed_time"] for r in records} == {str(T1)}
    assert users_of(records, in_cohort=True) == first
    assert users_of(records, in_cohort=False) == {}

    # GIVEN a second snapshot: 150 users gone, 70 new, 10 staying users with a new plan
    second = {k: v for k, v in first.items() if k >= "user-000150"} | cohort(70, start=5000)
    changed = sorted(second)[:10]
    for user_id in changed:
        second[user_id] = {**second[user_id], "plan": "enterprise"}

    # WHEN it is pushed
    report = env.push(write_csv(env.tmp / "day2.csv", second), state, T2, options=options)
    delta = [r for r in env.read_stream() if r.payload["computed_time"] == str(T2)]

    # THEN only who entered and who exited is sent; changed properties alone send nothing
    assert report.ok, report.render()
    assert (report.entered, report.exited, report.messages) == (70, 150, 1 + 2)
    assert len(delta) == 3
    assert [problems_of(r.payload) for r in delta] == [[]] * 3
    assert users_of(delta, in_cohort=True) == cohort(70, start=5000)
    assert set(users_of(delta, in_cohort=False)) == {f"user-{n:06d}" for n in range(150)}
    all_ids = [r.payload["message_id"] for r in env.read_stream()]
    assert len(all_ids) == len(set(all_ids)) == 15


def test_large_users_are_split_into_records_under_one_mib(env: Env) -> None:
    # GIVEN 30 users of about 100 kB each: one 1,000-user message would be about 3 MB
    users = {f"big-{n:02d}": {"blob": chr(ord("a") + n % 26) * 100_000} for n in range(30)}

    # WHEN they are pushed
    report = env.push(write_csv(env.tmp / "big.csv", users), env.tmp / "state.duckdb", T1)
    records = env.read_stream()

    # THEN the records are split by size, each at most 1 MiB, and carry everyone once
    assert report.ok, report.render()
    assert len(records) == report.messages > 1
    sizes = [len(r.data) + len(r.partition_key.encode()) for r in records]
    assert max(sizes) <= MAX_RECORD_BYTES
    assert sum(sizes) > 3_000_000
    assert users_of(records, in_cohort=True) == users


# --- deltas reproduce every snapshot (property) ----------------------------------------------

POOL = [f"u{n:02d}" for n in range(24)]


def props_of(user_id: str) -> dict[str, str]:
    """Properties fixed per user, so membership alone decides what a snapshot holds."""
    n = int(user_id[1:])
    return {"plan": ["free", "pro"][n % 2]} if n % 3 else {}


def test_applying_the_delivered_deltas_reproduces_every_snapshot(tmp_path: Path) -> None:
    cohorts = itertools.count()
    with moto_world(REGION) as world:
        env = make_env(world, tmp_path)
        session = env.connect()

        @settings(
            max_examples=8,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(st.lists(st.sets(st.sampled_from(POOL), max_size=len(POOL)), min_size=1, max_size=4))
        def check(snapshots: list[set[str]]) -> None:
            # GIVEN a fresh cohort and state; WHEN each snapshot is pushed a day apart
            cohort_id = f"prop{next(cohorts)}"
            with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
                work = Path(scratch)
                times = [T1 + day * 86_400 for day in range(len(snapshots))]
                for day, (members, at) in enumerate(zip(snapshots, times, strict=True)):
                    users = {u: props_of(u) for u in sorted(members)}
                    snapshot = write_csv(work / f"day{day}.csv", users)
                    report = env.push(
                        snapshot,
                        work / "state.duckdb",
                        at,
                        options=DeliveryOptions(max_users_per_message=5),
                        cohort_id=cohort_id,
                        session=session,
                        preflight=False,
                        # Random snapshots: most days are mass exits, on purpose.
                        exit_guard=ExitGuard(allow=True),
                    )
                    assert report.ok, report.render()
            # THEN applying what the stream holds, in computed_time order, gives each snapshot
            mine = [r.payload for r in env.read_stream()]
            mine = [p for p in mine if p["cohort_id"] == cohort_id]
            assert all(problems_of(p) == [] for p in mine)
            membership: Users = {}
            for members, at in zip(snapshots, times, strict=True):
                for payload in (p for p in mine if p["computed_time"] == str(at)):
                    for user in payload["users"]:
                        if payload["in_cohort"]:
                            membership[user[USER_ID]] = dict(user.get(USER_PROPERTIES) or {})
                        else:
                            del membership[user[USER_ID]]
                assert membership == {u: props_of(u) for u in members}

        check()


# --- resume after an interrupted push ---------------------------------------------------------


class InterruptingKinesis:
    """A Kinesis client that raises KeyboardInterrupt at one PutRecords call.

    `landed=False`: raised before call number `at` is sent (interrupted between sends).
    `landed=True`: call `at` reaches the stream, then the interrupt comes before its response.
    """

    def __init__(self, client: Any, *, at: int, landed: bool) -> None:
        self._client = client
        self._at = at
        self._landed = landed
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_records(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self._at and not self._landed:
            raise KeyboardInterrupt
        response = self._client.put_records(**kwargs)
        if self.calls == self._at:
            raise KeyboardInterrupt
        return response


class InterruptingSession:
    """A session whose Kinesis clients are InterruptingKinesis; other clients pass through."""

    def __init__(self, session: boto3.Session, *, at: int, landed: bool) -> None:
        self._session = session
        self._at = at
        self._landed = landed

    def client(self, service: str, **kwargs: Any) -> Any:
        client = self._session.client(service, **kwargs)
        if service != "kinesis":
            return client
        return InterruptingKinesis(client, at=self._at, landed=self._landed)


@pytest.mark.parametrize("landed", [False, True], ids=["between-sends", "response-lost"])
def test_an_interrupted_push_resumes_without_losing_or_renumbering(env: Env, landed: bool) -> None:
    # GIVEN 1,200 one-user messages: three PutRecords calls (500, 500, 200) from one sender
    users = cohort(1200)
    snapshot = write_csv(env.tmp / "day1.csv", users)
    state = env.tmp / "state.duckdb"
    options = DeliveryOptions(max_users_per_message=1, senders=1)

    # WHEN the push is interrupted at its second call
    session = InterruptingSession(env.connect(), at=2, landed=landed)
    with pytest.raises(KeyboardInterrupt):
        env.push(snapshot, state, T1, options=options, session=session)

    # THEN the first call's records are out and gone from the outbox (acked), the outbox holds
    # the other 700, and together they are all 1,200, numbered once
    pending = staged_payloads(state)
    sent_before = env.read_stream()
    assert len(sent_before) == (1000 if landed else 500)
    assert len(pending) == 700
    staged = {r.payload["message_id"]: r.data for r in sent_before} | pending
    assert len(staged) == 1200
    sync_id = next(iter(staged)).rsplit(":", 1)[0]
    assert set(staged) == {f"{sync_id}:{n}" for n in range(1200)}
    with StateStore(state) as store:
        assert store.outbox.counts().pending == 700

    # WHEN the next run pushes the same snapshot
    report = env.push(snapshot, state, T2, options=options)

    # THEN it sends only what was left, with the staged ids and byte-identical payloads
    assert report.ok, report.render()
    assert (report.entered, report.exited, report.records) == (0, 0, 700)
    records = env.read_stream()
    assert len(records) == 1200 + (500 if landed else 0)  # a lost response means a re-send
    for record in records:
        message_id = record.payload["message_id"]
        assert record.data == staged[message_id], message_id
    assert {r.payload["message_id"] for r in records} == set(staged)
    assert users_of(_dedupe(records), in_cohort=True) == users
    with StateStore(state) as store:
        assert store.outbox.counts().pending == 0


def _dedupe(records: list[Record]) -> list[Record]:
    """One record per message_id, as consumers keep them."""
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.payload["message_id"], record)
    return list(seen.values())


# --- the CLI: bad input sends and stages nothing ----------------------------------------------


def cli_push(env: Env, snapshot: Path, *extra: str, destination: Path | None = None) -> int:
    """`cohort-sync push` as an operator types it, acting as Amplitude's exporter."""
    amplitude = env.world.amplitude
    credentials = {
        "AWS_ACCESS_KEY_ID": amplitude.access_key_id,
        "AWS_SECRET_ACCESS_KEY": amplitude.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }
    argv = [
        "push",
        "--destination",
        str(destination or env.destination_file),
        "--cohort-id",
        COHORT_ID,
        "--cohort-name",
        COHORT_NAME,
        str(snapshot),
        "--state",
        str(env.tmp / "state.duckdb"),
        "--computed-time",
        str(T1),
        *extra,
    ]
    with mock.patch.dict(os.environ, credentials):
        return main(argv)


GOOD_CSV = b"user_id,plan\nu1,pro\nu2,free\n"
BAD_SNAPSHOTS = {
    "missing-user-id": (
        "snap.csv",
        b"user_id,plan\nu1,pro\n,free\n",
        "(missing user_id: 1)",
        ":3: missing user_id: user_id is missing or empty",
    ),
    "duplicate-ids": (
        "snap.csv",
        b"user_id,plan\nu1,pro\nu1,free\n",
        "(duplicate user_id: 1)",
        ":3: duplicate user_id: user_id 'u1' repeats line 2",
    ),
    "malformed-row": (
        "snap.csv",
        b"user_id,plan\nu1,pro\nu2,free,extra\n",
        "(malformed row: 1)",
        ":3: malformed row: too many columns: Expected Number of Columns: 2 Found: 3",
    ),
    "bad-encoding": (
        "snap.csv",
        b"user_id,plan\nu1,pro\nu2,fr\xff\xfee\n",
        "(bad encoding: 1)",
        ":3: bad encoding: not UTF-8",
    ),
    "user-too-large": (
        "snap.csv",
        b"user_id,blob\nu1," + b"x" * (1024 * 1024) + b"\n",
        "(user too large: 1)",
        ":2: user too large: user JSON is 1048622 bytes: at most 1043456 allowed",
    ),
    "missing-file": (
        "absent.csv",
        None,
        "(missing file: 1)",
        ": missing file: file not found: the snapshot must be an existing regular file",
    ),
}


@pytest.mark.parametrize(
    ("name", "content", "summary", "detail"), BAD_SNAPSHOTS.values(), ids=BAD_SNAPSHOTS.keys()
)
def test_a_bad_snapshot_is_refused_before_anything_is_sent_or_staged(
    env: Env,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    summary: str,
    detail: str,
) -> None:
    # GIVEN a snapshot with one problem (or none at all)
    snapshot = env.tmp / name
    if content is not None:
        snapshot.write_bytes(content)

    # WHEN it is pushed through the CLI
    code = cli_push(env, snapshot)

    # THEN exit 2 with the problem at its line; nothing sent, nothing staged
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"cohort-sync: error: snapshot {snapshot}: 1 problem(s) {summary}; nothing was loaded\n"
    )
    assert f"  {snapshot}{detail}\n" in err
    assert env.read_stream() == []
    assert_nothing_staged(env.tmp / "state.duckdb")


def _without(key: str) -> Any:
    return lambda outputs: {k: v for k, v in outputs.items() if k != key}


BAD_DESTINATIONS = {
    "file-missing": (None, "{path}: no such file; export it with `pulumi stack output"),
    "missing-key": (
        _without(c.OUTPUT_ROLE_ARN),
        "{path}: not a usable destination (1):\n  - roleArn: missing",
    ),
    "not-an-arn": (
        lambda outputs: {**outputs, c.OUTPUT_STREAM_ARN: "amplitude-cohorts"},
        "{path}: not a usable destination (1):\n  - streamArn 'amplitude-cohorts': not a "
        "Kinesis stream ARN (arn:aws:kinesis:<region>:<account>:stream/<name>)",
    ),
    "secret-placeholder": (
        lambda outputs: {**outputs, c.OUTPUT_EXTERNAL_ID: "[secret]"},
        "{path}: not a usable destination (1):\n  - externalId '[secret]': pulumi hid a secret; "
        "re-export with `pulumi stack output --json --show-secrets`",
    ),
}


@pytest.mark.parametrize(
    ("edit", "message"), BAD_DESTINATIONS.values(), ids=BAD_DESTINATIONS.keys()
)
def test_a_bad_destination_is_refused_before_anything_is_sent_or_staged(
    env: Env, capsys: pytest.CaptureFixture[str], edit: Any, message: str
) -> None:
    # GIVEN a good snapshot and a destination file that is absent or wrong in one way
    snapshot = env.tmp / "snap.csv"
    snapshot.write_bytes(GOOD_CSV)
    path = env.tmp / "bad-destination.json"
    if edit is not None:
        path.write_text(json.dumps(edit(env.outputs)), encoding="utf-8")

    # WHEN it is pushed through the CLI
    code = cli_push(env, snapshot, destination=path)

    # THEN exit 2 naming the file and the problem; nothing sent; no state store even opened
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cohort-sync: error: " + message.format(path=path))
    assert env.read_stream() == []
    assert not (env.tmp / "state.duckdb").exists()


# --- the CLI: --dry-run and --json ------------------------------------------------------------


def rendered(out: str) -> dict[str, int]:
    """The figures of a rendered report: `  entered    1,234` -> {"entered": 1234}."""
    figures = {}
    for line in out.splitlines()[1:]:
        label, _, value = line.strip().rpartition(" ")
        figures[label.strip()] = int(float(value.replace(",", "")))
    return figures


def test_dry_run_prints_what_a_push_would_send_and_sends_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a 250-user snapshot and a fresh state
    snapshot = write_csv(env.tmp / "snap.csv", cohort(250))

    # WHEN it is pushed with --dry-run, 100 users a message
    code = cli_push(env, snapshot, "--dry-run", "--max-users-per-message", "100")

    # THEN entering, exiting, messages and bytes are printed; nothing sent, nothing staged
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"dry run (nothing sent): cohort {COHORT_ID} sync -\n")
    figures = rendered(out)
    assert (figures["entered"], figures["exited"], figures["messages"]) == (250, 0, 3)
    assert figures["bytes sent"] > 250 * len('{"user_id":"user-000000"}')
    assert figures["PutRecords calls"] == figures["records sent"] == 0
    assert env.read_stream() == []
    assert_nothing_staged(env.tmp / "state.duckdb")

    # WHEN the same snapshot is then pushed for real, with --json
    code = cli_push(env, snapshot, "--json", "--max-users-per-message", "100")

    # THEN the JSON report has the same counts and the same bytes (before: the dry run numbered
    # its messages `dry-run:<n>` and estimated 6 bytes a record fewer than the push sent)
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"entered", "exited", "messages", "bytes", "ok", "sync_id"} <= set(report)
    assert (report["entered"], report["exited"], report["messages"]) == (250, 0, 3)
    assert report["ok"] is True and report["dry_run"] is False
    assert report["bytes"] == figures["bytes sent"]
    records = env.read_stream()
    assert len(records) == 3
    assert sum(len(r.data) + len(r.partition_key.encode()) for r in records) == report["bytes"]


def test_dry_run_json_after_a_push_counts_who_would_enter_and_exit(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a pushed first snapshot
    assert cli_push(env, write_csv(env.tmp / "day1.csv", cohort(40)), "--json") == 0
    capsys.readouterr()
    sent = len(env.read_stream())

    # WHEN a second snapshot (10 gone, 5 new) is pushed with --dry-run --json
    second = {k: v for k, v in cohort(40).items() if k >= "user-000010"} | cohort(5, start=900)
    day2 = write_csv(env.tmp / "day2.csv", second)
    code = cli_push(env, day2, "--dry-run", "--json", "--computed-time", str(T1 + 86_400))

    # THEN the JSON report counts them; nothing more is sent and no second sync is staged
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["dry_run"] is True
    assert (report["entered"], report["exited"], report["messages"]) == (5, 10, 2)
    assert report["bytes"] > 0 and report["records"] == report["put_records_calls"] == 0
    assert len(env.read_stream()) == sent
    with StateStore(env.tmp / "state.duckdb") as store:
        assert store.connection.execute("SELECT count(*) FROM syncs").fetchall() == [(1,)]
        assert store.outbox.counts().pending == 0
        assert len(list(store.members(COHORT_ID))) == 40
