"""Write tests/slow.txt from `pytest --durations=0` reports: the test functions over 2 s.

    .venv/bin/python -m pytest -n 2 -q --durations=0 > /tmp/durations.txt
    .venv/bin/python scripts/slow_tests.py /tmp/durations.txt [/tmp/durations-2.txt ...]

A function is slow when one of its cases spends more than the threshold in setup, call and
teardown together; tests/conftest.py marks every case of it `slow`. Durations are wall time, so
a loaded machine inflates them: given several reports, a function's time is its least across
the reports that ran it.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

THRESHOLD_SECONDS = 2.0
ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests" / "slow.txt"
LINE = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+(\S+)")
HEADER = """\
# Test functions measured over {threshold:g} s (setup + call + teardown of their slowest case),
# marked `slow` by tests/conftest.py. `make check` leaves them out; `make test` runs them.
# Regenerate from a full run: see scripts/slow_tests.py.
"""


@cache
def defined_functions(path: str) -> frozenset[str]:
    """The functions a test file (relative to the checkout) defines; none if it is gone."""
    source = ROOT / path
    if not source.exists():
        return frozenset()
    tree = ast.parse(source.read_text())
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


def exists(function: str) -> bool:
    """Whether `path::function` is still a test function of the checkout."""
    path, _, name = function.partition("::")
    return name in defined_functions(path)


def function_seconds(report: str) -> dict[str, float]:
    """Each test function's slowest case in one report: setup, call and teardown together."""
    per_case: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        found = LINE.match(line)
        if found:
            per_case[found.group(2)] += float(found.group(1))
    per_function: dict[str, float] = defaultdict(float)
    for node_id, seconds in per_case.items():
        function = node_id.split("[", 1)[0]
        per_function[function] = max(per_function[function], seconds)
    return per_function


def slow_functions(reports: list[str], threshold: float = THRESHOLD_SECONDS) -> list[str]:
    """`path::function` of every test whose least time across the reports exceeds `threshold`."""
    least: dict[str, float] = {}
    for report in reports:
        for function, seconds in function_seconds(report).items():
            least[function] = min(seconds, least.get(function, seconds))
    # A report may predate a rename or a removal: list only what exists.
    return sorted(f for f, seconds in least.items() if seconds > threshold and exists(f))


def main(argv: list[str]) -> int:
    functions = slow_functions([Path(report).read_text() for report in argv])
    LIST.write_text(
        HEADER.format(threshold=THRESHOLD_SECONDS) + "".join(f + "\n" for f in functions)
    )
    print(f"{LIST}: {len(functions)} slow test functions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
