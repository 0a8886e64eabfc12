"""Push against the simplest program that does the same job, and how the push scales.

Run: .venv/bin/python -m bench.e2e_bench [--users 1000000] [--shards 64] [--senders 4]
     [--serve-users 10000000] [--second-day 1000000 5000000]

Each side runs in a process of its own (so each peak RSS is its own), against in-process moto
(`mock_aws` with `sandbox.moto_fixes`), into a fresh stream of `--shards` shards:

- the minimal end-to-end push: read the CSV (pyarrow, or DuckDB's reader), build the same
  1000-user JSON messages (`json.dumps` of dicts, or each user's JSON from DuckDB's `to_json`
  joined into the message text), pack them into PutRecords requests (500 records, 5 MiB) and send
  them with the same boto3 client, once one request after another and once with `--senders`
  concurrent requests, each of the four in its own process and stream; the fastest is the
  floor (time and peak RSS both from that run). No
  validation, diff or durability. Afterwards (not timed) it checks the stream holds every user.
- the push: `run_push` with a fresh state file, the shard count given (`push --shards`) and
  preflight skipped; afterwards (not timed) the same check of the stream.

`--serve-users M` pushes M users and the base size against one `python -m sandbox.server`
(so the push process holds only its own memory, moto's records live in the server) and compares
M's time with the base size's scaled by M / base (target: 10M <= 10.5x 1M, 1.5 GB).
`--second-day N …` pushes day 1 (not timed), then times a day-2 push at 1% churn against the time
to read and validate the day-2 snapshot alone (`StateStore.load_snapshot`), same process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import duckdb

from bench.rows import emit
from sync.limits import DEFAULT_SENDERS, MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT

REGION = "us-east-1"
COHORT = "bench-cohort"
NAME = "Bench cohort"
COMPUTED_TIME = "1700000000"
USERS_PER_MESSAGE = 1000
TIME_TARGET = 1.25
RSS_TARGET = 2.0
SCALE_SLACK = 1.05  # 10M in <= 10.5x the 1M push
SCALE_RSS_MB = 1536
SECOND_DAY_TARGET = 1.5


def write_csv(path: Path, users: int, first: int = 0) -> None:
    """user_id plus two properties for users first..first+users-1."""
    con = duckdb.connect()
    try:
        con.execute(
            f"""COPY (SELECT 'user-' || lpad(i::VARCHAR, 10, '0') AS user_id,
                             'p' || (i % 7) AS plan, (i % 1000)::VARCHAR AS n
                      FROM range({int(first)}, {int(first + users)}) AS t(i))
                TO '{path}' (HEADER, DELIMITER ',')"""
        )
    finally:
        con.close()


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def create_stream(kinesis: Any, name: str, shards: int) -> str:
    """A fresh stream; its ARN once active."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    return str(
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    )


def users_on_stream(kinesis: Any, arn: str) -> int:
    """Distinct users the stream's records carry (consumers would see them all)."""
    from sandbox.streams import read_records

    seen: set[str] = set()
    for record in read_records(kinesis, arn):
        seen.update(user["user_id"] for user in json.loads(record["Data"])["users"])
    return len(seen)


# --- the minimal end-to-end push ---------------------------------------------------------------


