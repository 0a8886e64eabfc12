"""The outbox: staged Kinesis records that stay until acknowledged, in the state store's DuckDB.

An acknowledged record is deleted in its ack's transaction, so the outbox is what is pending.

Records are written before their sync is recorded (the state store commits the sync with the
new membership; until then they are nobody's and never pending) and read back in (sync,
sequence) order with keyset pagination, so no result set is open while the caller acks or
records failures. A page first reads the keys and sizes of the next records (no blobs), then
only their data by range: ordering and limiting rows that carry every blob made each page cost
the whole outbox.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import duckdb
import pyarrow as pa

from sync import database
from sync.messages import OutgoingRecord

# Keys read per page; the data of those records is then read in slices of at most PAGE_BYTES
# (and at least one record), so memory stays bounded whatever the records' sizes.
RECORDS_PER_PAGE: Final = 1024
PAGE_BYTES: Final = 16 * 1024 * 1024
# Staged records are inserted in batches bounded by count and bytes, so memory stays bounded;
# 8 MiB rather than 32 took ~45 MB off a 1M-user push's peak at the same speed.
INSERT_BATCH_RECORDS: Final = 512
INSERT_BATCH_BYTES: Final = 8 * 1024 * 1024

# Ordering needs syncs(sync_id, ordinal), which the state store owns. DuckDB stores `data` as
# given: it compresses large blobs with ZSTD a whole vector (2048 rows) at a time, so reading one
# record of a checkpointed outbox decompressed every record beside it (50 ms per read for 72
# MB). Each record is deflated on its own instead (`deflated`), at zlib's fastest level: the
# messages' repeated JSON shrinks about 11x at ~550 MB/s, so a 10M-user push writes 65 MB of
# records instead of 720 MB (and holds that much less in memory before it checkpoints).
SCHEMA: Final = """CREATE TABLE IF NOT EXISTS outbox (
    sync_id VARCHAR NOT NULL, sequence BIGINT NOT NULL, message_id VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL, data BLOB USING COMPRESSION uncompressed NOT NULL,
    user_count INTEGER NOT NULL,
    in_cohort BOOLEAN NOT NULL, tries INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
    acked BOOLEAN NOT NULL DEFAULT false, size_bytes INTEGER, deflated BOOLEAN DEFAULT false,
    PRIMARY KEY (sync_id, sequence))"""
# Each record's Kinesis size (data plus partition key), kept beside it so a page's keys query
# never reads a blob: computing octet_length(data) read the whole outbox for every page (0.46 s
# a page, 4.5 s for a 10M-user push's ten pages). Files written before it get the column, and
# their records are sized once, when they are opened; their data stays as it was (not deflated).
MIGRATIONS: Final = (
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS deflated BOOLEAN DEFAULT false",
    "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS size_bytes INTEGER",
    """UPDATE outbox SET size_bytes = octet_length(data) + strlen(partition_key)
       WHERE size_bytes IS NULL""",
)

_ARROW: Final = pa.schema(
    [
        ("sync_id", pa.string()),
        ("sequence", pa.int64()),
        ("message_id", pa.string()),
        ("partition_key", pa.string()),
        ("data", pa.binary()),
        ("user_count", pa.int32()),
        ("in_cohort", pa.bool_()),
        ("size_bytes", pa.int32()),
        ("deflated", pa.bool_()),
    ]
)
# zlib's fastest level: nearly the ratio of the default (11.1x against 11.4x on these messages)
# at five times its speed.
DEFLATE_LEVEL: Final = 1


@dataclass(frozen=True)
class OutboxCounts:
    """Outbox totals: records waiting, and waiting after at least one failed try."""

    pending: int
    failing: int
    pending_users: int
    max_tries: int


class Outbox:
    """Records staged for delivery, on the state store's connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def create(self) -> None:
        """Create the outbox table, or bring one an older version wrote up to date."""
        for statement in (SCHEMA, *MIGRATIONS):
            self._con.execute(statement)

    def add(
        self, sync_id: str, first_sequence: int, records: Iterable[OutgoingRecord]
    ) -> tuple[int, int]:
        """Insert records numbered from `first_sequence`; return (records, bytes) added.

        Bytes are what counts against Kinesis limits: data plus partition key.
        """
        batch: list[OutgoingRecord] = []
        batch_bytes = count = total_bytes = 0
        for record in records:
            batch.append(record)
            batch_bytes += record.size_bytes
            if len(batch) >= INSERT_BATCH_RECORDS or batch_bytes >= INSERT_BATCH_BYTES:
                self._insert(sync_id, first_sequence + count, batch)
                count += len(batch)
                total_bytes += batch_bytes
                batch, batch_bytes = [], 0
        if batch:
            self._insert(sync_id, first_sequence + count, batch)
            count += len(batch)
            total_bytes += batch_bytes
        return count, total_bytes

    def pending(
        self, *, limit: int | None = None, sync_id: str | None = None
    ) -> Iterator[OutgoingRecord]:
        """Unacknowledged records, oldest sync first, in sequence order; safe to ack meanwhile."""
        after = (-1, -1)
        left = limit
        while left is None or left > 0:
            page = RECORDS_PER_PAGE if left is None else min(left, RECORDS_PER_PAGE)
            keys = self._con.execute(
                """SELECT s.ordinal, o.sync_id, o.sequence,
                          o.size_bytes
                   FROM outbox AS o JOIN syncs AS s ON o.sync_id = s.sync_id
                   WHERE NOT o.acked AND ($sync IS NULL OR o.sync_id = $sync)
                     AND (s.ordinal > $a OR (s.ordinal = $a AND o.sequence > $b))
                   ORDER BY s.ordinal, o.sequence LIMIT $n""",
                {"sync": sync_id, "a": after[0], "b": after[1], "n": page},
            ).fetchall()
            for sync, first, last in _slices(keys):
                yield from self._read(sync, first, last)
            if keys:
                after = (int(keys[-1][0]), int(keys[-1][2]))
            if left is not None:
                left -= len(keys)
            if len(keys) < page:
                return

    def _read(self, sync_id: str, first: int, last: int) -> list[OutgoingRecord]:
        # Records acked since their keys were read drop out here, as they should.
        rows = self._con.execute(
            """SELECT message_id, partition_key, data, user_count, in_cohort, deflated
               FROM outbox
               WHERE sync_id = $s AND sequence BETWEEN $first AND $last AND NOT acked
               ORDER BY sequence""",
            {"s": sync_id, "first": first, "last": last},
        ).fetchall()
        return [
            OutgoingRecord(
                str(message_id),
                str(key),
                zlib.decompress(data) if deflated else bytes(data),
                int(users),
                bool(in_cohort),
            )
            for message_id, key, data, users, in_cohort, deflated in rows
        ]

    def ack(self, message_ids: Sequence[str]) -> None:
        """Delete acknowledged records and close syncs with nothing left; durable on return.

        An acknowledged record is never sent again, so its row goes in the same transaction
        as the ack: the outbox holds only what is pending, and the state file stays the size of
        the live data (the next checkpoint reuses the freed blocks).
        """
        if not message_ids:
            return
        # The ids travel as one list parameter: registering an Arrow table per call cost more
        # than the statements themselves, and a push acks once per PutRecords call.
        ids = {"ids": list(message_ids)}
        with database.transaction(self._con):
            touched = [
                row[0]
                for row in self._con.execute(
                    "SELECT DISTINCT sync_id FROM outbox WHERE message_id IN (SELECT unnest($ids))",
                    ids,
                ).fetchall()
            ]
            # `OR acked`: state files written before acks deleted rows still hold acked ones.
            self._con.execute(
                "DELETE FROM outbox WHERE acked OR message_id IN (SELECT unnest($ids))", ids
            )
            if touched:
                self._con.execute(
                    """UPDATE syncs SET status = 'delivered' WHERE status = 'staged'
                       AND sync_id IN (SELECT unnest($touched))
                       AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                       WHERE o.sync_id = syncs.sync_id)""",
                    {"touched": touched},
                )

    def record_failure(self, message_ids: Sequence[str], error: str) -> None:
        """Count one failed try for each record and keep the last error; durable on return."""
        if not message_ids:
            return
        self._con.execute(
            """UPDATE outbox SET tries = tries + 1, last_error = $e
               WHERE message_id IN (SELECT unnest($ids)) AND NOT acked""",
            {"ids": list(message_ids), "e": error},
        )

    def counts(self) -> OutboxCounts:
        """Totals over the whole outbox."""
        row = self._con.execute(
            """SELECT count(*) FILTER (WHERE NOT acked),
                      count(*) FILTER (WHERE NOT acked AND tries > 0),
                      coalesce(sum(user_count) FILTER (WHERE NOT acked), 0),
                      coalesce(max(tries) FILTER (WHERE NOT acked), 0)
               FROM outbox WHERE sync_id IN (SELECT sync_id FROM syncs)"""
        ).fetchall()[0]
        return OutboxCounts(*(int(n) for n in row))

    def drop_orphans(self) -> None:
        """Delete records whose sync never committed: a stage that failed or was killed.

        Such records are never pending (`pending()` reads only records of recorded syncs);
        this only gives their space back.
        """
        self._con.execute("DELETE FROM outbox WHERE sync_id NOT IN (SELECT sync_id FROM syncs)")

    def _insert(self, sync_id: str, first: int, batch: list[OutgoingRecord]) -> None:
        table = pa.table(
            [
                pa.array([sync_id] * len(batch), pa.string()),
                pa.array(range(first, first + len(batch)), pa.int64()),
                pa.array([r.message_id for r in batch], pa.string()),
                pa.array([r.partition_key for r in batch], pa.string()),
                pa.array([zlib.compress(r.data, DEFLATE_LEVEL) for r in batch], pa.binary()),
                pa.array([r.user_count for r in batch], pa.int32()),
                pa.array([r.in_cohort for r in batch], pa.bool_()),
                pa.array([r.size_bytes for r in batch], pa.int32()),
                pa.array([True] * len(batch), pa.bool_()),
            ],
            schema=_ARROW,
        )
        self._con.register("_records", table)
        try:
            names = ", ".join(_ARROW.names)
            self._con.execute(f"INSERT INTO outbox ({names}) SELECT {names} FROM _records")
        finally:
            self._con.unregister("_records")


def _slices(keys: Sequence[tuple[int, str, int, int]]) -> Iterator[tuple[str, int, int]]:
    """Split ordered (ordinal, sync, sequence, bytes) keys into per-sync runs of <= PAGE_BYTES."""
    start = 0
    size = 0
    for i, (_, sync, _sequence, record_bytes) in enumerate(keys):
        if i > start and (sync != keys[start][1] or size + record_bytes > PAGE_BYTES):
            yield keys[start][1], keys[start][2], keys[i - 1][2]
            start, size = i, 0
        size += record_bytes
    if start < len(keys):
        yield keys[start][1], keys[start][2], keys[-1][2]
