"""Wide-snapshot benchmark: validating and loading a one-row CSV or Parquet file of N columns.

Run: .venv/bin/python -m bench.wide_csv_bench [--columns 1000 2500 5000 10000] [--parquet 2000]

Each width runs in a child process, so its peak memory is its own; the timed part is
load_snapshot() alone (the file is written before the clock starts), on a connection with the
state store's working memory (1 GB, as `StateStore` opens it). Before the wide path, time grew
with the square of the width (2,000 columns: 14 s); before the CSV was read in passes of 2,000
columns, 10,000 ran out of that memory ("failed to allocate data of size 32.0 KiB (953.6 MiB/
953.6 MiB used)").
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bench.rows import emit
from sync.errors import SnapshotError
from sync.limits import MAX_CSV_COLUMNS, MAX_PARQUET_COLUMNS
from sync.snapshots import load_snapshot

WORKING_MEMORY = "1GB"  # the state store's default memory_limit
# Seconds per 1,000 columns may grow by at most this factor from the narrowest to the widest
# measured: "linear in columns" with room for noise on a shared machine.
LINEAR_SLACK = 2.5


def _write(path: Path, columns: int, fmt: str) -> None:
    names = [f"p{i}" for i in range(columns - 1)]
    if fmt == "parquet":
        pq.write_table(pa.table({"user_id": ["u1"], **{n: ["v"] for n in names}}), path)
    else:
        path.write_text(
            "user_id," + ",".join(names) + "\nu1," + ",".join("v" for _ in names) + "\n"
        )


def _one(columns: int, fmt: str, queue: multiprocessing.Queue[tuple[float, int, str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="wide-") as tmp:
        path = Path(tmp) / f"wide.{fmt}"
        _write(path, columns, fmt)
        con = duckdb.connect(config={"memory_limit": WORKING_MEMORY})
        started = time.perf_counter()
        try:
            outcome = f"{load_snapshot(con, path).users} user loaded"
        except SnapshotError as exc:
            outcome = "refused: " + str(exc).splitlines()[-1].split(": ", 2)[-1]
        seconds = time.perf_counter() - started
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, outcome))


def measure(columns: int, fmt: str) -> tuple[float, int, str]:
    """(seconds, peak MiB, outcome) of loading one file of `columns` columns."""
    queue: multiprocessing.Queue[tuple[float, int, str]] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_one, args=(columns, fmt, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> None:
    """Print seconds and peak memory per width, then the target row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[1_000, 2_500, 5_000, 10_000])
    parser.add_argument("--parquet", type=int, nargs="*", default=[MAX_PARQUET_COLUMNS])
    args = parser.parse_args()
    loaded: dict[int, float] = {}
    peaks: list[int] = []
    for fmt, widths in (("csv", args.columns), ("parquet", args.parquet)):
        for columns in widths:
            seconds, peak_mib, outcome = measure(columns, fmt)
            print(
                f"{fmt:>7} {columns:>7,} columns: {seconds:7.2f} s, peak {peak_mib:,} MiB, "
                f"{outcome}",
                flush=True,
            )
            peaks.append(peak_mib)
            if fmt == "csv" and outcome.endswith("loaded"):
                loaded[columns] = seconds
    widest, narrowest = max(args.columns), min(args.columns)
    per_k = {c: s / (c / 1000) for c, s in loaded.items()}
    linear = len(per_k) == len(args.columns) and per_k[widest] <= LINEAR_SLACK * per_k[narrowest]
    emit(
        f"wide CSV: {widest:,} columns (1 row) in {WORKING_MEMORY}",
        f"{loaded.get(widest, float('nan')):.2f} s, peak {max(peaks):,} MiB; s per 1,000 columns "
        + ", ".join(f"{c:,}: {v:.2f}" for c, v in sorted(per_k.items())),
        f"loads {MAX_CSV_COLUMNS:,} CSV / {MAX_PARQUET_COLUMNS:,} Parquet columns; "
        f"s per 1,000 columns within {LINEAR_SLACK}x",
        widest >= MAX_CSV_COLUMNS and linear,
    )


if __name__ == "__main__":
    main()