def minimal_messages(csv: Path) -> list[bytes]:
    """The CSV's users as Amplitude's 1000-user entering messages."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    names = [n for n in table.column_names if n != "user_id"]
    ids = table.column("user_id").to_pylist()
    columns = [[str(v) for v in table.column(n).to_pylist()] for n in names]
    messages = []
    for seq, start in enumerate(range(0, len(ids), USERS_PER_MESSAGE)):
        users = [
            {
                "user_id": ids[i],
                "user_properties": {n: col[i] for n, col in zip(names, columns, strict=True)},
            }
            for i in range(start, min(start + USERS_PER_MESSAGE, len(ids)))
        ]
        message = {
            "cohort_name": NAME,
            "cohort_id": COHORT,
            "in_cohort": True,
            "computed_time": COMPUTED_TIME,
            "message_id": f"minimal:{seq}",
            "users": users,
        }
        messages.append(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())
    return messages


def minimal_messages_sql(csv: Path) -> list[bytes]:
    """The same messages, each user's JSON built by DuckDB's CSV reader and to_json."""
    con = duckdb.connect()
    try:
        names = [
            row[0]
            for row in con.execute(
                f"DESCRIBE SELECT * FROM read_csv('{csv}', all_varchar = true)"
            ).fetchall()
        ]
        props = ", ".join(f'"{n}" := "{n}"' for n in names if n != "user_id")
        users: list[str] = (
            con.sql(
                f"""SELECT to_json(struct_pack(user_id := user_id,
                                               user_properties := struct_pack({props})))
                    FROM read_csv('{csv}', all_varchar = true)"""
            )
            .to_arrow_table()
            .column(0)
            .to_pylist()
        )
    finally:
        con.close()
    head = (
        f'{{"cohort_name":{json.dumps(NAME)},"cohort_id":{json.dumps(COHORT)},"in_cohort":true,'
        f'"computed_time":"{COMPUTED_TIME}","message_id":"minimal:'
    )
    return [
        f'{head}{seq}","users":[{",".join(users[start : start + USERS_PER_MESSAGE])}]}}'.encode()
        for seq, start in enumerate(range(0, len(users), USERS_PER_MESSAGE))
    ]


BUILDERS = {"json": minimal_messages, "sql": minimal_messages_sql}


def requests_of(messages: list[bytes]) -> list[list[dict[str, Any]]]:
    """Messages in order, packed into requests within PutRecords' count and byte limits."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for seq, data in enumerate(messages):
        entry = {"Data": data, "PartitionKey": f"minimal:{seq}"}
        entry_bytes = len(data) + len(entry["PartitionKey"])
        if len(batches[-1]) == MAX_PUT_RECORDS_COUNT or size + entry_bytes > MAX_PUT_RECORDS_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += entry_bytes
    return [b for b in batches if b]


def send_all(kinesis: Any, arn: str, batches: list[list[dict[str, Any]]], senders: int) -> None:
    """PutRecords every request, re-sending only refused records, with `senders` threads."""

    def put(entries: list[dict[str, Any]]) -> None:
        while entries:
            response = kinesis.put_records(StreamARN=arn, Records=entries)
            entries = [
                e for e, r in zip(entries, response["Records"], strict=True) if "ErrorCode" in r
            ]

    if senders == 1:
        for batch in batches:
            put(batch)
    else:
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(put, batches))


def child_minimal(csv: Path, users: int, shards: int, senders: int, builder: str) -> dict[str, Any]:
    """One way of building and sending (`senders` 1: one request after another), timed."""
    from moto import mock_aws

    from sandbox.moto_fixes import moto_fixes_installed

    with mock_aws(), moto_fixes_installed():
        kinesis = boto3.client("kinesis", region_name=REGION)
        arn = create_stream(kinesis, "minimal", shards)
        started = time.perf_counter()
        send_all(kinesis, arn, requests_of(BUILDERS[builder](csv)), senders)
        seconds = time.perf_counter() - started
        rss = peak_rss_mb()
        complete = users_on_stream(kinesis, arn) == users
    return {"seconds": seconds, "rss_mb": rss, "complete": complete}


# --- the push ------------------------------------------------------------------------------------


def _push(
    csv: Path,
    state: Path,
    arn: str,
    session: Any,
    shards: int,
    senders: int,
    endpoint_url: str | None = None,
    computed_time: str = COMPUTED_TIME,
) -> Any:
    from bench.push_bench import destination_of
    from sync.push import DeliveryOptions, PushRequest, run_push

    request = PushRequest(
        destination=destination_of(arn),
        snapshot=csv,
        cohort_id=COHORT,
        cohort_name=NAME,
        state=state,
        computed_time=computed_time,
        options=DeliveryOptions(senders=senders, shards=shards),
        skip_preflight=True,
    )
    return run_push(request, connect=lambda: session, endpoint_url=endpoint_url)


