"""Diff benchmark: plan() and stage() of an N-user cohort against N stored members at a churn rate.

Run: .venv/bin/python -m bench.diff_bench [--users 10000000] [--churn 0.01]

The previous membership is written straight into a state file by a child process (so its peak
memory is not charged to the measured one); the new snapshot is generated in DuckDB. The timed
part is plan() and stage(), which includes the diff, building the entering/exiting messages with
sync.messages and committing outbox, membership and sync row.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench.rows import emit
from sync.messages import OutgoingRecord, build_messages
from sync.state import StateStore

COHORT = "bench-cohort"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/bench"
# Ids are zero-padded so that the snapshot's shifted range overlaps the stored one exactly.
_USER = "'user-' || lpad(i::VARCHAR, 10, '0')"
_JSON = (
    f"json_object('user_id', {_USER}, 'user_properties', "
    "json_object('plan', 'p' || (i % 7 + {bump}), 'n', i % 1000))::VARCHAR"
)


def _seed(path: Path, users: int, memory_limit: str) -> None:
    """Write the previous membership (users 0..N-1) into a fresh state file."""
    with StateStore(path, memory_limit=memory_limit) as store:
        store.bind(COHORT, "Bench", STREAM)
        con = store.connection
        con.execute(
            f"""INSERT INTO membership
                SELECT $c, {_USER}, j, hash(j)
                FROM (SELECT i, {_JSON.format(bump=0)} AS j FROM range($n) AS t(i))""",
            {"c": COHORT, "n": users},
        )
        con.execute(
            "INSERT INTO syncs VALUES ('seed', 1, $c, '0', now(), 'delivered', $n, 0, 0, 0)",
            {"c": COHORT, "n": users},
        )
        con.execute("CHECKPOINT")


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(users: int, churn: float, memory_limit: str, threads: int | None) -> None:
    """Seed, generate the snapshot, time plan() and stage(), print the figures."""
    moved = int(users * churn)
    with tempfile.TemporaryDirectory(prefix="diff-bench-") as tmp:
        path = Path(tmp) / "state.duckdb"
        started = time.perf_counter()
        seeder = multiprocessing.get_context("spawn").Process(
            target=_seed, args=(path, users, memory_limit)
        )
        seeder.start()
        seeder.join()
        if seeder.exitcode != 0:
            raise SystemExit(f"seeding failed with exit code {seeder.exitcode}")
        seeded = time.perf_counter() - started

        with StateStore(path, memory_limit=memory_limit, threads=threads) as store:
            started = time.perf_counter()
            # Users 0..moved-1 exit, N..N+moved-1 enter; every 1000th staying user changes plan.
            relation = store.connection.sql(
                f"""SELECT {_USER} AS user_id, {_JSON.format(bump="(i % 1000 = 0)::INT")}
                        AS user_json
                    FROM range({moved}, {users + moved}) AS t(i)"""
            )
            store.staging.use_snapshot(relation)
            generated = time.perf_counter() - started
            rss_before = _peak_rss_mb()

            # The raw floor: DuckDB's own anti-joins of the same two sides (who enters, who
            # leaves), materialized, in the same process and run, before
            # the diff (plan() then reuses nothing from them).
            con = store.connection
            started = time.perf_counter()
            con.execute(
                """CREATE OR REPLACE TEMP TABLE _raw_enter AS SELECT s.user_id FROM _snapshot s
                   ANTI JOIN membership m ON s.user_id = m.user_id"""
            )
            con.execute(
                """CREATE OR REPLACE TEMP TABLE _raw_exit AS SELECT m.user_id FROM membership m
                   ANTI JOIN _snapshot s ON s.user_id = m.user_id"""
            )
            raw = time.perf_counter() - started
            con.execute("DROP TABLE _raw_enter")
            con.execute("DROP TABLE _raw_exit")

            started = time.perf_counter()
            plan = store.staging.plan(COHORT)
            planned = time.perf_counter() - started

            def build(
                in_cohort: bool, batch: Iterable[str], first_sequence: int
            ) -> Iterable[OutgoingRecord]:
                return build_messages(
                    cohort_id=COHORT,
                    cohort_name="Bench",
                    in_cohort=in_cohort,
                    computed_time="1700000000",
                    sync_id="bench",
                    first_sequence=first_sequence,
                    users=batch,
                )

            started = time.perf_counter()
            staged = store.staging.stage(
                cohort_id=COHORT,
                cohort_name="Bench",
                computed_time="1700000000",
                sync_id="bench",
                build=build,
            )
            stage_seconds = time.perf_counter() - started
            peak = _peak_rss_mb()

    print(f"users={users:,} churn={churn} memory_limit={memory_limit} threads={threads or 'all'}")
    print(f"seed (child process)       {seeded:8.2f} s")
    print(f"snapshot generated         {generated:8.2f} s   peak RSS so far {rss_before:7.0f} MB")
    print(
        f"plan()                     {planned:8.2f} s   entering={plan.entering:,} "
        f"exiting={plan.exiting:,} unchanged={plan.unchanged:,} updated={plan.updated:,}"
    )
    print(
        f"stage()                    {stage_seconds:8.2f} s   messages={staged.messages:,} "
        f"bytes={staged.bytes:,}"
    )
    print(f"plan() + stage()           {planned + stage_seconds:8.2f} s")
    print(f"peak RSS (this process)    {peak:8.0f} MB")
    print(f"raw DuckDB anti-joins      {raw:8.2f} s   (the same two sides, before the diff)")
    ratio = (planned + stage_seconds) / raw
    emit(
        f"diff {users:,} x {users:,} at {churn:.0%} churn vs a raw DuckDB anti-join (time)",
        f"{ratio:.2f}x ({planned + stage_seconds:.2f} s vs {raw:.2f} s)",
        "<= 1.5x",
        ratio <= 1.5,
    )
    emit(
        f"diff {users:,} x {users:,} at {churn:.0%} churn (peak RSS)",
        f"{peak:.0f} MB",
        "<= 1.5 GB",
        peak <= 1536,
    )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=10_000_000, help="cohort size (both sides)")
    parser.add_argument("--churn", type=float, default=0.01, help="fraction entering and exiting")
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default all)")
    args = parser.parse_args()
    run(args.users, args.churn, args.memory_limit, args.threads)


if __name__ == "__main__":
    main()
