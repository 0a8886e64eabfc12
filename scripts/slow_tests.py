"""Write tests/slow.txt from a `pytest --durations=0` report: the test functions over 2 s.

    .venv/bin/python -m pytest -n 2 -q --durations=0 > /tmp/durations.txt
    .venv/bin/python scripts/slow_tests.py /tmp/durations.txt

A function is slow when one of its cases spends more than the threshold in setup, call and
teardown together; tests/conftest.py marks every case of it `slow`.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

THRESHOLD_SECONDS = 2.0
LIST = Path(__file__).resolve().parents[1] / "tests" / "slow.txt"
LINE = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+(\S+)")
HEADER = """\
# Test functions measured over {threshold:g} s (setup + call + teardown of their slowest case),
# marked `slow` by tests/conftest.py. `make check` leaves them out; `make test` runs them.
# Regenerate from a full run: see scripts/slow_tests.py.
"""


def slow_functions(report: str, threshold: float = THRESHOLD_SECONDS) -> list[str]:
    """`path::function` of every test whose slowest case took more than `threshold` seconds."""
    per_case: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        found = LINE.match(line)
        if found:
            per_case[found.group(2)] += float(found.group(1))
    per_function: dict[str, float] = defaultdict(float)
    for node_id, seconds in per_case.items():
        function = node_id.split("[", 1)[0]
        per_function[function] = max(per_function[function], seconds)
    return sorted(f for f, seconds in per_function.items() if seconds > threshold)


def main(argv: list[str]) -> int:
    (report,) = argv
    functions = slow_functions(Path(report).read_text())
    LIST.write_text(
        HEADER.format(threshold=THRESHOLD_SECONDS) + "".join(f + "\n" for f in functions)
    )
    print(f"{LIST}: {len(functions)} slow test functions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