def child_push(
    csv: Path, users: int, shards: int, senders: int, endpoint_url: str | None
) -> dict[str, Any]:
    """One timed run_push with a fresh state; the stream is checked after the clock stops."""
    from contextlib import ExitStack

    with tempfile.TemporaryDirectory(prefix="e2e-push-") as tmp, ExitStack() as stack:
        if endpoint_url is None:
            from moto import mock_aws

            from sandbox.moto_fixes import moto_fixes_installed

            stack.enter_context(mock_aws())
            stack.enter_context(moto_fixes_installed())
        session = boto3.Session(region_name=REGION)
        kinesis = session.client("kinesis", region_name=REGION, endpoint_url=endpoint_url)
        arn = create_stream(kinesis, f"push-{os.getpid()}", shards)
        started = time.perf_counter()
        report = _push(csv, Path(tmp) / "state.duckdb", arn, session, shards, senders, endpoint_url)
        seconds = time.perf_counter() - started
        rss = peak_rss_mb()
        stored = users_on_stream(kinesis, arn)
    return {
        "seconds": seconds,
        "rss_mb": rss,
        "calls": report.put_records_calls,
        "records": report.records,
        "bytes": report.bytes,
        "ok": report.ok,
        "complete": stored == users,
    }


def child_second_day(csv1: Path, csv2: Path, shards: int, senders: int) -> dict[str, Any]:
    """Day 1 pushed untimed; day 2 timed; then day 2's snapshot read and validated alone."""
    from moto import mock_aws

    from sandbox.moto_fixes import moto_fixes_installed
    from sync.state import StateStore

    with tempfile.TemporaryDirectory(prefix="e2e-day2-") as tmp, mock_aws(), moto_fixes_installed():
        session = boto3.Session(region_name=REGION)
        kinesis = session.client("kinesis", region_name=REGION)
        arn = create_stream(kinesis, "day2", shards)
        state = Path(tmp) / "state.duckdb"
        _push(csv1, state, arn, session, shards, senders)
        started = time.perf_counter()
        report = _push(csv2, state, arn, session, shards, senders, computed_time="1700086400")
        day2 = time.perf_counter() - started
        started = time.perf_counter()
        with StateStore(Path(tmp) / "alone.duckdb") as alone:
            alone.staging.load_snapshot(csv2)
        validate = time.perf_counter() - started
    return {"seconds": day2, "validate": validate, "entered": report.entered, "ok": report.ok}


# --- the parent ----------------------------------------------------------------------------------


