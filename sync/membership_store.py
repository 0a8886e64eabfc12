"""The consumer's local state: checkpoints, seen message ids, membership and quarantine (SQLite).

One page of records and its shard checkpoint commit in one transaction, so a restart resumes
exactly after the last committed record: nothing applied twice, nothing skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from sync.contract import CohortMessage, decode
from sync.errors import ContractError, StateError, StorageError
from sync.membership import DEFAULT_DEDUPE_RETENTION_HOURS, Member, MemberState, Version
from sync.membership import tiebreak_of as _tiebreak_of
from sync.raw_records import ON_NEWER_VERSION, Verdict, apply_record, read_record
from sync.state_files import (
    CONSUMER_APPLICATION_ID,
    CONSUMER_FORMAT_VERSION,
    FileKind,
    existing,
    foreign_tables,
    newer_format,
    not_consumer_state,
)

# SQLite's words for a write the disk refused: SQLITE_FULL, SQLITE_IOERR.
_DISK_REFUSED: Final = re.compile(r"database or disk is full|disk I/O error")
# Enough raw bytes to recognise a poison record without storing megabytes of it.
QUARANTINE_PREFIX_BYTES: Final = 1024
PAGE_SIZE_BYTES: Final = 16384
MAX_RETENTION_HOURS: Final = 8760  # Kinesis's longest retention; longer windows buy nothing

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS checkpoints (
    stream_arn TEXT NOT NULL, shard_id TEXT NOT NULL, sequence_number TEXT,
    shard_closed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_arn, shard_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_starts (
    stream_arn TEXT PRIMARY KEY, start_epoch_seconds REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_messages (
    message_id TEXT PRIMARY KEY, seen_epoch_seconds REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_messages_by_time ON seen_messages (seen_epoch_seconds);
CREATE TABLE IF NOT EXISTS membership (
    cohort_id TEXT NOT NULL, user_id TEXT NOT NULL, in_cohort INTEGER NOT NULL,
    computed_time INTEGER NOT NULL, tiebreak TEXT NOT NULL, cohort_name TEXT NOT NULL,
    user_properties TEXT,
    PRIMARY KEY (cohort_id, user_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    stream_arn TEXT NOT NULL, shard_id TEXT NOT NULL, sequence_number TEXT NOT NULL,
    reason TEXT NOT NULL, data_prefix BLOB NOT NULL, quarantined_epoch_seconds REAL NOT NULL,
    PRIMARY KEY (stream_arn, shard_id, sequence_number)) WITHOUT ROWID;
"""

_UPSERT: Final = "INSERT INTO membership VALUES (?, ?, ?, ?, ?, ?, ?)" + ON_NEWER_VERSION


@dataclass(frozen=True)
class Checkpoint:
    """How far one shard has been applied; `shard_closed` once a closed shard is fully read."""

    sequence_number: str | None
    shard_closed: bool


@dataclass(frozen=True)
class ValidRecord:
    """A record whose data follows the contract."""

    sequence_number: str
    message: CohortMessage


@dataclass(frozen=True)
class InvalidRecord:
    """A record whose data breaks the contract; it is quarantined, never applied."""

    sequence_number: str
    reason: str
    data: bytes


@dataclass(frozen=True)
class RawRecord:
    """A record's data as read; the store checks it against the contract itself."""

    sequence_number: str
    data: bytes


PageEntry = ValidRecord | InvalidRecord | RawRecord
_Counted = Verdict | Literal["quarantined"]


