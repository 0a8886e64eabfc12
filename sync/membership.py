"""Cohort membership from unordered, duplicated messages: last writer wins per (cohort, user).

Delivery is unordered and at-least-once, so every update carries a version and an update applies
only if its version is newer than the one recorded for that (cohort_id, user_id):

- `computed_time`, compared as an integer, orders updates;
- on equal `computed_time`, an exiting update beats an entering one (when Amplitude's view of a
  user is ambiguous, not targeting them is the safe side);
- on equal `computed_time` and direction, the larger `message_id` (compared by code point) wins.

That is a total order over distinct messages, so any shuffle and duplication of one set of
messages yields the same final membership. Exiting users keep a row (`in_cohort` false) so that
an older "entering" arriving late cannot resurrect them. Dedupe by `message_id` only saves work
and makes the counts honest; correctness does not depend on its window.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sync.contract import USER_ID, USER_PROPERTIES

# Seen message ids are kept this long; it should be at least the stream's retention (24 h by
# default, up to 8760 h). A week covers the default and the common 7-day extended retention.
DEFAULT_DEDUPE_RETENTION_HOURS: Final = 24 * 7
FORMATS: Final = ("csv", "jsonl")

_ENTERING_RANK: Final = "0"
_EXITING_RANK: Final = "1"


@dataclass(frozen=True, order=True)
class Version:
    """Orders updates to one user: computed_time first, then the tie-break string."""

    computed_time: int
    tiebreak: str


def tiebreak_of(in_cohort: bool, message_id: str) -> str:
    """The tie-break for equal computed_time: exiting beats entering, then larger message_id."""
    return (_ENTERING_RANK if in_cohort else _EXITING_RANK) + ":" + message_id


@dataclass(frozen=True)
class MemberState:
    """What is recorded for one (cohort_id, user_id): the latest update and its version."""

    cohort_name: str
    in_cohort: bool
    version: Version
    user_properties: Mapping[str, Any] | None


@dataclass(frozen=True)
class Member:
    """One current member of a cohort, as printed by `cohort-sync members`."""

    user_id: str
    user_properties: Mapping[str, Any] | None


def property_columns(members: Iterable[Member]) -> list[str]:
    """Every property name the members carry, sorted: the CSV columns after `user_id`."""
    names: set[str] = set()
    for member in members:
        names.update(member.user_properties or ())
    return sorted(names)


def render_members(
    members: Iterable[Member], fmt: str, columns: Sequence[str] = ()
) -> Iterator[str]:
    """Lines (newline-terminated) printing members as `csv` or `jsonl`.

    CSV has a snapshot's shape — `user_id`, then one column per name in `columns` (strings as
    they are, other values as JSON, absent ones empty) — so it can be pushed again as is.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if fmt == "jsonl":
        for member in members:
            yield _jsonl_line(member)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((USER_ID, *columns))
    for member in members:
        props = member.user_properties or {}
        writer.writerow((member.user_id, *(_cell(props[c]) if c in props else "" for c in columns)))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    # The header alone still goes out for an empty cohort, so consumers can parse it.
    if buffer.getvalue():
        yield buffer.getvalue()


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _jsonl_line(member: Member) -> str:
    props = None if member.user_properties is None else dict(member.user_properties)
    return _json({USER_ID: member.user_id, USER_PROPERTIES: props}) + "\n"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