def in_child(mode: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one mode in a fresh interpreter; its last stdout line is its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.e2e_bench", "--child", mode, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode:
        raise SystemExit(f"{mode} child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare_1m(tmp: Path, users: int, shards: int, senders: int) -> None:
    """The push against the minimal end-to-end push, and PutRecords calls against the minimum."""
    csv = tmp / "snapshot.csv"
    write_csv(csv, users)
    common = [str(csv), str(users), str(shards), str(senders)]
    # Each way of building and sending in a process of its own, so each peak RSS holds one
    # stream's records; the fastest of the four is the floor.
    tries = {
        (builder, n): in_child("minimal", str(csv), str(users), str(shards), str(n), builder)
        for builder in BUILDERS
        for n in (1, senders)
    }
    for (builder, n), result in tries.items():
        print(
            f"minimal, {builder} messages, {n} sender(s): {result['seconds']:.2f} s, "
            f"{result['rss_mb']:.0f} MiB"
        )
    floor = dict(min(tries.values(), key=lambda r: float(r["seconds"])))
    floor["complete"] = all(r["complete"] for r in tries.values())
    push = in_child("push", *common)
    if not (floor["complete"] and push["complete"] and push["ok"]):
        raise SystemExit(f"a stream is missing users: floor {floor}, push {push}")
    ratio, rss = push["seconds"] / floor["seconds"], push["rss_mb"] / floor["rss_mb"]
    print(
        f"run_push: {push['seconds']:.2f} s, peak RSS {push['rss_mb']:.0f} MiB, "
        f"{push['calls']} PutRecords for {push['records']:,} records"
    )
    emit(
        f"push {users:,} users, first sync, vs the minimal end-to-end push (time)",
        f"{ratio:.2f}x ({push['seconds']:.2f} s vs {floor['seconds']:.2f} s)",
        f"<= {TIME_TARGET}x",
        ratio <= TIME_TARGET,
    )
    emit(
        f"push {users:,} users, first sync, vs the minimal end-to-end push (peak RSS)",
        f"{rss:.2f}x ({push['rss_mb']:.0f} vs {floor['rss_mb']:.0f} MiB)",
        f"<= {RSS_TARGET}x",
        rss <= RSS_TARGET,
    )
    minimum = max(
        -(-push["records"] // MAX_PUT_RECORDS_COUNT), -(-push["bytes"] // MAX_PUT_RECORDS_BYTES)
    )
    emit(
        "PutRecords calls with the shard count",
        f"{push['calls'] / minimum:.3f}x ({push['calls']} vs minimum {minimum})",
        "1.00x the minimum",
        push["calls"] == minimum,
    )


def compare_scale(tmp: Path, base: int, users: int, shards: int, senders: int) -> None:
    """`users` and `base` users pushed against one served moto: time ratio against the scale."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # one access-log line per request
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        world = json.loads(server.stdout.readline())
        admin = world["customer_admin"]
        env = {
            "AWS_ACCESS_KEY_ID": admin["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": admin["secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
        }
        results = {}
        for n in (base, users):
            csv = tmp / f"serve-{n}.csv"
            write_csv(csv, n)
            results[n] = in_child(
                "push", str(csv), str(n), str(shards), str(senders), "--endpoint", url, env=env
            )
            csv.unlink()
            if not (results[n]["ok"] and results[n]["complete"]):
                raise SystemExit(f"push of {n:,} against the server lost users: {results[n]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    scale = users / base
    ratio = results[users]["seconds"] / results[base]["seconds"]
    rss = results[users]["rss_mb"]
    emit(
        f"push {users:,} users against a served moto, vs {base:,} in the same run (time)",
        f"{ratio:.2f}x ({results[users]['seconds']:.1f} s vs {results[base]['seconds']:.1f} s)",
        f"<= {SCALE_SLACK * scale:.2f}x",
        ratio <= SCALE_SLACK * scale,
    )
    emit(
        f"push {users:,} users against a served moto (peak RSS of the push)",
        f"{rss:.0f} MiB",
        f"<= {SCALE_RSS_MB} MiB",
        rss <= SCALE_RSS_MB,
    )


def compare_second_day(tmp: Path, users: int, shards: int, senders: int) -> None:
    """A day-2 push at 1% churn against reading and validating its snapshot alone."""
    churn = users // 100
    day1, day2 = tmp / f"day1-{users}.csv", tmp / f"day2-{users}.csv"
    write_csv(day1, users)
    write_csv(day2, users, first=churn)  # the first 1% leave, 1% new ones join
    result = in_child("second-day", str(day1), str(day2), str(shards), str(senders))
    day1.unlink()
    day2.unlink()
    if not result["ok"] or result["entered"] != churn:
        raise SystemExit(f"second-day push of {users:,} went wrong: {result}")
    ratio = result["seconds"] / result["validate"]
    emit(
        f"second-day push, {users:,} users at 1% churn, vs reading and validating the snapshot",
        f"{ratio:.2f}x ({result['seconds']:.2f} s vs {result['validate']:.2f} s)",
        f"<= {SECOND_DAY_TARGET}x",
        ratio <= SECOND_DAY_TARGET,
    )


def child_main(mode: str, args: list[str]) -> None:
    """Run one child mode and print its JSON result as the last line."""
    modes: dict[str, Callable[[], dict[str, Any]]] = {
        "minimal": lambda: child_minimal(
            Path(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4]
        ),
        "push": lambda: child_push(
            Path(args[0]),
            int(args[1]),
            int(args[2]),
            int(args[3]),
            args[5] if len(args) > 5 and args[4] == "--endpoint" else None,
        ),
        "second-day": lambda: child_second_day(
            Path(args[0]), Path(args[1]), int(args[2]), int(args[3])
        ),
    }
    print(json.dumps(modes[mode]()), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the comparisons asked for."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child_main(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_bench", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000, help="first-sync cohort size")
    parser.add_argument("--shards", type=int, default=64, help="shards per stream (given)")
    parser.add_argument("--senders", type=int, default=DEFAULT_SENDERS)
    parser.add_argument(
        "--serve-users", type=int, default=0, help="also push this many against a served moto"
    )
    parser.add_argument(
        "--second-day", type=int, nargs="*", default=[], help="cohort sizes for day-2 pushes"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        compare_1m(Path(tmp), args.users, args.shards, args.senders)
        if args.serve_users:
            compare_scale(Path(tmp), args.users, args.serve_users, args.shards, args.senders)
        for users in args.second_day:
            compare_second_day(Path(tmp), users, args.shards, args.senders)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
