"""Contract checks and last-writer-wins upserts run inside SQLite, straight from a record's JSON.

Parsing a 1000-user record in Python (dicts, User objects, re-encoded properties) costs far more
than reading it; SQLite's JSON functions do the same per-user work in C. This path never decides
alone that a record is invalid: whatever it does not accept goes back to `contract.decode`, which
gives the verdict and the reason. So it must only never accept what `contract.problems_of`
rejects, nor read a field differently from Python's `json`. Where SQLite's JSON and Python's
differ, a record is screened out before it reaches SQLite (see `bulk_text`) or caught in SQL:

- `\\u` escapes: SQLite (3.40) matches keys by their raw text, Python by their decoded text;
- NUL bytes: SQLite's parser stops at one, Python reports extra data;
- non-UTF-8 data, BOMs and UTF-16/32 (Python's `json` detects and accepts some of them);
- duplicate keys: Python keeps the last, SQLite's paths find the first (counted, see below);
- JSON5 (SQLite 3.42 to 3.44 accept it in json_valid): the path is off when SQLite accepts it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from sync.contract import FIELDS
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

_USER_ID_KEY: Final = '"user_id"'
_PROPERTIES_KEY: Final = '"user_properties"'
_MAX_COMPUTED_TIME_DIGITS: Final = 12  # the contract's \d{1,12}
_STRINGS: Final = ("cohort_name", "cohort_id", "computed_time", "message_id")

# The envelope: one row per top-level key, the users counted. json_each reads the whole text
# once (a path such as '$.cohort_id' would re-read and compare it on every call).
_ENVELOPE: Final = """
SELECT key, type, atom,
       CASE WHEN key = 'users' AND type = 'array'
            THEN (SELECT count(*) FROM json_each(:d, '$.users')) END
FROM json_each(:d)
"""

# Each user: its JSON type and text, and its properties read once (so that a check and the
# stored value share one parse; OFFSET 0 keeps SQLite from inlining the column into both).
_USERS: Final = """(
    SELECT type AS t, value AS v,
           CASE WHEN type = 'object' THEN json_extract(value, '$.user_properties') END AS p
    FROM json_each(:d, '$.users') LIMIT -1 OFFSET 0)"""

# A user's user_id when the user follows the contract, else NULL, for a record whose text has
# already shown (see Envelope.plain) that every "user_id" is followed by a non-empty string and
# every "user_properties" by an object; SQLite then only has to find both keys in each user.
_PLAIN_USER_ID: Final = """CASE
    WHEN t = 'object' AND (p IS NOT NULL OR NOT :each) THEN json_extract(v, '$.user_id') END"""

# The same for any other record, each type checked in SQL. `:each` demands user_properties in
# every user, so that a count of the key's occurrences proves none is duplicated; `:scan` looks
# for a second occurrence of either key in each user, for records where counting over the whole
# record cannot prove it. CASE, not AND: SQLite short-circuits only the former.
_CHECKED_USER_ID: Final = f"""CASE
    WHEN t <> 'object' THEN NULL
    WHEN json_type(v, '$.user_id') IS NOT 'text' THEN NULL
    WHEN coalesce(json_type(v, '$.user_properties'), CASE WHEN :each THEN 'absent' ELSE 'null' END)
         NOT IN ('object', 'null') THEN NULL
    WHEN :scan AND NOT (
        instr(substr(v, instr(v, '{_USER_ID_KEY}') + {len(_USER_ID_KEY)}), '{_USER_ID_KEY}') = 0
        AND instr(substr(v, instr(v, '{_PROPERTIES_KEY}') + {len(_PROPERTIES_KEY)}),
                  '{_PROPERTIES_KEY}') = 0) THEN NULL
    ELSE nullif(json_extract(v, '$.user_id'), '') END"""

# A user breaking the contract gets a NULL user_id, which aborts this statement alone (and
# undoes its rows): the record then goes to contract.decode for the verdict and the reason.
_UPSERT: Final = """
INSERT INTO membership
    (cohort_id, user_id, in_cohort, computed_time, tiebreak, cohort_name, user_properties)
SELECT :cohort_id, {user_id}, :in_cohort, :computed_time, :tiebreak, :cohort_name, p
FROM {users} WHERE true
{on_conflict}
"""
_UPSERT_USERS: Final = {
    plain: _UPSERT.format(
        user_id=_PLAIN_USER_ID if plain else _CHECKED_USER_ID,
        users=_USERS,
        on_conflict=ON_NEWER_VERSION,
    )
    for plain in (True, False)
}
_COUNT_BAD_USERS: Final = {
    plain: f"SELECT count(*) - count({_PLAIN_USER_ID if plain else _CHECKED_USER_ID}) FROM {_USERS}"
    for plain in (True, False)
}

Verdict = Literal["applied", "stale", "duplicate"]


@dataclass(frozen=True)
class Envelope:
    """A record's top-level fields, as read by SQLite, and how to check its users."""

    cohort_name: str
    cohort_id: str
    in_cohort: bool
    computed_time: int
    message_id: str
    users: int
    plain: bool
    each: bool
    scan: bool


