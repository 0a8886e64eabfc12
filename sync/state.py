"""The publisher state: one DuckDB file of cohort bindings, membership, syncs and the outbox.

The store opens the file (refusing one that is not ours), migrates and compacts it, binds
cohorts to the stream and summarises what it holds. Its two owners of the rest are attributes:
`staging` diffs a snapshot and stages the sync (sync/staging.py), `outbox` holds the records
until Kinesis acknowledges them (sync/outbox.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import duckdb

from sync import database
from sync.errors import StateError
from sync.outbox import Outbox, OutboxCounts
from sync.staging import Staging
from sync.state_files import (
    PUBLISHER_FORMAT,
    PUBLISHER_FORMAT_VERSION,
    FileKind,
    existing,
    foreign_tables,
    newer_format,
    not_publisher_state,
)

# compact() rewrites the file when more than this fraction of its blocks are free, so the file
# stays within about 1 / (1 - fraction) of the live data; tiny files are never worth it.
COMPACT_FREE_FRACTION: Final = 0.2
COMPACT_MIN_BLOCKS: Final = 8  # DuckDB blocks are 256 KiB: files under 2 MiB are left alone
USERS_PER_PAGE: Final = 10_000
# Committed work stays in the WAL until it passes this size (DuckDB's default is 16 MiB). A
# push's outbox is a few thousand rows, too few for DuckDB to write them straight to the file,
# so with the default the first ack checkpointed every staged blob into the file, the acks
# deleted them, and compact() rewrote the file to drop them (0.6 s of a 1M-user push's 4.6 s).
# Under this bound the blobs live and die in the WAL; the push's closing checkpoint never writes
# them. Above it (about 3.5M users) a push checkpoints as before. Durability is the WAL's fsync
# on every commit either way; the cost is a longer WAL replay when a killed push is reopened.
CHECKPOINT_THRESHOLD: Final = "256MiB"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS cohorts (
        cohort_id VARCHAR PRIMARY KEY, cohort_name VARCHAR NOT NULL,
        stream_arn VARCHAR NOT NULL)""",
    # No index: diffs are hash joins over whole cohorts, and an ART index over 10M ids would
    # cost gigabytes of memory. user_hash lets the diff compare properties without the JSON.
    """CREATE TABLE IF NOT EXISTS membership (
        cohort_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, user_json VARCHAR NOT NULL,
        user_hash UBIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS syncs (
        sync_id VARCHAR PRIMARY KEY, ordinal BIGINT NOT NULL, cohort_id VARCHAR NOT NULL,
        computed_time VARCHAR NOT NULL, created TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL,
        entering BIGINT NOT NULL, exiting BIGINT NOT NULL, messages BIGINT NOT NULL,
        bytes BIGINT NOT NULL)""",
)
# Every table a publisher state holds: the ones above and the outbox's (sync/outbox.py).
PUBLISHER_TABLES: Final = frozenset({"meta", "cohorts", "membership", "syncs", "outbox"})


@dataclass(frozen=True)
class LastSync:
    """A cohort's most recent staged sync."""

    sync_id: str
    computed_time: str
    created: str  # ISO 8601, UTC
    status: str  # staged (records pending) or delivered
    entering: int
    exiting: int
    messages: int


@dataclass(frozen=True)
class CohortSummary:
    """One bound cohort: its stream, stored members and last sync."""

    cohort_id: str
    cohort_name: str
    stream_arn: str
    members: int
    last_sync: LastSync | None


@dataclass(frozen=True)
class StateSummary:
    """What `cohort-sync state` prints: size on disk (file and WAL), cohorts, pending outbox."""

    path: str
    file_bytes: int
    syncs: int
    cohorts: tuple[CohortSummary, ...]
    outbox: OutboxCounts

    def to_json(self) -> dict[str, object]:
        """The summary as plain JSON values."""
        return asdict(self)

    def render(self) -> str:
        """A few aligned lines for people."""
        pending = self.outbox
        lines = [
            f"state {self.path}: {self.file_bytes:,} bytes on disk, {self.syncs:,} sync(s)",
            f"  pending outbox    {pending.pending:,} record(s), {pending.pending_users:,} "
            f"user(s); {pending.failing:,} failing (most tries {pending.max_tries})",
        ]
        if not self.cohorts:
            lines.append("  no cohorts yet")
        for cohort in self.cohorts:
            lines.append(
                f"  cohort {cohort.cohort_id} ({cohort.cohort_name!r}) -> {cohort.stream_arn}: "
                f"{cohort.members:,} member(s)"
            )
            last = cohort.last_sync
            lines.append(
                "    last sync  none"
                if last is None
                else f"    last sync  {last.sync_id} computed_time {last.computed_time} "
                f"({last.created}) {last.status}: +{last.entering:,} -{last.exiting:,} "
                f"in {last.messages:,} message(s)"
            )
        return "\n".join(lines)


