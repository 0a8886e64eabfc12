"""Every bad input a careful user would try, through `cohort-sync` against one applied stack.

Each case must exit 2, name the file and line, the rule or the option, publish nothing (records
counted on the stream before and after), leave the state file byte for byte as it was (hashed),
and, except where a role is needed to find the problem, never assume the role at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sync.credentials
from provisioning import constants as c
from sandbox.engine.stack import StackConfig
from sandbox.pytest_plugin import apply_destination
from sandbox.world import MotoWorld, moto_world
from sync.cli import main
from sync.membership_store import MembershipStore
from sync.state import StateStore

pytestmark = pytest.mark.integration

REGION = "us-east-1"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COHORT_ID = "gs72ns"
COHORT_NAME = "Test Cohort"
SEED_TIME = 1_700_000_000
NEXT_TIME = str(SEED_TIME + 86_400)
DAY1 = (EXAMPLES / "day1.csv").read_bytes()
DAY1_ROWS = DAY1.decode().splitlines()


@dataclass(frozen=True)
class Run:
    """One CLI run: exit code, stdout, stderr and how many times it assumed the role."""

    code: int
    out: str
    err: str
    assumed: int


@dataclass
class Stack:
    """The applied destination, a state file seeded with day 1, and the CLI as Amplitude."""

    world: MotoWorld
    tmp: Path
    outputs: dict[str, Any]
    seed: Path = field(init=False)

    @property
    def destination(self) -> Path:
        return self.tmp / "destination.json"

    def cli(self, *args: str, customer: bool = False) -> Run:
        who = self.world.customer_admin if customer else self.world.amplitude
        env = {
            "AWS_ACCESS_KEY_ID": who.access_key_id,
            "AWS_SECRET_ACCESS_KEY": who.secret_access_key,
        }
        out, err = io.StringIO(), io.StringIO()
        real = sync.credentials.assume_role_session
        calls: list[object] = []

        def counted(*a: Any, **kw: Any) -> Any:
            calls.append(a)
            return real(*a, **kw)

        with (
            mock.patch.dict(os.environ, env),
            mock.patch.object(sync.credentials, "assume_role_session", counted),
            redirect_stdout(out),
            redirect_stderr(err),
        ):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's refusals
                code = int(exc.code or 0)
        return Run(code, out.getvalue(), err.getvalue(), len(calls))

    def records(self) -> int:
        """Every record the stream holds, read with the customer's own credentials."""
        kinesis = self.world.client("kinesis", self.world.customer_admin)
        name = self.outputs["streamName"]
        total = 0
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                total += len(page["Records"])
                if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page.get("NextShardIterator")
        return total