def bulk_text(data: bytes) -> str | None:
    """The record's text when SQLite reads it as Python's json would, else None."""
    if b"\\u" in data or b"\x00" in data or json.detect_encoding(data) != "utf-8":
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def bulk_supported(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has JSON functions that reject what Python's json rejects."""
    try:
        row = db.execute("SELECT json_valid('{a:1}'), json_valid('[1,]')").fetchone()
    except sqlite3.OperationalError:
        return False  # built without JSON functions
    return tuple(row) == (0, 0)


def envelope_of(db: sqlite3.Connection, text: str) -> Envelope | None:
    """The record's envelope when SQLite can prove it follows the contract, else None."""
    try:
        rows = db.execute(_ENVELOPE, {"d": text}).fetchall()
    except sqlite3.OperationalError:
        # Malformed JSON makes json_each fail; checking validity up front would cost a parse.
        (valid,) = db.execute("SELECT json_valid(?)", (text,)).fetchone()
        if valid:
            raise
        return None
    fields = {key: (kind, atom, count) for key, kind, atom, count in rows}
    if len(fields) != len(rows):
        return None  # a duplicate key: Python's json keeps the last, SQLite's paths the first
    kinds = {key: fields.get(key, (None, None, None))[0] for key in FIELDS}
    values = {key: fields.get(key, (None, None, None))[1] for key in FIELDS}
    ct = values["computed_time"]
    if not (
        all(kinds[key] == "text" for key in _STRINGS)
        and all(values[key] for key in _STRINGS)
        and kinds["in_cohort"] in ("true", "false")
        and kinds["users"] == "array"
        and isinstance(ct, str)
        and len(ct) <= _MAX_COMPUTED_TIME_DIGITS
        and ct.isascii()
        and ct.isdigit()
    ):
        return None
    users = int(fields["users"][2])
    # Each user holds user_id once and user_properties at most once when the record's counts of
    # the keys say so: every user has the key at least once (checked in SQL), so equal totals
    # leave no room for a second one. Otherwise each user is scanned (a key's name inside a
    # value counts too, so such records are merely checked more slowly).
    ids = text.count(_USER_ID_KEY)
    props = text.count(_PROPERTIES_KEY)
    counted = ids == users and props in (0, users)
    # Plain: every "user_id" is followed by a non-empty string, every "user_properties" by an
    # object, so the types need no check per user (JSON strings cannot hold a bare quote).
    plain = (
        counted
        and text.count(_USER_ID_KEY + ':"') == ids
        and _USER_ID_KEY + ':""' not in text
        and text.count(_PROPERTIES_KEY + ":{") == props
    )
    return Envelope(
        str(values["cohort_name"]),
        str(values["cohort_id"]),
        kinds["in_cohort"] == "true",
        int(ct),
        str(values["message_id"]),
        users,
        plain,
        counted and props > 0,
        not counted,
    )


def apply_text(db: sqlite3.Connection, text: str, envelope: Envelope, now: float) -> Verdict | None:
    """Dedupe and apply one record inside the caller's transaction; None if a user is invalid."""
    checks = {"d": text, "each": int(envelope.each), "scan": int(envelope.scan)}
    seen = db.execute(
        "SELECT 1 FROM seen_messages WHERE message_id = ?", (envelope.message_id,)
    ).fetchone()
    if seen is not None:
        # A duplicate still has to follow the contract, or it is quarantined like any other.
        (bad,) = db.execute(_COUNT_BAD_USERS[envelope.plain], checks).fetchone()
        return "duplicate" if bad == 0 else None
    before = db.total_changes
    try:
        db.execute(
            _UPSERT_USERS[envelope.plain],
            checks
            | {
                "cohort_id": envelope.cohort_id,
                "in_cohort": int(envelope.in_cohort),
                "computed_time": envelope.computed_time,
                "tiebreak": tiebreak_of(envelope.in_cohort, envelope.message_id),
                "cohort_name": envelope.cohort_name,
            },
        )
    except sqlite3.IntegrityError:
        return None
    changed = db.total_changes != before
    db.execute("INSERT INTO seen_messages VALUES (?, ?)", (envelope.message_id, now))
    return "applied" if changed or envelope.users == 0 else "stale"
