"""One line per target row, printed by each benchmark and collected by `python -m bench`."""

from __future__ import annotations

import json
from typing import Final

PREFIX: Final = "BENCH-ROW "


def emit(figure: str, measured: str, target: str, met: bool | None) -> None:
    """Print a target row: what was measured, the target, and met/missed (None: not run)."""
    row = {"figure": figure, "measured": measured, "target": target, "met": met}
    print(PREFIX + json.dumps(row), flush=True)


def parse(line: str) -> dict[str, object] | None:
    """The row a line carries, if it is one."""
    if not line.startswith(PREFIX):
        return None
    row: dict[str, object] = json.loads(line[len(PREFIX) :])
    return row
