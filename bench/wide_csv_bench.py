"""Wide-CSV benchmark: validating and loading a one-row CSV snapshot with N columns.

Run: .venv/bin/python -m bench.wide_csv_bench [--columns 250 1000 2000 10000]

Each width runs in a child process, so its peak memory is its own; the timed part is
load_snapshot() alone (the file is written before the clock starts). Before the wide path, time
grew with the square of the width (2,000 columns: 14 s; 10,000 ran out of memory).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from sync.errors import SnapshotError
from sync.snapshots import load_snapshot


def _one(columns: int, queue: multiprocessing.Queue[tuple[float, int, str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="wide-csv-") as tmp:
        path = Path(tmp) / "wide.csv"
        names = [f"p{i}" for i in range(columns - 1)]
        path.write_text(
            "user_id," + ",".join(names) + "\nu1," + ",".join("v" for _ in names) + "\n"
        )
        con = duckdb.connect()
        started = time.perf_counter()
        try:
            outcome = f"{load_snapshot(con, path).users} user loaded"
        except SnapshotError as exc:
            outcome = "refused: " + str(exc).splitlines()[-1].split(": ", 2)[-1]
        seconds = time.perf_counter() - started
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, outcome))


def main() -> None:
    """Print seconds and peak memory per width."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[250, 1000, 2000, 10_000, 10_001])
    args = parser.parse_args()
    for columns in args.columns:
        queue: multiprocessing.Queue[tuple[float, int, str]] = multiprocessing.Queue()
        child = multiprocessing.Process(target=_one, args=(columns, queue))
        child.start()
        seconds, peak_mib, outcome = queue.get()
        child.join()
        print(
            f"{columns:>7,} columns: {seconds:7.2f} s, peak {peak_mib:,} MiB, {outcome}", flush=True
        )


if __name__ == "__main__":
    main()
