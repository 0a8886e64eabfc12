"""The rules for what a command accepts besides the snapshot: pure checks, applied at the edge.

Cohort id: 1-64 of `[A-Za-z0-9_.-]`, starting with a letter or digit (Amplitude's ids are short
alphanumerics like `gs72ns`). Cohort name: 1-1024 characters, not blank, no control characters.
Numeric options: whole numbers within the ranges in sync/limits.py. Every check returns or raises
before anything is read from AWS or written to the state.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Final

from sync.limits import COHORT_ID_PATTERN, MAX_COHORT_ID_CHARS, MAX_COHORT_NAME_CHARS

# C0 controls and DEL: never part of an identifier or a name a person typed.
CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f]")
_COHORT_ID: Final = re.compile(COHORT_ID_PATTERN)
_SHOWN_CHARS: Final = 40


def shown(value: str) -> str:
    """`value` quoted with control characters escaped; long values cut, their length given."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"


def cohort_id_problems(value: str) -> list[str]:
    """Every way `value` breaks the cohort id rule (empty when it follows it)."""
    problems = []
    if not value:
        problems.append("--cohort-id '': must not be empty")
    elif len(value) > MAX_COHORT_ID_CHARS:
        problems.append(
            f"--cohort-id {shown(value)}: at most {MAX_COHORT_ID_CHARS} characters (the "
            "message_id built from it must fit a 256-character partition key)"
        )
    elif not _COHORT_ID.fullmatch(value):
        problems.append(
            f"--cohort-id {shown(value)}: only letters, digits, '_', '.' and '-', starting with "
            "a letter or digit (Amplitude's ids look like 'gs72ns'); no spaces or control "
            "characters"
        )
    return problems


def cohort_name_problems(value: str) -> list[str]:
    """Every way `value` breaks the cohort name rule (empty when it follows it)."""
    problems = []
    if not value.strip():
        problems.append(f"--cohort-name {shown(value)}: must not be empty or blank")
    if len(value) > MAX_COHORT_NAME_CHARS:
        problems.append(f"--cohort-name {shown(value)}: at most {MAX_COHORT_NAME_CHARS} characters")
    control = CONTROL_CHARACTERS.search(value)
    if control is not None:
        problems.append(
            f"--cohort-name {shown(value)}: holds control character "
            f"U+{ord(control.group()):04X}; names are printable text"
        )
    return problems


def range_problem(option: str, value: int, bounds: tuple[int, int]) -> str | None:
    """`option value: must be LOW-HIGH` when `value` is outside `bounds`, else None."""
    low, high = bounds
    if low <= value <= high:
        return None
    return f"{option} {value}: must be a whole number from {low:,} to {high:,}"


def whole_number(option: str, bounds: tuple[int, int] | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number, within `bounds` if given (argparse names the option).

    Delivery options pass no bounds: the options object checks its own ranges (sync/options.py).
    """
    need = (
        "a whole number"
        if bounds is None
        else f"a whole number from {bounds[0]:,} to {bounds[1]:,}"
    )

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: need {need}") from None
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise argparse.ArgumentTypeError(f"{text!r}: need {need}")
        return value

    parse.__name__ = option  # argparse shows a type's name when it cannot call it
    return parse


def fraction(text: str) -> float:
    """An argparse type: a share from 0 to 1 (`0.5`), as the mass-exit threshold is."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r}: need a fraction from 0 to 1, such as 0.5")
    return value