@dataclass(frozen=True)
class PageOutcome:
    """What one page did: each record counts in exactly one field."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class Quarantined:
    """A quarantined record: where it was, why, and the start of its data."""

    stream_arn: str
    shard_id: str
    sequence_number: str
    reason: str
    data_prefix: bytes


class MembershipStore:
    """SQLite-backed consumer state; one file per destination."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_hours: int = DEFAULT_DEDUPE_RETENTION_HOURS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= retention_hours <= MAX_RETENTION_HOURS:
            raise StateError(
                f"retention_hours {retention_hours}: must be 1 to {MAX_RETENTION_HOURS}"
                " and at least the stream's retention"
            )
        self.path = os.fspath(path)
        self.retention_hours = retention_hours
        self._clock = clock
        if self.path not in ("", ":memory:"):
            # Before any write: a file that is not ours is refused, never written into.
            _check_consumer_file(self.path)
        try:
            # Autocommit mode: transactions are opened explicitly, one per page.
            self._db = sqlite3.connect(self.path, isolation_level=None)
            # 16 KiB database pages write bulk membership rows about a third cheaper than the 4 KiB
            # default; it applies to a new file only (an existing one keeps its page size).
            self._db.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL under WAL never corrupts; a power cut loses at most the last pages, and
            # their checkpoints with them, so they are simply read again.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA application_id = {CONSUMER_APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {CONSUMER_FORMAT_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"state file {self.path!r}: not a usable SQLite database ({exc})"
            ) from exc

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    def __enter__(self) -> MembershipStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def checkpoints(self, stream_arn: str) -> dict[str, Checkpoint]:
        """Every shard checkpoint recorded for a stream, by shard id."""
        rows = self._db.execute(
            "SELECT shard_id, sequence_number, shard_closed FROM checkpoints WHERE stream_arn = ?",
            (stream_arn,),
        )
        return {shard: Checkpoint(seq, bool(closed)) for shard, seq, closed in rows}

    def stream_start(self, stream_arn: str, *, from_start: bool, now_epoch_seconds: float) -> float:
        """Where shards without a checkpoint start (0 = trim horizon); fixed at first contact."""
        with self._transaction():
            row = self._db.execute(
                "SELECT start_epoch_seconds FROM stream_starts WHERE stream_arn = ?", (stream_arn,)
            ).fetchone()
            if row is not None and not (from_start and row[0] != 0.0):
                return float(row[0])
            start = 0.0 if from_start else now_epoch_seconds
            self._db.execute(
                "INSERT OR REPLACE INTO stream_starts VALUES (?, ?)", (stream_arn, start)
            )
            return start

    def apply_page(
        self,
        stream_arn: str,
        shard_id: str,
        entries: Sequence[PageEntry],
        *,
        shard_closed: bool = False,
    ) -> PageOutcome:
        """Apply a page of records in order and advance the shard checkpoint, atomically."""
        counts: dict[_Counted, int] = {"applied": 0, "duplicate": 0, "stale": 0, "quarantined": 0}
        now = self._clock()
        db = self._db
        with self._transaction():
            for entry in entries:
                counts[self._apply_entry(stream_arn, shard_id, entry, now)] += 1
            if entries or shard_closed:
                last = entries[-1].sequence_number if entries else None
                db.execute(
                    """INSERT INTO checkpoints VALUES (?, ?, ?, ?)
                    ON CONFLICT (stream_arn, shard_id) DO UPDATE SET
                        sequence_number = coalesce(excluded.sequence_number, sequence_number),
                        shard_closed = max(shard_closed, excluded.shard_closed)""",
                    (stream_arn, shard_id, last, int(shard_closed)),
                )
        return PageOutcome(
            counts["applied"], counts["duplicate"], counts["stale"], counts["quarantined"]
        )

    def _apply_entry(
        self, stream_arn: str, shard_id: str, entry: PageEntry, now: float
    ) -> _Counted:
        """Apply one record inside the page's transaction; return the PageOutcome it counts in."""
        db = self._db
        if isinstance(entry, RawRecord):
            record = read_record(entry.data)
            if record is not None:
                return apply_record(db, record, now)
            # Whatever the bulk path did not accept gets contract.decode's verdict and reason.
            entry = _decoded(entry)
        if isinstance(entry, InvalidRecord):
            db.execute(
                "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stream_arn,
                    shard_id,
                    entry.sequence_number,
                    entry.reason,
                    entry.data[:QUARANTINE_PREFIX_BYTES],
                    now,
                ),
            )
            return "quarantined"
        message = entry.message
        seen = db.execute(
            "INSERT OR IGNORE INTO seen_messages VALUES (?, ?)", (message.message_id, now)
        )
        if seen.rowcount == 0:
            return "duplicate"
        before = db.total_changes
        db.executemany(_UPSERT, _membership_rows(message))
        return "stale" if message.users and db.total_changes == before else "applied"

    def prune_seen(self) -> int:
        """Forget message ids seen longer ago than the retention window; return how many."""
        cutoff = self._clock() - self.retention_hours * 3600
        with self._transaction():
            cursor = self._db.execute(
                "DELETE FROM seen_messages WHERE seen_epoch_seconds < ?", (cutoff,)
            )
        return cursor.rowcount

    def has_seen(self, message_id: str) -> bool:
        """Whether a message id is inside the dedupe window."""
        row = self._db.execute(
            "SELECT 1 FROM seen_messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return row is not None

    def quarantined(self) -> list[Quarantined]:
        """Every quarantined record, by stream, shard and sequence number."""
        rows = self._db.execute(
            "SELECT stream_arn, shard_id, sequence_number, reason, data_prefix FROM quarantine"
            " ORDER BY stream_arn, shard_id, length(sequence_number), sequence_number"
        )
        return [Quarantined(*row) for row in rows]

    def states(self) -> dict[tuple[str, str], MemberState]:
        """Every membership row (exited users included), keyed by (cohort_id, user_id)."""
        rows = self._db.execute(
            "SELECT cohort_id, user_id, in_cohort, computed_time, tiebreak, cohort_name,"
            " user_properties FROM membership"
        )
        return {
            (cohort, user): MemberState(name, bool(inside), Version(ct, tb), _props(props))
            for cohort, user, inside, ct, tb, name, props in rows
        }

    def knows_cohort(self, cohort_id: str) -> bool:
        """True when any message of the cohort was applied (its members may all have left)."""
        row = self._db.execute(
            "SELECT 1 FROM membership WHERE cohort_id = ? LIMIT 1", (cohort_id,)
        ).fetchone()
        return row is not None

    def members(self, cohort_id: str) -> Iterator[Member]:
        """Current members of one cohort, ordered by user_id, streamed from the file."""
        rows = self._db.execute(
            "SELECT user_id, user_properties FROM membership"
            " WHERE cohort_id = ? AND in_cohort = 1 ORDER BY user_id",
            (cohort_id,),
        )
        for user_id, props in rows:
            yield Member(user_id, _props(props))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)


