"""The outbox: staged Kinesis records that stay until acknowledged, in the state store's DuckDB.

Records are written inside the staging transaction and read back in (sync, sequence) order with
keyset pagination, so no result set is open while the caller acks or records failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import duckdb
import pyarrow as pa

from sync.messages import OutgoingRecord

RECORDS_PER_PAGE: Final = 64
# Staged records are inserted in batches bounded by count and bytes, so memory stays bounded.
INSERT_BATCH_RECORDS: Final = 512
INSERT_BATCH_BYTES: Final = 32 * 1024 * 1024

# Ordering needs syncs(sync_id, ordinal), which the state store owns.
SCHEMA: Final = """CREATE TABLE IF NOT EXISTS outbox (
    sync_id VARCHAR NOT NULL, sequence BIGINT NOT NULL, message_id VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL, data BLOB NOT NULL, user_count INTEGER NOT NULL,
    in_cohort BOOLEAN NOT NULL, tries INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
    acked BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (sync_id, sequence))"""

_ARROW: Final = pa.schema(
    [
        ("sync_id", pa.string()),
        ("sequence", pa.int64()),
        ("message_id", pa.string()),
        ("partition_key", pa.string()),
        ("data", pa.binary()),
        ("user_count", pa.int32()),
        ("in_cohort", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class OutboxCounts:
    """Outbox totals: records waiting, delivered, and waiting after at least one failed try."""

    pending: int
    acked: int
    failing: int
    pending_users: int
    max_tries: int


class Outbox:
    """Records staged for delivery, on the state store's connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

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
            rows = self._con.execute(
                """SELECT s.ordinal, o.sequence, o.message_id, o.partition_key, o.data,
                          o.user_count, o.in_cohort
                   FROM outbox AS o JOIN syncs AS s ON o.sync_id = s.sync_id
                   WHERE NOT o.acked AND ($sync IS NULL OR o.sync_id = $sync)
                     AND (s.ordinal > $a OR (s.ordinal = $a AND o.sequence > $b))
                   ORDER BY s.ordinal, o.sequence LIMIT $n""",
                {"sync": sync_id, "a": after[0], "b": after[1], "n": page},
            ).fetchall()
            for ordinal, sequence, message_id, key, data, users, in_cohort in rows:
                after = (int(ordinal), int(sequence))
                yield OutgoingRecord(str(message_id), str(key), bytes(data), int(users), in_cohort)
            if left is not None:
                left -= len(rows)
            if len(rows) < page:
                return

    def ack(self, message_ids: Sequence[str]) -> None:
        """Mark records delivered and close syncs with nothing left; durable on return."""
        if not message_ids:
            return
        with _RegisteredIds(self._con, message_ids) as ids:
            self._con.begin()
            try:
                self._con.execute(
                    f"UPDATE outbox SET acked = true FROM {ids} AS i "
                    "WHERE outbox.message_id = i.message_id AND NOT outbox.acked"
                )
                self._con.execute(
                    f"""UPDATE syncs SET status = 'delivered' WHERE status = 'staged'
                        AND sync_id IN (SELECT o.sync_id FROM outbox AS o JOIN {ids} AS i
                                        ON o.message_id = i.message_id)
                        AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                        WHERE o.sync_id = syncs.sync_id AND NOT o.acked)"""
                )
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def record_failure(self, message_ids: Sequence[str], error: str) -> None:
        """Count one failed try for each record and keep the last error; durable on return."""
        if not message_ids:
            return
        with _RegisteredIds(self._con, message_ids) as ids:
            self._con.execute(
                f"UPDATE outbox SET tries = tries + 1, last_error = $e FROM {ids} AS i "
                "WHERE outbox.message_id = i.message_id AND NOT outbox.acked",
                {"e": error},
            )

    def counts(self) -> OutboxCounts:
        """Totals over the whole outbox."""
        row = self._con.execute(
            """SELECT count(*) FILTER (WHERE NOT acked), count(*) FILTER (WHERE acked),
                      count(*) FILTER (WHERE NOT acked AND tries > 0),
                      coalesce(sum(user_count) FILTER (WHERE NOT acked), 0),
                      coalesce(max(tries) FILTER (WHERE NOT acked), 0)
               FROM outbox"""
        ).fetchall()[0]
        return OutboxCounts(*(int(n) for n in row))

    def _insert(self, sync_id: str, first: int, batch: list[OutgoingRecord]) -> None:
        table = pa.table(
            [
                pa.array([sync_id] * len(batch), pa.string()),
                pa.array(range(first, first + len(batch)), pa.int64()),
                pa.array([r.message_id for r in batch], pa.string()),
                pa.array([r.partition_key for r in batch], pa.string()),
                pa.array([r.data for r in batch], pa.binary()),
                pa.array([r.user_count for r in batch], pa.int32()),
                pa.array([r.in_cohort for r in batch], pa.bool_()),
            ],
            schema=_ARROW,
        )
        self._con.register("_records", table)
        try:
            names = ", ".join(_ARROW.names)
            self._con.execute(f"INSERT INTO outbox ({names}) SELECT {names} FROM _records")
        finally:
            self._con.unregister("_records")


class _RegisteredIds:
    """Message ids registered as a scan for one batched UPDATE, unregistered on exit."""

    NAME: Final = "_message_ids"

    def __init__(self, con: duckdb.DuckDBPyConnection, message_ids: Sequence[str]) -> None:
        self._con = con
        self._table = pa.table({"message_id": pa.array(list(message_ids), pa.string())})

    def __enter__(self) -> str:
        self._con.register(self.NAME, self._table)
        return self.NAME

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._con.unregister(self.NAME)
