"""State size over daily pushes: the state file after each day for an N-user cohort at 1% churn.

Run: .venv/bin/python -m bench.state_bench [--users 1000000] [--days 5]

Each day runs what `run_push` does to the state, without Kinesis: a fresh StateStore on the same
file, the day's snapshot (generated in DuckDB: the oldest 1% leave, 1% new users join), stage,
acknowledge every pending record (as the publisher does once Kinesis took them), compact. The
file size is read after each day; the target (issue 11) is within 1.5x of its size after day 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench.rows import emit
from sync.messages import OutgoingRecord, build_messages
from sync.state import StateStore

COHORT = "bench-cohort"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/bench"


def day(path: Path, users: int, index: int) -> tuple[int, float]:
    """One day's push to the state; (file bytes after it, seconds)."""
    churn = users // 100
    computed_time = str(1_700_000_000 + index * 86_400)
    sync_id = f"day{index}"

    def build(in_cohort: bool, batch: Iterable[str], first: int) -> Iterable[OutgoingRecord]:
        return build_messages(
            cohort_id=COHORT,
            cohort_name="Bench",
            in_cohort=in_cohort,
            computed_time=computed_time,
            sync_id=sync_id,
            first_sequence=first,
            users=batch,
        )

    started = time.perf_counter()
    with StateStore(path) as store:
        store.bind(COHORT, "Bench", STREAM)
        first = index * churn
        store.staging.use_snapshot(
            store.connection.sql(
                f"""SELECT 'user-' || lpad(i::VARCHAR, 10, '0') AS user_id,
                           '{{"user_id":"user-' || lpad(i::VARCHAR, 10, '0')
                           || '","user_properties":{{"plan":"p' || (i % 7) || '","n":"'
                           || (i % 1000) || '"}}}}' AS user_json
                    FROM range({first}, {first + users}) AS t(i)"""
            )
        )
        store.staging.stage(
            cohort_id=COHORT,
            cohort_name="Bench",
            computed_time=computed_time,
            sync_id=sync_id,
            build=build,
        )
        pending = [r.message_id for r in store.outbox.pending()]
        for i in range(0, len(pending), 500):  # one ack per PutRecords call, as delivered
            store.outbox.ack(pending[i : i + 500])
        store.compact()
    wal = Path(str(path) + ".wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0), (
        time.perf_counter() - started
    )


def main() -> None:
    """Run the days and print each day's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="state-bench-") as tmp:
        path = Path(tmp) / "state.duckdb"
        sizes = []
        for index in range(args.days):
            size, seconds = day(path, args.users, index)
            sizes.append(size)
            print(f"day {index + 1:3d}: {size / 1e6:8.1f} MB  ({seconds:.1f} s)", flush=True)
    worst = max(sizes) / sizes[0]
    emit(
        f"state file after {args.days} daily pushes of {args.users:,} users at 1% churn",
        f"{max(sizes) / 1e6:.1f} MB at most, {worst:.2f}x day 1 ({sizes[0] / 1e6:.1f} MB)",
        "<= 1.5x its size after day 1",
        worst <= 1.5,
    )


if __name__ == "__main__":
    main()
