"""Diffing and staging: a snapshot against the stored membership, into the outbox.

A push stages a sync atomically: its records are written first, in commits of their own, but
belong to no sync until the one transaction that writes the new membership and the sync row
commits; until then they are never pending, and a stage that never commits leaves them behind
only to be deleted (at once, or on the next open after a crash). So the records, the membership
and the sync row become visible together or not at all. Records then leave through the outbox's
`pending()` and are deleted by its `ack()`; a killed push resumes by sending `pending()` first.

The snapshot, the delta and the entering and exiting users are temp tables on the state's one
connection; no result set is left open across a yield (users are read in keyset-paginated
pages), so the caller may write between pages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb

from sync import database
from sync.errors import StateError
from sync.messages import OutgoingRecord
from sync.outbox import Outbox
from sync.snapshots import DEFAULT_MAX_PROBLEMS, DEFAULT_MAX_USER_BYTES, SnapshotSummary
from sync.snapshots import load_snapshot as _load_snapshot

# Users handed to the message builder per read: as many as its own read-ahead holds, fetched as
# Arrow (half the cost of building a tuple per row).
BUILD_USERS_PER_PAGE: Final = 65_536

_SNAPSHOT: Final = "_snapshot"
_DELTA: Final = "_delta"
_ENTERING: Final = "_entering"
_EXITING: Final = "_exiting"
_INCOMING: Final = "_incoming_users"  # snapshot users whose membership row is (re)written

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


class Staging:
    """The loaded snapshot, its diff against a cohort's membership, and the stage committing it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, outbox: Outbox) -> None:
        self._con = con
        self._outbox = outbox
        self._snapshot: SnapshotSummary | None = None
        # The cohort whose diff against the loaded snapshot sits in the _delta temp table.
        self._diffed: str | None = None
        self._diff_counts: dict[str, int] = {}
        # Where _emit reads entering users: (table, gapless key, its first value); _split sets it.
        self._entering_from: tuple[str, str, int] = (_ENTERING, "rn", 1)

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
        users = database.scalar(self._con, f"SELECT count(*) FROM {_SNAPSHOT}")
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
        if database.scalar(
            self._con, "SELECT count(*) FROM syncs WHERE sync_id = $s", {"s": sync_id}
        ):
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
        self, *, cohort_id: str, sync_id: str, build: Build, resend_all: bool = False
    ) -> StagedSync:
        """What stage() would commit (messages and bytes included), built and then discarded.

        `build` numbers the messages `sync_id:<n>`: give it a sync id of the real one's length,
        and the bytes are the push's.
        """
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

    def _require_snapshot(self) -> None:
        if self._snapshot is None:
            raise StateError("no snapshot loaded: call load_snapshot() before plan() or stage()")

    def _require_bound(self, cohort_id: str) -> None:
        if not database.scalar(
            self._con, "SELECT count(*) FROM cohorts WHERE cohort_id = $c", {"c": cohort_id}
        ):
            raise StateError(f"cohort_id {cohort_id!r}: not bound; call bind() before stage()")

    def _first_sync(self, cohort_id: str) -> bool:
        return not database.scalar(
            self._con, "SELECT count(*) FROM syncs WHERE cohort_id = $c", {"c": cohort_id}
        )

    def _diff(self, cohort_id: str) -> dict[str, int]:
        """Count the delta by kind, computing it into the _delta temp table unless cached."""
        if self._diffed != cohort_id:
            self._diff_counts = self._compute_diff(cohort_id)
            self._diffed = cohort_id
        return dict(self._diff_counts)

    def _compute_diff(self, cohort_id: str) -> dict[str, int]:
        assert self._snapshot is not None
        stored = database.scalar(
            self._con,
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
            database.scalar(self._con, f"SELECT coalesce(max(rowid) + 1, 0) FROM {_SNAPSHOT}")
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
            entering = database.scalar(self._con, f"SELECT count(*) FROM {_ENTERING}")
        self._con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_EXITING} AS
                SELECT row_number() OVER (ORDER BY user_id) AS rn, user_json FROM membership
                WHERE cohort_id = $c
                  AND user_id IN (SELECT user_id FROM {_DELTA} WHERE kind = 'exit')
                ORDER BY rn""",
            {"c": cohort_id},
        )
        return entering, database.scalar(self._con, f"SELECT count(*) FROM {_EXITING}")

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


def _count(records: Iterable[OutgoingRecord]) -> tuple[int, int]:
    """(records, bytes) of records that are only counted, never stored."""
    count = size = 0
    for record in records:
        count += 1
        size += record.size_bytes
    return count, size