def members(store: MembershipStore, cohort_id: str) -> Iterator[Member]:
    """Current members of one cohort, ordered by user_id (for `cohort-sync members`)."""
    return store.members(cohort_id)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (the exception propagates).

    A write the disk refused (full, over a quota or a size limit, an I/O error) becomes
    StorageError: the page and its checkpoint were rolled back together, so nothing is lost
    and the next `consume` reads the page again.
    """

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.OperationalError as failed:
                exc = failed
        # SQLite may have rolled back already (SQLITE_FULL does): nothing left to undo then.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and _DISK_REFUSED.search(str(exc)):
            raise StorageError(
                f"consumer state {self._path}: the disk refused a write ({exc}); nothing is "
                "lost: the page and its checkpoint were rolled back together",
                fix=f"free space on the disk holding {self._path} (or move --state to one "
                "with room), then run `cohort-sync consume` again: it resumes at the checkpoint",
                exit_code=1,
            ) from exc
        if exc_type is None:
            raise exc


def _membership_rows(
    message: CohortMessage,
) -> Iterator[tuple[str, str, int, int, str, str, str | None]]:
    computed = int(message.computed_time)
    tiebreak = _tiebreak_of(message.in_cohort, message.message_id)
    inside = int(message.in_cohort)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for user in message.users:
        props = user.user_properties
        yield (
            message.cohort_id,
            user.user_id,
            inside,
            computed,
            tiebreak,
            message.cohort_name,
            None if props is None else dumps(props),
        )


def _decoded(record: RawRecord) -> ValidRecord | InvalidRecord:
    try:
        return ValidRecord(record.sequence_number, decode(record.data))
    except ContractError as exc:
        return InvalidRecord(record.sequence_number, str(exc), record.data)


def _props(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _check_consumer_file(path: str) -> None:
    """Refuse, opening it read-only, a file that is not a consumer state (or is a newer one)."""
    if not existing(path, FileKind.SQLITE, not_consumer_state):
        return
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            application_id = int(db.execute("PRAGMA application_id").fetchall()[0][0])
            version = int(db.execute("PRAGMA user_version").fetchall()[0][0])
            tables = _columns(db)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise not_consumer_state(path, f"a SQLite database that cannot be read ({exc})") from exc
    # Files written before the mark carry application id 0 and nothing but our tables, each
    # with our columns (or fewer: columns added since are created on open).
    ours = _columns(_schema_only())
    unmarked_ours = application_id == 0 and all(
        name in ours and columns <= ours[name] for name, columns in tables.items()
    )
    if application_id != CONSUMER_APPLICATION_ID and not unmarked_ours:
        owner = f"application id {application_id:#x}, " if application_id else ""
        what = f"a SQLite database of another application ({owner}{foreign_tables(set(tables))})"
        raise not_consumer_state(path, what)
    if version > CONSUMER_FORMAT_VERSION:
        raise newer_format(path, str(version), str(CONSUMER_FORMAT_VERSION))


def _schema_only() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    return db


def _columns(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Each table (and view) of the database with its column names."""
    names = db.execute("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')").fetchall()
    return {
        str(name): {
            str(row[1]) for row in db.execute("SELECT * FROM pragma_table_info(?)", (name,))
        }
        for (name,) in names
    }