class StateStore:
    """The publisher's state in one DuckDB database file (`:memory:` for tests)."""

    def __init__(
        self,
        path: Path | str,
        *,
        memory_limit: str = "1GB",
        threads: int | None = None,
        read_only: bool = False,
    ) -> None:
        config: database.Config = {
            "memory_limit": memory_limit,
            "checkpoint_threshold": CHECKPOINT_THRESHOLD,
        }
        if threads is not None:
            config["threads"] = threads
        self.path = str(path)
        self._config = config
        self._read_only = read_only
        if self.path != ":memory:":
            # Before any write: a file that is not ours is refused, never written into.
            _check_publisher_file(self.path, config)
        try:
            self._con = database.connect(self.path, read_only=read_only, config=config)
            self._attach_owners()
            self._migrate(read_only=read_only)
        except duckdb.Error as exc:
            raise StateError(
                f"publisher state {self.path}: cannot open ({exc})",
                fix="check the file is readable and no other push or replay has it open (one "
                "process writes a DuckDB file at a time)",
            ) from exc

    def _attach_owners(self) -> None:
        self.outbox = Outbox(self._con)
        self.staging = Staging(self._con, self.outbox)

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The store's one connection, for benchmarks and diagnostics; never hold a cursor."""
        return self._con

    def _migrate(self, *, read_only: bool = False) -> None:
        if read_only:
            return  # _check_publisher_file read the marks; a version 1 file reads as it is
        for statement in _SCHEMA:
            self._con.execute(statement)
        self.outbox.create()
        marks = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        if marks.get("format_version") != PUBLISHER_FORMAT_VERSION:
            # A new file, or a version 1 file (whose outbox columns _SCHEMA just added).
            self._con.execute("DELETE FROM meta WHERE key = 'schema_version'")
            self._con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('format', $f), ('format_version', $v)",
                {"f": PUBLISHER_FORMAT, "v": PUBLISHER_FORMAT_VERSION},
            )
        self.outbox.drop_orphans()  # records of a stage a crash cut short

    def close(self) -> None:
        """Close the connection; committed work is already durable."""
        self._con.close()

    def checkpoint(self) -> None:
        """Fold the WAL into the file, so deleted rows' blocks are freed for reuse."""
        self._con.execute("CHECKPOINT")

    def compact(
        self,
        *,
        max_free_fraction: float = COMPACT_FREE_FRACTION,
        min_blocks: int = COMPACT_MIN_BLOCKS,
    ) -> bool:
        """Checkpoint; rewrite the file when free blocks exceed the fraction. True if rewritten.

        DuckDB reuses freed blocks but only gives back those at the end of the file, so the
        blocks each checkpoint frees (acked records, rewritten membership row groups) would keep
        the file at its high-water mark. A copy holds only the live data; it replaces the file
        atomically, so a crash leaves either the old file or the new one, whole.
        """
        self.checkpoint()
        if self.path == ":memory:" or self._read_only:
            return False
        row = self._con.execute(
            "SELECT total_blocks, free_blocks FROM pragma_database_size() "
            "WHERE database_name = current_database()"
        ).fetchall()[0]
        total, free = int(row[0]), int(row[1])
        if total < min_blocks or free <= max_free_fraction * total:
            return False
        target = Path(self.path + ".compact")
        target.unlink(missing_ok=True)  # a copy a crash left behind
        name = self._con.execute("SELECT current_database()").fetchall()[0][0]
        self._con.execute(f"ATTACH '{target}' AS _compact")
        try:
            self._con.execute(f'COPY FROM DATABASE "{name}" TO _compact')
        finally:
            self._con.execute("DETACH _compact")
        self._con.close()
        if Path(self.path + ".wal").exists():
            # Never pair a new file with the old file's WAL: keep the old file as it is.
            target.unlink()
        else:
            os.replace(target, self.path)
            _fsync_directory(Path(self.path).parent)
        self._con = database.connect(self.path, config=self._config)
        self._attach_owners()  # a loaded snapshot is gone with the old connection
        return True

    def summary(self) -> StateSummary:
        """What the state holds: its size on disk, each cohort's last sync, the pending outbox."""
        rows = self._con.execute(
            """SELECT c.cohort_id, c.cohort_name, c.stream_arn,
                      (SELECT count(*) FROM membership AS m WHERE m.cohort_id = c.cohort_id),
                      s.sync_id, s.computed_time, s.created, s.status, s.entering, s.exiting,
                      s.messages
               FROM cohorts AS c
               LEFT JOIN (SELECT * FROM syncs
                          QUALIFY row_number() OVER (PARTITION BY cohort_id
                                                     ORDER BY ordinal DESC) = 1) AS s
                      ON s.cohort_id = c.cohort_id
               ORDER BY c.cohort_id"""
        ).fetchall()
        cohorts = tuple(
            CohortSummary(
                cohort_id=str(row[0]),
                cohort_name=str(row[1]),
                stream_arn=str(row[2]),
                members=int(row[3]),
                last_sync=None
                if row[4] is None
                else LastSync(
                    sync_id=str(row[4]),
                    computed_time=str(row[5]),
                    created=row[6].isoformat(),
                    status=str(row[7]),
                    entering=int(row[8]),
                    exiting=int(row[9]),
                    messages=int(row[10]),
                ),
            )
            for row in rows
        )
        files = [Path(self.path), Path(self.path + ".wal")]
        return StateSummary(
            path=self.path,
            file_bytes=sum(f.stat().st_size for f in files if f.exists()),
            syncs=database.scalar(self._con, "SELECT count(*) FROM syncs"),
            cohorts=cohorts,
            outbox=self.outbox.counts(),
        )

    def check_binding(self, cohort_id: str, cohort_name: str, stream_arn: str) -> None:
        """Refuse now, writing nothing, what bind() would refuse when the push stages."""
        with database.trial(self._con):
            self.bind(cohort_id, cohort_name, stream_arn)

    def bind(self, cohort_id: str, cohort_name: str, stream_arn: str) -> None:
        """Bind the cohort to the stream; refuse a state file already bound to another stream."""
        for name, value in (("cohort_id", cohort_id), ("stream_arn", stream_arn)):
            if not value:
                raise StateError(f"{name} {value!r}: must be a non-empty string")
        bound = self._con.execute(
            "SELECT DISTINCT stream_arn FROM cohorts WHERE stream_arn <> $arn", {"arn": stream_arn}
        ).fetchall()
        if bound:
            raise StateError(
                f"state store {self.path}: bound to stream {bound[0][0]!r}, not {stream_arn!r}; "
                "one state file serves one stream (use another --state file)",
                fix="pass another --state file for this stream (a new path is created)",
            )
        self._con.execute(
            "INSERT INTO cohorts VALUES ($id, $name, $arn) "
            "ON CONFLICT (cohort_id) DO UPDATE SET cohort_name = excluded.cohort_name",
            {"id": cohort_id, "name": cohort_name, "arn": stream_arn},
        )

    def members(self, cohort_id: str) -> Iterator[tuple[str, str]]:
        """The cohort's stored membership as (user_id, user_json), ordered by user_id."""
        after: str | None = None
        while True:
            rows = self._con.execute(
                """SELECT user_id, user_json FROM membership
                   WHERE cohort_id = $c AND ($after IS NULL OR user_id > $after)
                   ORDER BY user_id LIMIT $n""",
                {"c": cohort_id, "after": after, "n": USERS_PER_PAGE},
            ).fetchall()
            for user_id, user_json in rows:
                yield str(user_id), str(user_json)
            if len(rows) < USERS_PER_PAGE:
                return
            after = str(rows[-1][0])

    # -- internals -------------------------------------------------------------------------

    def last_computed_time(self, cohort_id: str) -> int | None:
        """The latest computed_time staged for the cohort (epoch seconds), if any."""
        rows = self._con.execute(
            "SELECT max(computed_time::BIGINT) FROM syncs WHERE cohort_id = $c", {"c": cohort_id}
        ).fetchall()
        value = rows[0][0] if rows else None
        return None if value is None else int(value)


