"""Contract checks and last-writer-wins upserts straight from a record's bytes, with msgspec.

Parsing a 1000-user record with Python's `json` (dicts, User objects, re-encoded properties)
costs far more than reading it; msgspec decodes it in C into typed structs that hold each user's
`user_properties` as its raw JSON text, stored as is. This path never decides alone that a record
is invalid: whatever it does not accept goes back to `contract.decode`, which gives the verdict
and the reason. So it must only never accept what `contract.decode` (`contract.loads`, then
`contract.problems_of`) rejects, nor read a field differently. Where msgspec and Python's `json`
differ, a record is screened out before it reaches msgspec (see `bulk_readable`) or after (see
`read_record`):

- non-UTF-8 data: msgspec does not check the bytes of strings it skips or keeps raw;
- BOMs and UTF-16/32 (Python's `json` detects some of them; the contract refuses them);
- `\\u` escapes (lone surrogates, escaped key names) and NUL bytes: left to Python, as before;
- NaN/Infinity: msgspec refuses them, so they fall back (and the contract refuses them);
- duplicate keys: msgspec keeps the last, like Python's `json`;
- `computed_time` of non-ASCII digits: left to Python (which refuses them too).
A user listed twice keeps its first listing (`contract.first_listings`): rows apply in order and
only a newer version replaces one.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Annotated, Final, Literal

import msgspec

from sync.membership import tiebreak_of

# Last writer wins inside SQLite: an update applies only when its version is newer.
ON_NEWER_VERSION: Final = """
ON CONFLICT (cohort_id, user_id) DO UPDATE SET
    in_cohort = excluded.in_cohort, computed_time = excluded.computed_time,
    tiebreak = excluded.tiebreak, cohort_name = excluded.cohort_name,
    user_properties = excluded.user_properties
WHERE excluded.computed_time > membership.computed_time
   OR (excluded.computed_time = membership.computed_time
       AND excluded.tiebreak > membership.tiebreak)
"""

# A record's users go in as one multi-row VALUES per chunk (rows apply in order, so the first
# of a user's equal versions wins): executemany costs about twice as much per row in Python's
# sqlite3. ?1..?5 are the record's fields, then each user's id and properties text ('null' when
# none, stored as NULL).
_ENVELOPE_PARAMS: Final = 5
_MAX_CHUNK_USERS: Final = 1000


@functools.lru_cache(maxsize=8)
def _upsert_users(count: int) -> str:
    rows = ",".join(
        f"(?{_ENVELOPE_PARAMS + 2 * i + 1},?{_ENVELOPE_PARAMS + 2 * i + 2})" for i in range(count)
    )
    return (
        "INSERT INTO membership SELECT ?1, column1, ?2, ?3, ?4, ?5, nullif(column2, 'null')"
        f" FROM (VALUES {rows}) WHERE true" + ON_NEWER_VERSION
    )


_MAX_COMPUTED_TIME_DIGITS: Final = 12  # the contract's \d{1,12}
_PROPERTIES_KEY: Final = b'"user_properties"'
_NULL: Final = msgspec.Raw(b"null")

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Verdict = Literal["applied", "stale", "duplicate"]


class BulkUser(msgspec.Struct, gc=False):
    """One user as msgspec reads it; properties kept as their JSON text (any JSON value)."""

    user_id: NonEmpty
    user_properties: msgspec.Raw = _NULL


class BulkRecord(msgspec.Struct, gc=False):
    """A record's payload as msgspec reads it, with the contract's types."""

    cohort_name: NonEmpty
    cohort_id: NonEmpty
    in_cohort: bool
    computed_time: str
    message_id: NonEmpty
    users: list[BulkUser]


_DECODER: Final = msgspec.json.Decoder(BulkRecord)


def bulk_readable(data: bytes) -> bool:
    """Whether msgspec reads the data as Python's json would (else the record goes to Python)."""
    if b"\\u" in data or b"\x00" in data or json.detect_encoding(data) != "utf-8":
        return False
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def read_record(data: bytes) -> BulkRecord | None:
    """The record when msgspec can prove it follows the contract, else None."""
    if not bulk_readable(data):
        return None
    try:
        record = _DECODER.decode(data)
    except (msgspec.MsgspecError, RecursionError):
        return None
    ct = record.computed_time
    if not (len(ct) <= _MAX_COMPUTED_TIME_DIGITS and ct.isascii() and ct.isdigit()):
        return None
    if not _properties_are_objects(data, record):
        return None
    return record


def _properties_are_objects(data: bytes, record: BulkRecord) -> bool:
    """Whether every user's user_properties is an object or null (or absent)."""
    # Fast: every "user_properties" in the text (keys at any depth; never inside a string, whose
    # quotes are escaped) is followed by an object or null. Otherwise each user is looked at.
    total = data.count(_PROPERTIES_KEY)
    if total == data.count(_PROPERTIES_KEY + b":{") + data.count(_PROPERTIES_KEY + b":null"):
        return True
    return all(bytes(user.user_properties)[:1] in (b"{", b"n") for user in record.users)


def apply_record(db: sqlite3.Connection, record: BulkRecord, now: float) -> Verdict:
    """Dedupe and apply one valid record inside the caller's transaction."""
    seen = db.execute("INSERT OR IGNORE INTO seen_messages VALUES (?, ?)", (record.message_id, now))
    if seen.rowcount == 0:
        return "duplicate"
    envelope = (
        record.cohort_id,
        int(record.in_cohort),
        int(record.computed_time),
        tiebreak_of(record.in_cohort, record.message_id),
        record.cohort_name,
    )
    users = record.users
    chunk = chunk_users(db)
    before = db.total_changes
    for start in range(0, len(users), chunk):
        params: list[object] = list(envelope)
        part = users[start : start + chunk]
        for user in part:
            params += (user.user_id, bytes(user.user_properties).decode())
        db.execute(_upsert_users(len(part)), params)
    return "stale" if users and db.total_changes == before else "applied"


def chunk_users(db: sqlite3.Connection) -> int:
    """How many users one statement can take within this connection's parameter limit."""
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(_MAX_CHUNK_USERS, (limit - _ENVELOPE_PARAMS) // 2))