def push_argv(stack: Stack, state: Path, snapshot: Path, **overrides: str) -> list[str]:
    """`push` with sane defaults; `overrides` replace options by name (cohort_id=...)."""
    options = {
        "--destination": str(stack.destination),
        "--cohort-id": COHORT_ID,
        "--cohort-name": COHORT_NAME,
        "--state": str(state),
        "--computed-time": NEXT_TIME,
    }
    options.update({"--" + k.replace("_", "-"): v for k, v in overrides.items()})
    return ["push", *(x for pair in options.items() for x in pair), str(snapshot)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("inputs")
    with moto_world(REGION) as world:
        applied = apply_destination(world, StackConfig(stack="inputs"), tmp)
        found = Stack(world, tmp, dict(applied.outputs))
        found.seed = tmp / "seed.duckdb"
        seeded = found.cli(
            *push_argv(found, found.seed, EXAMPLES / "day1.csv", computed_time=str(SEED_TIME))
        )
        assert seeded.code == 0, seeded.err
        yield found


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# --- the table -------------------------------------------------------------------------------

Writer = Callable[[Path], None]


def text(content: str | bytes) -> Writer:
    data = content.encode() if isinstance(content, str) else content
    return lambda path: path.write_bytes(data)


def parquet(columns: dict[str, list[Any]]) -> Writer:
    return lambda path: pq.write_table(pa.table(columns), path)


def csv_of(*rows: str) -> Writer:
    return text("\n".join(("user_id,city", *rows)) + "\n")


def jsonl_of(*lines: str) -> Writer:
    return text("\n".join(lines) + "\n")


def destination_with(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    def change(outputs: dict[str, Any]) -> Any:
        changed = dict(outputs)
        for key, value in changes.items():
            if value is None:
                changed.pop(key, None)
            else:
                changed[key] = value
        return changed

    return change


def other_stream(outputs: dict[str, Any]) -> dict[str, Any]:
    """A well-formed destination naming a stream that does not exist."""
    arn = str(outputs["streamArn"]).rsplit("/", 1)[0] + "/no-such-stream"
    form = {**outputs[c.OUTPUT_DESTINATION], c.FORM_STREAM_NAME: "no-such-stream"}
    return {**outputs, "streamName": "no-such-stream", "streamArn": arn, "destination": form}


@dataclass(frozen=True)
class Case:
    """One malformed input and the words its refusal must contain."""

    id: str
    expect: tuple[str, ...]
    snapshot: tuple[str, Writer] = ("day2.csv", text((EXAMPLES / "day2.csv").read_bytes()))
    options: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    destination: Callable[[dict[str, Any]], Any] | None = None
    raw_destination: bytes | None = None
    state: Callable[[Path], None] | None = None
    fresh_state: bool = False  # the state file does not exist yet: it must not afterwards
    assumes: bool = False  # the problem can only be found with the role (preflight)


def bound_elsewhere(path: Path) -> None:
    with StateStore(path) as store:
        store.bind("other", "Other", "arn:aws:kinesis:us-east-1:123456789012:stream/other")


def analytics_database(path: Path) -> None:
    """The user's own DuckDB database, with a `membership` table of its own shape."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE membership (team VARCHAR, person VARCHAR)")
    con.close()


def consumer_state(path: Path) -> None:
    MembershipStore(path).close()


LONG = "x" * 1000
CASES = [
    # --state: a file that is not the publisher's is read only, named, and left as it was
    Case(
        "state-foreign-duckdb",
        ("a DuckDB database of another application (tables membership)", "`push` creates"),
        state=analytics_database,
    ),
    Case(
        "state-consumer-sqlite",
        ("a SQLite database, not a publisher state",),
        state=consumer_state,
    ),
    # options: argparse types with ranges, named in the message
    Case(
        "senders-0", ("--senders 0: must be a whole number from 1 to 64",), options={"senders": "0"}
    ),
    Case("senders-negative", ("--senders -3: must be a whole number",), options={"senders": "-3"}),
    Case("senders-text", ("argument --senders: 'four'",), options={"senders": "four"}),
    Case(
        "senders-too-many",
        ("--senders 65: must be a whole number from 1 to 64",),
        options={"senders": "65"},
    ),
    Case(
        "max-tries-0",
        ("--max-tries 0: must be a whole number from 1 to 100",),
        options={"max_tries": "0"},
    ),
    Case(
        "max-tries-huge",
        ("--max-tries 1000: must be a whole number",),
        options={"max_tries": "1000"},
    ),
    Case(
        "shards-0",
        ("--shards 0: must be a whole number from 1 to 10,000",),
        options={"shards": "0"},
    ),
    Case("shards-huge", ("--shards 10001: must be a whole number",), options={"shards": "10001"}),
    Case(
        "users-per-message-0",
        ("--max-users-per-message 0: must be a whole number from 1 to 100,000",),
        options={"max_users_per_message": "0"},
    ),
    Case(
        "users-per-message-huge",
        ("--max-users-per-message 1000000: must be a whole number",),
        options={"max_users_per_message": "1000000"},
    ),
    Case("computed-time-0", ("argument --computed-time: '0'",), options={"computed_time": "0"}),
    Case(
        "computed-time-float",
        ("argument --computed-time: '1.7e9'",),
        options={"computed_time": "1.7e9"},
    ),
    Case(
        "computed-time-13-digits",
        ("argument --computed-time: '1700000000000'", "999,999,999,999"),
        options={"computed_time": "1700000000000"},
    ),
    Case(
        "computed-time-not-after-last",
        ("computed_time 1699999999: not after cohort gs72ns's last sync (1700000000)",),
        options={"computed_time": "1699999999"},
    ),
    Case(
        "exit-fraction-over-1",
        ("argument --max-exit-fraction: '1.5'", "from 0 to 1"),
        extra=("--max-exit-fraction", "1.5"),
    ),
    Case(
        "exit-fraction-nan",
        ("argument --max-exit-fraction: 'nan'",),
        extra=("--max-exit-fraction", "nan"),
    ),
    Case("partition-key-unknown", ("argument --partition-key",), extra=("--partition-key", "user")),
    # cohort id and name: the documented rule, before AssumeRole
    Case("cohort-id-space", ("--cohort-id 'gs 72'", "no spaces"), options={"cohort_id": "gs 72"}),
    Case("cohort-id-empty", ("--cohort-id '': must not be empty",), options={"cohort_id": ""}),
    Case(
        "cohort-id-1000-chars",
        ("--cohort-id 'xxxx", "(1000 characters)", "at most 64 characters", "partition key"),
        options={"cohort_id": LONG},
    ),
    Case("cohort-id-tab", ("--cohort-id 'gs\\t72'",), options={"cohort_id": "gs\t72"}),
    Case("cohort-id-nul", ("--cohort-id 'gs\\x0072'",), options={"cohort_id": "gs\x0072"}),
    Case("cohort-id-slash", ("--cohort-id 'gs/72'",), options={"cohort_id": "gs/72"}),
    Case("cohort-id-leading-dot", ("--cohort-id '.gs72'",), options={"cohort_id": ".gs72"}),
    Case("cohort-id-unicode", ("--cohort-id 'gé72'",), options={"cohort_id": "gé72"}),
    Case(
        "cohort-name-empty", ("--cohort-name '': must not be empty",), options={"cohort_name": ""}
    ),
    Case("cohort-name-blank", ("--cohort-name '   '",), options={"cohort_name": "   "}),
    Case(
        "cohort-name-control",
        ("--cohort-name 'a\\x07b'", "control character U+0007"),
        options={"cohort_name": "a\x07b"},
    ),
    Case(
        "cohort-name-too-long",
        ("--cohort-name", "at most 1024 characters"),
        options={"cohort_name": "n" * 1025},
    ),
    Case(
        "renamed-cohort-with-a-bad-snapshot",
        (".csv:2: control character",),
        snapshot=("s.csv", csv_of("u\x001,SF")),
        options={"cohort_name": "Renamed Cohort"},
    ),
    # destination files
    Case("destination-missing", ("no such file",), options={"destination": "/nonexistent.json"}),
    Case("destination-not-json", ("not readable JSON",), raw_destination=b"{not json"),
    Case("destination-array", ("list: must be a JSON object",), raw_destination=b"[]"),
    Case(
        "destination-no-stream-arn",
        ("streamArn: missing",),
        destination=destination_with(streamArn=None),
    ),
    Case(
        "destination-null-role",
        ("roleArn not set (null): must be a non-empty string",),
        destination=lambda outputs: {**outputs, "roleArn": None},
    ),
    Case(
        "destination-hidden-secret",
        ("'[secret]': pulumi hid a secret",),
        destination=destination_with(externalId="[secret]"),
    ),
    Case(
        "destination-bad-region",
        ("region 'mars-1': not an AWS region",),
        destination=destination_with(region="mars-1"),
    ),
    Case(
        "destination-no-such-stream",
        ("bound to stream", "not 'arn:aws:kinesis:us-east-1:123456789012:stream/no-such-stream'"),
        destination=other_stream,
    ),
    Case(
        "destination-no-such-stream-fresh-state",
        ("preflight failed", "no-such-stream"),
        destination=other_stream,
        assumes=True,
        fresh_state=True,
    ),
    Case(
        "state-bound-to-another-stream",
        ("bound to stream 'arn:aws:kinesis:us-east-1:123456789012:stream/other'",),
        state=bound_elsewhere,
        fresh_state=True,
    ),
    # snapshot files
    Case("snapshot-missing", ("file not found",), snapshot=("gone.csv", lambda p: None)),
    Case("snapshot-directory", ("file not found",), snapshot=("dir.csv", lambda p: p.mkdir())),
    Case("snapshot-unknown-format", ("format '.txt'",), snapshot=("s.txt", text("user_id\nu1\n"))),
    # CSV
    Case(
        "csv-nul-in-user-id",
        (".csv:3: control character", "U+0000"),
        snapshot=("s.csv", csv_of("u1,SF", "u\x002,LA")),
    ),
    Case(
        "csv-del-in-user-id",
        (".csv:2: control character", "U+007F"),
        snapshot=("s.csv", csv_of("u\x7f1,SF")),
    ),
    Case(
        "csv-tab-in-user-id",
        (".csv:2: control character", "U+0009"),
        snapshot=("s.csv", csv_of("u\t1,SF")),
    ),
    Case(
        "csv-bell-in-value",
        (".csv:2: control character", "user_properties.city holds U+0007", "tab, CR and LF"),
        snapshot=("s.csv", csv_of("u1,S\x07F")),
    ),
    Case(
        "csv-nul-in-value",
        (".csv:3: control character", "U+0000"),
        snapshot=("s.csv", csv_of("u1,SF", "u2,L\x00A")),
    ),
    Case(
        "csv-padded-user-id",
        (".csv:2: padded user_id", "' u1'", "never trimmed"),
        snapshot=("s.csv", csv_of(" u1,SF")),
    ),
    Case(
        "csv-trailing-space-user-id",
        (".csv:2: padded user_id", "'u1 '"),
        snapshot=("s.csv", csv_of("u1 ,SF")),
    ),
    Case(
        "csv-no-user-id-column",
        (".csv:1: no user_id column",),
        snapshot=("s.csv", text("id,city\n1,SF\n")),
    ),
    Case(
        "csv-duplicate-user",
        (".csv:3: duplicate user_id", "repeats line 2"),
        snapshot=("s.csv", csv_of("u1,SF", "u1,LA")),
    ),
    Case(
        "csv-empty-user-id",
        (".csv:3: missing user_id",),
        snapshot=("s.csv", csv_of("u1,SF", ",LA")),
    ),
    Case(
        "csv-unterminated-quote",
        (".csv:3: malformed row",),
        snapshot=("s.csv", csv_of("u1,SF", 'u2,"LA')),
    ),
    Case(
        "csv-extra-field",
        (".csv:3: malformed row",),
        snapshot=("s.csv", csv_of("u1,SF", "u2,LA,extra")),
    ),
    Case(
        "csv-not-utf8",
        (".csv:3: bad encoding",),
        snapshot=("s.csv", text(b"user_id,city\nu1,SF\nu2,\xff\xfe\n")),
    ),
    Case(
        "csv-repeated-column",
        (".csv:1: malformed row", "repeated column names ['city']"),
        snapshot=("s.csv", text("user_id,city,city\nu1,a,b\n")),
    ),
    Case(
        "csv-too-many-columns",
        (".csv:1: too many columns", "header has 10,001 columns: at most 10,000 allowed"),
        snapshot=("s.csv", text("user_id," + ",".join(f"p{i}" for i in range(10_000)) + "\nu1\n")),
    ),
    Case(
        "csv-blank-first-line",
        (".csv:1: no user_id column",),
        snapshot=("s.csv", text("\nuser_id\nu1\n")),
    ),
    # JSONL
    Case(
        "jsonl-invalid-json",
        (".jsonl:2: malformed row: invalid JSON",),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1"}', "{oops")),
    ),
    Case(
        "jsonl-array",
        (".jsonl:1: malformed row", "must be a JSON object"),
        snapshot=("s.jsonl", jsonl_of('["u1"]')),
    ),
    Case(
        "jsonl-unknown-key",
        (".jsonl:1: malformed row", "unknown keys"),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1","city":"SF"}')),
    ),
    Case(
        "jsonl-numeric-user-id",
        (".jsonl:1: malformed row", "must be a string"),
        snapshot=("s.jsonl", jsonl_of('{"user_id":7}')),
    ),
    Case(
        "jsonl-properties-string",
        (".jsonl:1: malformed row", "must be an object"),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1","user_properties":"SF"}')),
    ),
    Case(
        "jsonl-nan",
        (".jsonl:1: malformed row", "NaN or Infinity"),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1","user_properties":{"x":NaN}}')),
    ),
    Case(
        "jsonl-nul-in-user-id",
        (".jsonl:1: control character", "U+0000"),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u\\u00002"}')),
    ),
    Case(
        "jsonl-nested-control",
        (".jsonl:1: control character", "user_properties.a.b[0] holds U+001F"),
        snapshot=(
            "s.jsonl",
            jsonl_of('{"user_id":"u1","user_properties":{"a":{"b":["\\u001f"]}}}'),
        ),
    ),
    Case(
        "jsonl-padded-user-id",
        (".jsonl:1: padded user_id",),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1 "}')),
    ),
    Case(
        "jsonl-duplicate",
        (".jsonl:2: duplicate user_id",),
        snapshot=("s.jsonl", jsonl_of('{"user_id":"u1"}', '{"user_id":"u1"}')),
    ),
    Case(
        "jsonl-missing-user-id",
        (".jsonl:1: missing user_id",),
        snapshot=("s.jsonl", jsonl_of('{"user_properties":{}}')),
    ),
    # Parquet
    Case(
        "parquet-no-user-id",
        ("no user_id column",),
        snapshot=("s.parquet", parquet({"uid": ["u1"]})),
    ),
    Case(
        "parquet-not-parquet",
        ("not a readable Parquet file",),
        snapshot=("s.parquet", text(b"PAR1 nope")),
    ),
    Case(
        "parquet-nul-in-user-id",
        (".parquet:2: control character", "U+0000"),
        snapshot=("s.parquet", parquet({"user_id": ["u1", "u\x002"]})),
    ),
    Case(
        "parquet-control-in-value",
        (".parquet:1: control character", "user_properties.city holds U+001B"),
        snapshot=("s.parquet", parquet({"user_id": ["u1"], "city": ["\x1b[31mred"]})),
    ),
    Case(
        "parquet-control-in-json-properties",
        (".parquet:1: control character", "user_properties.k holds U+0008"),
        snapshot=("s.parquet", parquet({"user_id": ["u1"], "user_properties": ['{"k":"\\b"}']})),
    ),
    Case(
        "parquet-padded-user-id",
        (".parquet:1: padded user_id",),
        snapshot=("s.parquet", parquet({"user_id": [" u1"]})),
    ),
    Case(
        "parquet-properties-int",
        ("user_properties type BIGINT",),
        snapshot=("s.parquet", parquet({"user_id": ["u1"], "user_properties": [1]})),
    ),
    Case(
        "parquet-too-many-columns",
        ("too many columns: 2,001 columns: at most 2,000 allowed", "one 'user_properties' struct"),
        snapshot=(
            "s.parquet",
            parquet({"user_id": ["u1"], **{f"p{i}": ["v"] for i in range(2_000)}}),
        ),
    ),
    Case(
        "parquet-duplicate",
        (".parquet:2: duplicate user_id",),
        snapshot=("s.parquet", parquet({"user_id": ["u1", "u1"]})),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_is_refused_before_anything_changes(
    stack: Stack, tmp_path: Path, case: Case
) -> None:
    # GIVEN a state file holding day 1 (or none yet), and the stream's records counted
    state = tmp_path / "state.duckdb"
    if case.state is not None:
        case.state(state)
    elif not case.fresh_state:
        shutil.copyfile(stack.seed, state)
    before = digest(state)
    published = stack.records()
    name, write = case.snapshot
    snapshot = tmp_path / name
    write(snapshot)
    overrides = dict(case.options)
    if case.destination is not None or case.raw_destination is not None:
        destination = tmp_path / "destination.json"
        if case.raw_destination is not None:
            destination.write_bytes(case.raw_destination)
        else:
            assert case.destination is not None
            destination.write_text(json.dumps(case.destination(stack.outputs)))
        overrides.setdefault("destination", str(destination))

    # WHEN it is pushed
    run = stack.cli(*push_argv(stack, state, snapshot, **overrides), *case.extra)

    # THEN exit 2 with a message naming the problem, and nothing changed anywhere
    assert run.code == 2, run.out + run.err
    message = " ".join(run.err.split())
    for words in case.expect:
        assert " ".join(words.split()) in message, run.err
    assert "Traceback" not in run.err
    assert ": fix: " in run.err, run.err  # every refusal names its fix
    assert digest(state) == before
    assert stack.records() == published
    assert run.assumed == (1 if case.assumes else 0)


def test_a_valid_push_through_the_same_harness_does_publish(stack: Stack, tmp_path: Path) -> None:
    # The control: what the table asserts would have caught a push that went through.
    state = tmp_path / "state.duckdb"
    shutil.copyfile(stack.seed, state)
    before, published = digest(state), stack.records()

    run = stack.cli(*push_argv(stack, state, EXAMPLES / "day2.csv"))

    assert run.code == 0, run.err
    assert digest(state) != before
    assert stack.records() > published
    assert run.assumed == 1


# --- the mass-exit guard, every format -------------------------------------------------------


def day1_as(fmt: str, rows: int) -> Writer:
    """The first `rows` users of day 1 as CSV, JSONL or Parquet."""
    users = [line.split(",") for line in DAY1_ROWS[1 : 1 + rows]]
    if fmt == "csv":
        return text("\n".join(DAY1_ROWS[: 1 + rows]) + "\n")
    if fmt == "jsonl":
        lines = [json.dumps({"user_id": u[0], "user_properties": {"city": u[1]}}) for u in users]
        return text("".join(line + "\n" for line in lines))
    return parquet({"user_id": [u[0] for u in users], "city": [u[1] for u in users]})


EXITS = [
    ("csv-header-only", "s.csv", day1_as("csv", 0), "the snapshot is empty: all 6 members"),
    ("csv-zero-bytes", "s.csv", text(b""), "the snapshot is empty: all 6 members"),
    ("jsonl-empty", "s.jsonl", text(b""), "the snapshot is empty: all 6 members"),
    ("jsonl-blank-lines", "s.jsonl", text(b"\n\n"), "the snapshot is empty: all 6 members"),
    ("parquet-no-rows", "s.parquet", day1_as("parquet", 0), "the snapshot is empty: all 6 members"),
    ("csv-truncated", "s.csv", day1_as("csv", 2), "4 of the cohort's 6 members would exit (66.7%)"),
    (
        "csv-cut-mid-line",
        "s.csv",
        text("\n".join(DAY1_ROWS[:2]) + "\nuser2@amplitude.com,Seattle,C"),
        "4 of the cohort's 6 members would exit",
    ),
    ("jsonl-truncated", "s.jsonl", day1_as("jsonl", 2), "4 of the cohort's 6 members would exit"),
    ("parquet-truncated", "s.parquet", day1_as("parquet", 1), "5 of the cohort's 6 members"),
]


@pytest.mark.parametrize(("name", "filename", "write", "expect"), EXITS, ids=[e[0] for e in EXITS])
def test_a_mass_exit_is_refused_until_allowed(
    stack: Stack, tmp_path: Path, name: str, filename: str, write: Writer, expect: str
) -> None:
    # GIVEN the six members of day 1, and a snapshot that would remove most or all of them
    state = tmp_path / "state.duckdb"
    shutil.copyfile(stack.seed, state)
    before, published = digest(state), stack.records()
    snapshot = tmp_path / filename
    write(snapshot)

    # WHEN it is pushed THEN it is refused naming the counts and the override; nothing changed
    run = stack.cli(*push_argv(stack, state, snapshot))
    assert run.code == 2, run.out + run.err
    assert "mass exit refused" in run.err and expect in run.err
    assert "--allow-mass-exit" in run.err
    assert digest(state) == before and stack.records() == published and run.assumed == 0
    # AND a dry run is refused the same way
    assert stack.cli(*push_argv(stack, state, snapshot), "--dry-run").code == 2

    # WHEN the operator says the exits are real THEN they are sent
    allowed = stack.cli(*push_argv(stack, state, snapshot), "--allow-mass-exit", "--json")
    assert allowed.code == 0, allowed.err
    report = json.loads(allowed.out)
    assert report["exited"] >= 3 and report["ok"] is True
    assert stack.records() > published


def test_a_higher_threshold_lets_a_large_exit_through(stack: Stack, tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    shutil.copyfile(stack.seed, state)
    snapshot = tmp_path / "s.csv"
    day1_as("csv", 2)(snapshot)
    argv = push_argv(stack, state, snapshot)

    refused = stack.cli(*argv, "--max-exit-fraction", "0.6")
    assert refused.code == 2
    assert "pass --allow-mass-exit, or a --max-exit-fraction of at least 0.67" in refused.err

    passed = stack.cli(*argv, "--max-exit-fraction", "0.67", "--json")
    assert passed.code == 0, passed.err
    assert json.loads(passed.out)["exited"] == 4


def test_watch_refuses_a_mass_exit_tick_and_goes_on(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a watch whose snapshot is emptied by a broken export, then fixed before the next tick
    state = tmp_path / "state.duckdb"
    shutil.copyfile(stack.seed, state)
    snapshot = tmp_path / "cohort.csv"
    day1_as("csv", 0)(snapshot)
    monkeypatch.setattr(
        "sync.commands.time.sleep",
        lambda seconds: snapshot.write_bytes(EXAMPLES.joinpath("day2.csv").read_bytes()),
    )
    argv = push_argv(stack, state, snapshot)
    argv[0] = "watch"
    del argv[argv.index("--computed-time") : argv.index("--computed-time") + 2]

    # WHEN it runs two ticks
    run = stack.cli(*argv, "--every", "1h", "--ticks", "2", "--json")

    # THEN the first tick is refused as JSON, the second delivers day 2, and the watch exits 0
    first, second = (json.loads(line) for line in run.out.splitlines())
    assert "mass exit refused" in first["error"] and "--allow-mass-exit" in first["fix"]
    assert (second["entered"], second["exited"], second["ok"]) == (3, 2, True)
    assert run.code == 0


# --- JSON on every path, members of an unknown cohort ------------------------------------------


def test_json_errors_are_json_on_stdout(stack: Stack, tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    # A library refusal (the cohort id), a usage error (argparse) and a snapshot problem
    runs = [
        stack.cli(*push_argv(stack, state, EXAMPLES / "day1.csv", cohort_id="a b"), "--json"),
        stack.cli(*push_argv(stack, state, EXAMPLES / "day1.csv", senders="four"), "--json"),
        stack.cli(*push_argv(stack, state, tmp_path / "missing.csv"), "--json"),
    ]
    for run in runs:
        assert run.code == 2
        error = json.loads(run.out)
        assert set(error) == {"error", "fix"} and error["error"] and error["fix"]
        assert run.err == ""
    assert "--cohort-id 'a b'" in json.loads(runs[0].out)["error"]
    assert "argument --senders: 'four'" in json.loads(runs[1].out)["error"]
    assert "file not found" in json.loads(runs[2].out)["error"]
    assert not state.exists()


def test_replay_json_with_an_empty_outbox_prints_json(stack: Stack, tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    shutil.copyfile(stack.seed, state)
    replay = ["replay", "--destination", str(stack.destination), "--state", str(state)]

    run = stack.cli(*replay, "--json")

    assert run.code == 0
    report = json.loads(run.out)
    assert (report["messages"], report["pending_left"], report["ok"]) == (0, 0, True)
    assert stack.cli(*replay).out.strip() == "outbox empty: nothing to replay"


def test_members_of_an_unknown_cohort_exits_2_naming_it(stack: Stack, tmp_path: Path) -> None:
    # GIVEN the cohort has members on the stream, whatever else this module's tests sent
    pushed = stack.cli(*push_argv(stack, tmp_path / "state.duckdb", EXAMPLES / "day1.csv"))
    assert pushed.code == 0, pushed.err
    consumer = tmp_path / "consumer.sqlite"
    consumed = stack.cli(
        *["consume", "--destination", str(stack.destination), "--state", str(consumer)],
        *["--from-start", "--until-idle", "--json"],
        customer=True,
    )
    assert consumed.code == 0, consumed.err

    unknown = stack.cli("members", "--state", str(consumer), "--cohort-id", "nope42")
    known = stack.cli("members", "--state", str(consumer), "--cohort-id", COHORT_ID)

    assert unknown.code == 2 and unknown.out == ""
    assert "--cohort-id 'nope42': no such cohort in" in unknown.err
    # before: the fix was only printed under --json
    assert "cohort-sync: fix: use a cohort id the consumer has read" in unknown.err
    assert known.code == 0 and known.out.startswith("user_id,")


def test_an_interrupt_under_json_is_json_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("sync.commands.replay", interrupted)

    code = main(["replay", "--destination", "d.json", "--json"])

    assert code == 130
    assert json.loads(capsys.readouterr().out)["error"] == "interrupted"
