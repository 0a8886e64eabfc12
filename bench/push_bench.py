"""Push benchmark: a full run_push of an N-user cohort versus the bare PutRecords transport floor.

Run: .venv/bin/python -m bench.push_bench [--users 1000000] [--shards 64] [--no-shard-hint]
     [--senders 4] [--repeat 1] [--phases]

Both sides run in one process against in-process moto (mock_aws, with sandbox.moto_fixes so
concurrent puts lose nothing), each into a fresh stream of the same shape.

(b) the push: a CSV snapshot of N users with two properties each is written before the clock
starts; timed is `run_push` with a fresh state file and preflight skipped: validate and load the
snapshot, diff, build and stage every message, deliver with the Publisher, ack.

(a) the floor: the exact records (data and partition key) the push delivered, read back from
its stream, packed into the fewest PutRecords requests the limits allow (500 records, 5 MiB with
partition keys) and sent with a bare boto3 client. The floor is the faster of two sends: one
after another, and with the push's `senders` concurrent calls; so neither our batching nor our
concurrency can make the floor look slower than moving those bytes can be. With --repeat, each
figure is the best of its runs (the machine is shared, and the best run is the least disturbed).

With --phases, one more push is run step by step with the same public functions run_push calls
(load_and_plan, stage, deliver_pending) and each step's seconds are printed, so the ratio can be
read against where the time goes.

The 10M x 10M diff at 1% churn (<= 5 s, <= 1.5 GB) is bench.diff_bench's job, not this one's.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import duckdb
from moto import mock_aws

from sandbox.moto_fixes import moto_fixes_installed
from sandbox.streams import read_records
from sync.destination import Destination
from sync.limits import DEFAULT_SENDERS, MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT
from sync.push import (
    DeliveryOptions,
    PushReport,
    PushRequest,
    deliver_pending,
    load_and_plan,
    run_push,
    stage,
)
from sync.state import StateStore

REGION = "us-east-1"
ACCOUNT = "123456789012"
COHORT = "bench-cohort"
COMPUTED_TIME = "1700000000"
RATIO_TARGET = 1.25
CALLS_TARGET = 1.02

Record = tuple[bytes, str]  # (data, partition key)


def write_snapshot(path: Path, users: int) -> None:
    """A CSV snapshot: user_id plus two properties, `plan` and `n`, for every user."""
    con = duckdb.connect()
    try:
        con.execute(
            f"""COPY (SELECT 'user-' || lpad(i::VARCHAR, 10, '0') AS user_id,
                             'p' || (i % 7) AS plan, (i % 1000)::VARCHAR AS n
                      FROM range({int(users)}) AS t(i))
                TO '{path}' (HEADER, DELIMITER ',')"""
        )
    finally:
        con.close()


def create_stream(kinesis: Any, name: str, shards: int) -> str:
    """A fresh stream; its ARN once it is active."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    return str(summary["StreamARN"])


def delivered_records(kinesis: Any, stream_arn: str) -> list[Record]:
    """Every record the push delivered, as sent (the outbox deletes acknowledged records)."""
    return [(bytes(r["Data"]), str(r["PartitionKey"])) for r in read_records(kinesis, stream_arn)]


def size_of(record: Record) -> int:
    """What a record counts against the request limit: data plus UTF-8 partition key."""
    return len(record[0]) + len(record[1].encode())


def lower_bound_calls(records: Sequence[Record]) -> int:
    """No packing can use fewer requests than the count or the byte limit forces."""
    total = sum(size_of(r) for r in records)
    return max(
        math.ceil(len(records) / MAX_PUT_RECORDS_COUNT), math.ceil(total / MAX_PUT_RECORDS_BYTES)
    )


def pack_fewest(records: Sequence[Record]) -> list[list[Record]]:
    """First-fit decreasing into requests; Kinesis keeps no order, so none is kept here."""
    bins: list[tuple[list[Record], list[int]]] = []  # (records, [bytes])
    for record in sorted(records, key=size_of, reverse=True):
        size = size_of(record)
        for members, used in bins:
            if len(members) < MAX_PUT_RECORDS_COUNT and used[0] + size <= MAX_PUT_RECORDS_BYTES:
                members.append(record)
                used[0] += size
                break
        else:
            bins.append(([record], [size]))
    return [members for members, _ in bins]