def _check_publisher_file(
    path: str, config: dict[str, str | bool | int | float | list[str]]
) -> None:
    """Refuse, opening it read-only, a file that is not a publisher state (or is a newer one)."""
    if not existing(path, FileKind.DUCKDB, not_publisher_state):
        return
    try:
        con = database.connect(path, read_only=True, config=config)
    except duckdb.Error as exc:
        raise not_publisher_state(path, f"a DuckDB database that cannot be opened ({exc})") from exc
    try:
        tables = {
            str(name)
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        }
        if not tables:
            return  # an empty database: nothing of anybody's to spoil
        marks: dict[str, str] = {}
        if tables <= PUBLISHER_TABLES and "meta" in tables:
            try:
                marks = {
                    str(k): str(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()
                }
            except duckdb.Error:
                marks = {}  # a `meta` table of another shape
    finally:
        con.close()
    ours = marks.get("format") == PUBLISHER_FORMAT or marks.get("schema_version") == "1"
    if not ours:
        what = f"a DuckDB database of another application ({foreign_tables(tables)})"
        raise not_publisher_state(path, what)
    version = marks.get("format_version", "1")
    if not version.isdigit() or int(version) > int(PUBLISHER_FORMAT_VERSION):
        raise newer_format(path, version, PUBLISHER_FORMAT_VERSION)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
