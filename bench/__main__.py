"""`make bench`: every benchmark with its defaults, one after another (each prints its figures)."""

import subprocess
import sys

BENCHMARKS = (
    "diff_bench",
    "push_bench",
    "consume_bench",
    "throughput_bench",
    "lambda_bench",
    "venv_size",
    "wide_csv_bench",
)


def main() -> int:
    """Run each benchmark module in its own process so peak-memory figures stay separate."""
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== bench.{name} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