def send_floor(kinesis: Any, stream_arn: str, batches: list[list[Record]], senders: int) -> float:
    """Seconds to PutRecords every batch with `senders` concurrent calls (1: one after another)."""

    def put(batch: list[Record]) -> None:
        entries = [{"Data": data, "PartitionKey": key} for data, key in batch]
        response = kinesis.put_records(StreamARN=stream_arn, Records=entries)
        if response["FailedRecordCount"]:
            raise SystemExit(f"floor: moto refused {response['FailedRecordCount']} record(s)")

    started = time.perf_counter()
    if senders == 1:
        for batch in batches:
            put(batch)
    else:
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(put, batches))
    return time.perf_counter() - started


def stream_record_count(kinesis: Any, stream_arn: str) -> int:
    """Records stored in the stream, over every shard (moto keeps them all)."""
    return len(read_records(kinesis, stream_arn))


def destination_of(stream_arn: str) -> Destination:
    """The bench's destination for a stream; roles are not used (no preflight, moto)."""
    return Destination(
        stream_name=stream_arn.rsplit("/", 1)[1],
        stream_arn=stream_arn,
        region=REGION,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/bench",
        role_name="bench",
        policy_arn=f"arn:aws:iam::{ACCOUNT}:policy/bench",
        display_name="bench",
    )


def push(
    snapshot: Path,
    state: Path,
    stream_arn: str,
    senders: int,
    connect: Callable[[], Any],
    shards: int | None = None,
) -> PushReport:
    """One full push with a fresh state and no preflight."""
    request = PushRequest(
        destination=destination_of(stream_arn),
        snapshot=snapshot,
        cohort_id=COHORT,
        cohort_name="Bench cohort",
        state=state,
        computed_time=COMPUTED_TIME,
        options=DeliveryOptions(senders=senders, shards=shards),
        skip_preflight=True,
    )
    return run_push(request, connect=connect)


