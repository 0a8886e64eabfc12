"""The publisher's local state in one DuckDB file: cohort binding, membership, syncs, outbox.

A push stages a sync atomically: its records are written first, in commits of their own, but
belong to no sync until the one transaction that writes the new membership and the sync row
commits; until then they are never pending, and a stage that never commits leaves them behind
only to be deleted (at once, or on the next open after a crash). So the records, the membership
and the sync row become visible together or not at all. Records then leave through `pending()`
and are deleted by `ack()`; a killed push resumes by sending `pending()` first.

One connection per store and no result set is left open across a yield: users and records are
read in keyset-paginated pages, so the caller may write (insert records, ack) between pages.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

import duckdb

from sync import database
from sync.errors import StateError
from sync.messages import OutgoingRecord
from sync.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from sync.outbox import SCHEMA as OUTBOX_SCHEMA
from sync.outbox import Outbox, OutboxCounts
from sync.snapshots import DEFAULT_MAX_PROBLEMS, DEFAULT_MAX_USER_BYTES, SnapshotSummary
from sync.snapshots import load_snapshot as _load_snapshot
from sync.state_files import (
    PUBLISHER_FORMAT,
    PUBLISHER_FORMAT_VERSION,
    PUBLISHER_TABLES,
    FileKind,
    file_kind,
    foreign_tables,
    newer_format,
    not_publisher_state,
)

# compact() rewrites the file when more than this fraction of its blocks are free, so the file
# stays within about 1 / (1 - fraction) of the live data; tiny files are never worth it.
COMPACT_FREE_FRACTION: Final = 0.2
COMPACT_MIN_BLOCKS: Final = 8  # DuckDB blocks are 256 KiB: files under 2 MiB are left alone
USERS_PER_PAGE: Final = 10_000
# Users handed to the message builder per read: as many as its own read-ahead holds, fetched as
# Arrow (half the cost of building a tuple per row).
BUILD_USERS_PER_PAGE: Final = 65_536
# Committed work stays in the WAL until it passes this size (DuckDB's default is 16 MiB). A
# push's outbox is a few thousand rows, too few for DuckDB to write them straight to the file,
# so with the default the first ack checkpointed every staged blob into the file, the acks
# deleted them, and compact() rewrote the file to drop them (0.6 s of a 1M-user push's 4.6 s).
# Under this bound the blobs live and die in the WAL; the push's closing checkpoint never writes
# them. Above it (about 3.5M users) a push checkpoints as before. Durability is the WAL's fsync
# on every commit either way; the cost is a longer WAL replay when a killed push is reopened.
CHECKPOINT_THRESHOLD: Final = "256MiB"

_SNAPSHOT: Final = "_snapshot"
_DELTA: Final = "_delta"
_ENTERING: Final = "_entering"
_EXITING: Final = "_exiting"
_INCOMING: Final = "_incoming_users"  # snapshot users whose membership row is (re)written

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
    OUTBOX_SCHEMA,
    *OUTBOX_MIGRATIONS,
)

Build = Callable[[bool, Iterable[str], int], Iterable[OutgoingRecord]]


@dataclass(frozen=True)
class DiffCounts:
    """Who a sync would send: entering and exiting users; staying users are never sent."""

    entering: int
    exiting: int
    unchanged: int
    updated: int  # staying users whose properties changed: stored, not sent
    first_sync: bool


@dataclass(frozen=True)
class StagedSync:
    """What one committed stage put in the outbox."""

    sync_id: str
    entering: int
    exiting: int
    messages: int
    bytes: int


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
            self._outbox = Outbox(self._con)
            self._migrate(read_only=read_only)
        except duckdb.Error as exc:
            raise StateError(f"state store {self.path}: cannot open ({exc})") from exc
        self._snapshot: SnapshotSummary | None = None
        # The cohort whose diff against the loaded snapshot sits in the _delta temp table.
        self._diffed: str | None = None
        self._diff_counts: dict[str, int] = {}
        # Where _emit reads entering users: (table, gapless key, its first value); _split sets it.
        self._entering_from: tuple[str, str, int] = (_ENTERING, "rn", 1)

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def trial(self) -> AbstractContextManager[None]:
        """A transaction always rolled back: checks that would write, writing nothing."""
        return database.trial(self._con)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The store's one connection, for benchmarks and diagnostics; never hold a cursor."""
        return self._con

    def _migrate(self, *, read_only: bool = False) -> None:
        if read_only:
            return  # _check_publisher_file read the marks; a version 1 file reads as it is
        for statement in _SCHEMA:
            self._con.execute(statement)
        marks = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
        if marks.get("format_version") != PUBLISHER_FORMAT_VERSION:
            # A new file, or a version 1 file (whose outbox columns _SCHEMA just added).
            self._con.execute("DELETE FROM meta WHERE key = 'schema_version'")
            self._con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('format', $f), ('format_version', $v)",
                {"f": PUBLISHER_FORMAT, "v": PUBLISHER_FORMAT_VERSION},
            )
        self._outbox.drop_orphans()  # records of a stage a crash cut short

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
        self._outbox = Outbox(self._con)
        self._snapshot, self._diffed = None, None
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
            syncs=self._scalar("SELECT count(*) FROM syncs"),
            cohorts=cohorts,
            outbox=self._outbox.counts(),
        )

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
                "one state file serves one stream (use another --state file)"
            )
        self._con.execute(
            "INSERT INTO cohorts VALUES ($id, $name, $arn) "
            "ON CONFLICT (cohort_id) DO UPDATE SET cohort_name = excluded.cohort_name",
            {"id": cohort_id, "name": cohort_name, "arn": stream_arn},
        )

    def load_snapshot(
        self,
        path: Path,
        *,
        fmt: str | None = None,
        max_user_bytes: int = DEFAULT_MAX_USER_BYTES,
        max_problems: int = DEFAULT_MAX_PROBLEMS,
    ) -> SnapshotSummary:
        """Validate and load a snapshot into a temp table for plan() and stage()."""
        self._snapshot, self._diffed = None, None
        summary = _load_snapshot(
            self._con,
            Path(path),
            table=_SNAPSHOT,
            fmt=fmt,
            max_user_bytes=max_user_bytes,
            max_problems=max_problems,
            temporary=True,
        )
        self._snapshot = summary
        return summary

    def use_snapshot(self, relation: duckdb.DuckDBPyRelation, *, label: str = "generated") -> int:
        """Adopt a trusted (user_id, user_json) relation on this connection as the snapshot."""
        self._snapshot, self._diffed = None, None
        self._con.register("_incoming", relation)
        try:
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_SNAPSHOT} AS "
                "SELECT user_id::VARCHAR AS user_id, user_json::VARCHAR AS user_json FROM _incoming"
            )
        finally:
            self._con.unregister("_incoming")
        users = self._scalar(f"SELECT count(*) FROM {_SNAPSHOT}")
        self._snapshot = SnapshotSummary(path=Path(label), fmt="relation", users=users)
        return users

    def plan(self, cohort_id: str) -> DiffCounts:
        """Dry run: how many users would enter, exit and stay; writes nothing to the state."""
        self._require_snapshot()
        assert self._snapshot is not None
        kinds = self._diff(cohort_id)
        entering = kinds.get("enter", 0)
        return DiffCounts(
            entering=entering,
            exiting=kinds.get("exit", 0),
            unchanged=self._snapshot.users - entering,
            updated=kinds.get("update", 0),
            first_sync=self._first_sync(cohort_id),
        )

    def stage(
        self,
        *,
        cohort_id: str,
        cohort_name: str,
        computed_time: str,
        sync_id: str,
        build: Build,
        resend_all: bool = False,
    ) -> StagedSync:
        """Diff, build and store every record, replace membership, record the sync: atomically.

        `resend_all` sends every snapshot user as entering (and who left as exiting), whatever
        the stored membership says: for a stream re-created empty, or consumers that lost state.
        """
        self._require_snapshot()
        self._require_bound(cohort_id)
        if self._scalar("SELECT count(*) FROM syncs WHERE sync_id = $s", {"s": sync_id}):
            raise StateError(f"sync_id {sync_id!r}: already staged; every sync needs a new id")
        # The diff is computed (or reused from plan()) outside the transaction: it is a temp
        # table that survives a rollback, so a failed stage can be retried without redoing it.
        everyone = self._everyone_enters(self._diff(cohort_id))
        try:
            entering, exiting = self._split(
                cohort_id, whole_snapshot=everyone or resend_all, everyone_enters=everyone
            )
            # The records go first, each insert a commit of its own: a push's few thousand
            # records are too few rows for DuckDB to write straight to the file, so inside the
            # one transaction a 10M-user outbox (720 MB) stayed in memory until it committed.
            # Committed apart, they reach the file at each checkpoint; none is pending until
            # the sync row commits with the membership.
            sequence, size = self._emit(
                build, lambda first, records: self._outbox.add(sync_id, first, records)
            )
            self._commit_stage(
                cohort_id, sync_id, computed_time, everyone, entering, exiting, size, sequence
            )
        except BaseException:
            # Any failure, an interrupt included, leaves membership and the pending outbox as
            # they were; the records written for this stage go (a crash, or a disk too full
            # to delete them, leaves them to the next open).
            with contextlib.suppress(duckdb.Error):
                self._outbox.drop_orphans()
            raise
        self._con.execute(f"DROP TABLE IF EXISTS {_SNAPSHOT}")
        self._snapshot, self._diffed = None, None
        return StagedSync(sync_id, entering, exiting, sequence, size)

    def _commit_stage(
        self,
        cohort_id: str,
        sync_id: str,
        computed_time: str,
        everyone_enters: bool,
        entering: int,
        exiting: int,
        size: int,
        sequence: int,
    ) -> None:
        """The one transaction that makes a stage visible: new membership and the sync row."""
        with database.transaction(self._con):
            self._replace_membership(cohort_id, everyone_enters=everyone_enters)
            if sequence:
                # A run with nothing to send leaves no sync behind: no row, no computed_time
                # for the next run to order after (stored property changes need neither).
                self._record_sync(
                    sync_id, cohort_id, computed_time, entering, exiting, size, sequence
                )
            for table in (_DELTA, _ENTERING, _EXITING, _INCOMING):
                self._con.execute(f"DROP TABLE IF EXISTS {table}")

    def _record_sync(
        self,
        sync_id: str,
        cohort_id: str,
        computed_time: str,
        entering: int,
        exiting: int,
        size: int,
        messages: int,
    ) -> None:
        self._con.execute(
            """INSERT INTO syncs VALUES ($s, (SELECT coalesce(max(ordinal), 0) + 1 FROM syncs),
                   $c, $t, $now, 'staged', $e, $x, $m, $b)""",
            {
                "s": sync_id,
                "c": cohort_id,
                "t": computed_time,
                "now": datetime.now(UTC),
                "e": entering,
                "x": exiting,
                "m": messages,
                "b": size,
            },
        )

    def preview(
        self,
        *,
        cohort_id: str,
        cohort_name: str,
        computed_time: str,
        sync_id: str,
        build: Build,
        resend_all: bool = False,
    ) -> StagedSync:
        """What stage() would commit (messages and bytes included), built and then discarded."""
        self._require_snapshot()
        # Outside the transaction, so the rollback keeps the diff for stage().
        everyone = self._everyone_enters(self._diff(cohort_id))
        # A dry run leaves the store exactly as it found it, snapshot aside.
        with database.trial(self._con):
            entering, exiting = self._split(
                cohort_id, whole_snapshot=everyone or resend_all, everyone_enters=everyone
            )
            sequence, size = self._emit(build, lambda first, records: _count(records))
        return StagedSync(sync_id, entering, exiting, sequence, size)

    def _emit(
        self, build: Build, sink: Callable[[int, Iterable[OutgoingRecord]], tuple[int, int]]
    ) -> tuple[int, int]:
        """Build entering then exiting users' records, numbered on; (records, bytes) sunk."""
        sequence, size = 0, 0
        sources = ((True, self._entering_from), (False, (_EXITING, "rn", 1)))
        for in_cohort, (table, key, first) in sources:
            users = self._users(table, key, first)
            added, added_bytes = sink(sequence, build(in_cohort, users, sequence))
            sequence += added
            size += added_bytes
        return sequence, size

    def pending(
        self, *, limit: int | None = None, sync_id: str | None = None
    ) -> Iterator[OutgoingRecord]:
        """Unacknowledged records, oldest sync first, in sequence order; safe to ack meanwhile."""
        return self._outbox.pending(limit=limit, sync_id=sync_id)

    def ack(self, message_ids: Sequence[str]) -> None:
        """Mark records delivered; durable when this returns."""
        self._outbox.ack(message_ids)

    def record_failure(self, message_ids: Sequence[str], error: str) -> None:
        """Count one failed try for each record and keep the last error; durable on return."""
        self._outbox.record_failure(message_ids, error)

    def outbox_counts(self) -> OutboxCounts:
        """Totals over the whole outbox."""
        return self._outbox.counts()

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

    def _scalar(self, sql: str, params: dict[str, object] | None = None) -> int:
        row = self._con.execute(sql, params or {}).fetchall()[0]
        return int(row[0]) if row and row[0] is not None else 0

    def _require_snapshot(self) -> None:
        if self._snapshot is None:
            raise StateError("no snapshot loaded: call load_snapshot() before plan() or stage()")

    def _require_bound(self, cohort_id: str) -> None:
        if not self._scalar("SELECT count(*) FROM cohorts WHERE cohort_id = $c", {"c": cohort_id}):
            raise StateError(f"cohort_id {cohort_id!r}: not bound; call bind() before stage()")

    def last_computed_time(self, cohort_id: str) -> int | None:
        """The latest computed_time staged for the cohort (epoch seconds), if any."""
        rows = self._con.execute(
            "SELECT max(computed_time::BIGINT) FROM syncs WHERE cohort_id = $c", {"c": cohort_id}
        ).fetchall()
        value = rows[0][0] if rows else None
        return None if value is None else int(value)

    def _first_sync(self, cohort_id: str) -> bool:
        return not self._scalar("SELECT count(*) FROM syncs WHERE cohort_id = $c", {"c": cohort_id})

    def _diff(self, cohort_id: str) -> dict[str, int]:
        """Count the delta by kind, computing it into the _delta temp table unless cached."""
        if self._diffed != cohort_id:
            self._diff_counts = self._compute_diff(cohort_id)
            self._diffed = cohort_id
        return dict(self._diff_counts)

    def _compute_diff(self, cohort_id: str) -> dict[str, int]:
        assert self._snapshot is not None
        stored = self._scalar(
            "SELECT count(*) FROM (SELECT 1 FROM membership WHERE cohort_id = $c LIMIT 1)",
            {"c": cohort_id},
        )
        if not stored:
            # Nobody stored: the whole snapshot enters, and stage() reads it from the snapshot
            # itself, so the delta holds nobody (a 10M-user delta of everyone was 300 MB).
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_DELTA} (user_id VARCHAR, kind VARCHAR)"
            )
            return {"enter": self._snapshot.users} if self._snapshot.users else {}
        # Comparing 64-bit hashes instead of the JSON keeps the join narrow; a collision could
        # only skip storing a property change, and never changes who is sent.
        self._con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_DELTA} AS
                SELECT coalesce(s.user_id, m.user_id) AS user_id,
                       CASE WHEN m.user_id IS NULL THEN 'enter'
                            WHEN s.user_id IS NULL THEN 'exit' ELSE 'update' END AS kind
                FROM (SELECT user_id, hash(user_json) AS h FROM {_SNAPSHOT}) AS s
                FULL OUTER JOIN (SELECT user_id, user_hash AS h FROM membership
                                 WHERE cohort_id = $c) AS m ON s.user_id = m.user_id
                WHERE s.h IS DISTINCT FROM m.h""",
            {"c": cohort_id},
        )
        rows = self._con.execute(f"SELECT kind, count(*) FROM {_DELTA} GROUP BY kind").fetchall()
        return {str(kind): int(n) for kind, n in rows}

    def _everyone_enters(self, kinds: dict[str, int]) -> bool:
        """True when the whole snapshot enters and nobody is stored (a cohort's first sync)."""
        assert self._snapshot is not None
        return set(kinds) <= {"enter"} and kinds.get("enter", 0) == self._snapshot.users

    def _split(
        self, cohort_id: str, *, whole_snapshot: bool, everyone_enters: bool
    ) -> tuple[int, int]:
        """Materialize entering and exiting users from the delta; say where each is read from."""
        assert self._snapshot is not None
        if not everyone_enters:
            # One pass over the snapshot for the users whose membership row is written (they
            # enter, or their properties changed): the entering list and the membership insert
            # both read this instead of scanning all of it again (0.3 s of a 10M-user diff).
            self._con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {_INCOMING} AS
                    SELECT s.user_id, s.user_json, d.kind FROM {_SNAPSHOT} AS s
                    JOIN {_DELTA} AS d ON s.user_id = d.user_id
                    WHERE d.kind IN ('enter', 'update')"""
            )
        gapless = whole_snapshot and (
            self._scalar(f"SELECT coalesce(max(rowid) + 1, 0) FROM {_SNAPSHOT}")
            == self._snapshot.users
        )
        if gapless:
            # A first sync (or a resend) sends the whole snapshot in file order, read straight
            # from the loaded table by rowid (0..N-1, no gaps: it is only ever created whole):
            # no global sort and no second copy of every user's JSON (2.2 s of a 1M push).
            self._entering_from = (_SNAPSHOT, "rowid", 0)
            entering = self._snapshot.users
        else:
            # Stored in rn order, so each page's rn range is pruned by DuckDB's zone maps.
            source = _SNAPSHOT if whole_snapshot else f"{_INCOMING} WHERE kind = 'enter'"
            self._con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {_ENTERING} AS
                    SELECT row_number() OVER (ORDER BY user_id) AS rn, user_json FROM {source}
                    ORDER BY rn"""
            )
            self._entering_from = (_ENTERING, "rn", 1)
            entering = self._scalar(f"SELECT count(*) FROM {_ENTERING}")
        self._con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_EXITING} AS
                SELECT row_number() OVER (ORDER BY user_id) AS rn, user_json FROM membership
                WHERE cohort_id = $c
                  AND user_id IN (SELECT user_id FROM {_DELTA} WHERE kind = 'exit')
                ORDER BY rn""",
            {"c": cohort_id},
        )
        return entering, self._scalar(f"SELECT count(*) FROM {_EXITING}")

    def _users(self, table_name: str, key: str = "rn", first: int = 1) -> Iterator[str]:
        # The key runs first..first+N-1 without gaps, so a page is a closed range: no LIMIT, no
        # top-N over the rest of the table (`rn > $a ORDER BY rn LIMIT $n` made paging
        # quadratic).
        after = first
        while True:
            # con.sql, not execute: Arrow from a DB-API result is one more copy of every row.
            table = self._con.sql(
                f"SELECT user_json FROM {table_name} WHERE {key} BETWEEN $a AND $a + $n - 1 "
                f"ORDER BY {key}",
                params={"a": after, "n": BUILD_USERS_PER_PAGE},
            ).to_arrow_table()
            page: list[str] = table.column(0).to_pylist()
            yield from page
            if len(page) < BUILD_USERS_PER_PAGE:
                return
            after += BUILD_USERS_PER_PAGE

    def _replace_membership(self, cohort_id: str, *, everyone_enters: bool) -> None:
        if everyone_enters:
            # Nothing stored to delete, and every snapshot row is new: no semi-join (half the
            # cost of a 1M-user first sync's membership write).
            self._con.execute(
                f"""INSERT INTO membership
                    SELECT $c, user_id, user_json, hash(user_json) FROM {_SNAPSHOT}""",
                {"c": cohort_id},
            )
            return
        # Only changed rows are rewritten, so a 1% churn sync writes 1% of the cohort.
        self._con.execute(
            f"""DELETE FROM membership WHERE cohort_id = $c
                AND user_id IN (SELECT user_id FROM {_DELTA} WHERE kind IN ('exit', 'update'))""",
            {"c": cohort_id},
        )
        self._con.execute(
            f"""INSERT INTO membership
                SELECT $c, user_id, user_json, hash(user_json) FROM {_INCOMING}""",
            {"c": cohort_id},
        )


def _check_publisher_file(
    path: str, config: dict[str, str | bool | int | float | list[str]]
) -> None:
    """Refuse, opening it read-only, a file that is not a publisher state (or is a newer one)."""
    kind = file_kind(Path(path))
    if kind is FileKind.NEW:
        return
    if kind is not FileKind.DUCKDB:
        raise not_publisher_state(path, kind.value)
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


def _count(records: Iterable[OutgoingRecord]) -> tuple[int, int]:
    """(records, bytes) of records that are only counted, never stored."""
    count = size = 0
    for record in records:
        count += 1
        size += record.size_bytes
    return count, size
