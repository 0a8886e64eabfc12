"""`make bench`: every benchmark, then every target row as measured / target / met or missed.

Run: .venv/bin/python -m bench [--large] [--users N] [--serve-users N] [--second-day N ...]
     [--diff-users N]

Targets are reported, not a gate: the exit status is 1 only when a benchmark errors (a missed
target on a loaded machine is a figure, not a failure). The defaults fit this shared 2-core
machine; `--large` runs the issue's sizes (10M against a served moto, 1M and 5M second days,
10M x 10M diff), which take many minutes and several GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.rows import parse

ISSUE_SIZES = {"serve_users": 10_000_000, "second_day": [1_000_000, 5_000_000]}


def run(module: str, args: list[str], rows: list[dict[str, object]]) -> bool:
    """Run one benchmark module in its own process, echo it, keep its rows; True if it ran."""
    print(f"\n=== bench.{module} {' '.join(args)} ===", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        row = parse(line)
        if row is None:
            print(line, end="", flush=True)
        else:
            rows.append(row)
    return process.wait() == 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the target table, exit 1 only if one errored."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--large", action="store_true", help="the issue's sizes (slow)")
    parser.add_argument("--users", type=int, default=1_000_000, help="first-sync push size")
    parser.add_argument("--serve-users", type=int, default=2_000_000)
    parser.add_argument("--second-day", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--diff-users", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    if args.large:
        args.serve_users = ISSUE_SIZES["serve_users"]
        args.second_day = ISSUE_SIZES["second_day"]
        args.diff_users = 10_000_000
    e2e = ["--users", str(args.users), "--serve-users", str(args.serve_users)]
    if args.second_day:
        e2e += ["--second-day", *map(str, args.second_day)]
    plan = [
        ("e2e_bench", e2e),
        ("diff_bench", ["--users", str(args.diff_users), "--churn", "0.01"]),
        ("throughput_bench", ["--hog"]),
        ("push_bench", ["--users", str(args.users), "--phases"]),
        ("consume_bench", []),
        ("state_bench", []),
        ("lambda_bench", []),
        ("lambda_scale_bench", []),
        ("wide_csv_bench", []),
        ("venv_size", []),
    ]
    rows: list[dict[str, object]] = []
    failed = [module for module, module_args in plan if not run(module, module_args, rows)]
    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for row in rows:
        verdict = {True: "met", False: "missed", None: "not run"}[row["met"]]  # type: ignore[index]
        print(f"| {row['figure']} | {row['measured']} | {row['target']} | {verdict} |")
    if failed:
        print(f"errored: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