def phases(
    snapshot: Path,
    state: Path,
    stream_arn: str,
    senders: int,
    kinesis: Any,
    shards: int | None = None,
) -> dict[str, float]:
    """Seconds of each step of one push, run as run_push runs them (preflight skipped)."""
    # The same options as the push reported beside it, shard hint included (without it the
    # publisher slow-starts and makes 26 calls where the push makes 14).
    options = DeliveryOptions(senders=senders, shards=shards)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    store = StateStore(state)
    try:
        load_and_plan(
            store, snapshot, cohort_id=COHORT, cohort_name="Bench cohort", stream_arn=stream_arn
        )
        seconds["load + validate + plan"] = time.perf_counter() - started
        mark = time.perf_counter()
        stage(
            store,
            cohort_id=COHORT,
            cohort_name="Bench cohort",
            computed_time=COMPUTED_TIME,
            options=options,
        )
        seconds["stage (build, outbox, membership, commit)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        report = deliver_pending(store, kinesis, stream_arn, options)
        seconds[f"deliver + acks ({report.put_records_calls} PutRecords)"] = (
            time.perf_counter() - mark
        )
        mark = time.perf_counter()
        store.compact()
        seconds["compact (checkpoint, rewrite if sparse)"] = time.perf_counter() - mark
        mark = time.perf_counter()
    finally:
        store.close()
    seconds["close"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    return seconds


def run(
    users: int,
    shards: int,
    senders: int,
    repeat: int,
    show_phases: bool = False,
    hint: bool = True,
) -> None:
    """Generate the snapshot, then `repeat` times push and send the floor; print the best."""
    with tempfile.TemporaryDirectory(prefix="push-bench-") as tmp:
        snapshot = Path(tmp) / "snapshot.csv"
        started = time.perf_counter()
        write_snapshot(snapshot, users)
        print(
            f"snapshot: {users:,} users, {snapshot.stat().st_size / 1e6:.1f} MB CSV "
            f"(written in {time.perf_counter() - started:.1f} s, not timed)"
        )
        pushes: list[PushReport] = []
        sequential: list[float] = []
        concurrent: list[float] = []
        with mock_aws(), moto_fixes_installed():
            session = boto3.Session(region_name=REGION)
            kinesis = session.client("kinesis", region_name=REGION)
            for round_ in range(repeat):
                # Every send gets a fresh stream and the push a fresh state file, so no run
                # pays for another's records (moto's shards grow and never trim).
                push_arn = create_stream(kinesis, f"bench-push-{round_}", shards)
                state = Path(tmp) / f"state-{round_}.duckdb"
                # With the hint the publisher paces from the stream's real capacity, as
                # `push --shards N` does; without it, it starts at one shard (slow start).
                report = push(
                    snapshot, state, push_arn, senders, lambda: session, shards if hint else None
                )
                if not report.ok:
                    raise SystemExit(f"push left records undelivered:\n{report.render()}")
                pushes.append(report)
                records = delivered_records(kinesis, push_arn)
                if len(records) != report.records:
                    raise SystemExit("push: the stream does not hold every staged record")
                batches = pack_fewest(records)
                for senders_, times in ((1, sequential), (senders, concurrent)):
                    arn = create_stream(kinesis, f"bench-floor-{round_}-{senders_}", shards)
                    times.append(send_floor(kinesis, arn, batches, senders_))
                    stored = stream_record_count(kinesis, arn)
                    if stored != len(records):
                        raise SystemExit(f"floor: {stored} of {len(records)} records stored")
            if show_phases:
                arn = create_stream(kinesis, "bench-phases", shards)
                steps = phases(
                    snapshot,
                    Path(tmp) / "state-phases.duckdb",
                    arn,
                    senders,
                    kinesis,
                    shards if hint else None,
                )

    best = min(pushes, key=lambda r: r.seconds)
    minimum = lower_bound_calls(records)
    floor = min(min(sequential), min(concurrent))
    total_bytes = sum(size_of(r) for r in records)
    print(
        f"records: {len(records):,} ({total_bytes / 1e6:.1f} MB with partition keys), "
        f"best of {repeat}, {shards} shards ({'given to' if hint else 'learned by'} the "
        f"publisher), {senders} senders"
    )
    print(
        f"(a) floor, {len(batches)} PutRecords: sequential {min(sequential):6.2f} s, "
        f"{senders} concurrent {min(concurrent):6.2f} s -> floor {floor:.2f} s"
    )
    print(
        f"(b) run_push:                 {best.seconds:6.2f} s  "
        f"({best.put_records_calls} PutRecords, {best.messages:,} messages, "
        f"{best.entered:,} entered)"
    )
    print(
        f"ratio (b)/(a):    {best.seconds / floor:5.2f}x  (target <= {RATIO_TARGET}x); "
        f"against the {senders}-sender floor alone {best.seconds / min(concurrent):.2f}x"
    )
    print(
        f"PutRecords calls: {best.put_records_calls} vs minimum {minimum} "
        f"(first-fit decreasing packs {len(batches)}) = "
        f"{best.put_records_calls / minimum:.3f}x  (target <= {CALLS_TARGET}x)"
    )
    if show_phases:
        print("one more push, step by step:")
        for step, seconds in steps.items():
            print(f"  {step:44s} {seconds:6.2f} s")
    print("diff 10M x 10M at 1% churn: see bench.diff_bench (`python -m bench.diff_bench`)")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1_000_000, help="cohort size")
    parser.add_argument("--shards", type=int, default=64, help="shards per stream (default 64)")
    parser.add_argument(
        "--no-shard-hint",
        action="store_true",
        help="do not tell the publisher the shard count (it then learns it, starting at one)",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=DEFAULT_SENDERS,
        help=f"concurrent PutRecords calls, push and floor alike (default {DEFAULT_SENDERS})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best of each is shown")
    parser.add_argument(
        "--phases", action="store_true", help="time one more push step by step and print the steps"
    )
    args = parser.parse_args()
    run(args.users, args.shards, args.senders, args.repeat, args.phases, not args.no_shard_hint)


if __name__ == "__main__":
    main()
