"""The outbox on its own: numbering, order, pagination, batched acks and failure counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sync.messages import OutgoingRecord
from sync.outbox import INSERT_BATCH_RECORDS, RECORDS_PER_PAGE, SCHEMA, Outbox, OutboxCounts
from sync.state import StateStore

pytestmark = pytest.mark.unit


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    # The outbox orders by syncs.ordinal and closes syncs.status; the store owns the full table.
    connection.execute("CREATE TABLE syncs (sync_id VARCHAR, ordinal BIGINT, status VARCHAR)")
    connection.execute(SCHEMA)
    yield connection
    connection.close()


def records(sync_id: str, count: int, *, first: int = 0) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(f"{sync_id}:{i}", f"{sync_id}:{i}", b'{"i":%d}' % i, 1, i % 2 == 0)
        for i in range(first, first + count)
    ]


def add_sync(con: duckdb.DuckDBPyConnection, sync_id: str, ordinal: int) -> None:
    con.execute("INSERT INTO syncs VALUES ($s, $o, 'staged')", {"s": sync_id, "o": ordinal})


def statuses(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT sync_id, status FROM syncs").fetchall())


def test_add_numbers_records_and_round_trips_them(con: duckdb.DuckDBPyConnection) -> None:
    add_sync(con, "s", 1)
    staged = records("s", INSERT_BATCH_RECORDS + 3)  # crosses an insert batch boundary
    outbox = Outbox(con)

    assert outbox.add("s", 0, staged) == (len(staged), sum(r.size_bytes for r in staged))

    assert list(outbox.pending()) == staged
    sequences = [row[0] for row in con.execute("SELECT sequence FROM outbox ORDER BY 1").fetchall()]
    assert sequences == list(range(len(staged)))


def test_pending_pages_in_sync_order_then_sequence(con: duckdb.DuckDBPyConnection) -> None:
    outbox = Outbox(con)
    add_sync(con, "later", 2)
    add_sync(con, "earlier", 1)
    outbox.add("later", 0, records("later", 3))
    outbox.add("earlier", 0, records("earlier", RECORDS_PER_PAGE + 1))

    ids = [r.message_id for r in outbox.pending()]

    expected = [f"earlier:{i}" for i in range(RECORDS_PER_PAGE + 1)] + ["later:0", "later:1"]
    assert ids == [*expected, "later:2"]
    assert [r.message_id for r in outbox.pending(limit=RECORDS_PER_PAGE + 3)] == expected
    assert [r.message_id for r in outbox.pending(sync_id="later")] == [
        "later:0",
        "later:1",
        "later:2",
    ]
    assert list(outbox.pending(limit=0)) == []


def test_ack_is_batched_idempotent_and_closes_finished_syncs(
    con: duckdb.DuckDBPyConnection,
) -> None:
    outbox = Outbox(con)
    add_sync(con, "a", 1)
    add_sync(con, "b", 2)
    outbox.add("a", 0, records("a", 2))
    outbox.add("b", 0, records("b", 2))

    outbox.ack(["a:0", "a:1", "b:0", "unknown:9"])
    outbox.ack(["a:0"])  # a repeated ack (a retried call that had succeeded) changes nothing

    assert [r.message_id for r in outbox.pending()] == ["b:1"]
    assert statuses(con) == {"a": "delivered", "b": "staged"}
    assert outbox.counts() == OutboxCounts(pending=1, failing=0, pending_users=1, max_tries=0)
    # Acknowledged records are deleted with their ack: only the pending one is stored.
    assert con.execute("SELECT message_id FROM outbox").fetchall() == [("b:1",)]


def test_a_failed_ack_deletes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    # GIVEN a sync whose status cannot be closed (the syncs table refuses updates)
    outbox = Outbox(con)
    add_sync(con, "a", 1)
    outbox.add("a", 0, records("a", 2))
    con.execute("ALTER TABLE syncs RENAME TO syncs_gone")
    con.execute("CREATE VIEW syncs AS SELECT * FROM syncs_gone")  # a view cannot be updated
    # WHEN the ack fails after its delete
    with pytest.raises(duckdb.Error):
        outbox.ack(["a:0", "a:1"])
    # THEN the delete was rolled back with it: both records are still pending
    assert [r.message_id for r in outbox.pending()] == ["a:0", "a:1"]


def test_record_failure_counts_tries_and_keeps_last_error(
    con: duckdb.DuckDBPyConnection,
) -> None:
    outbox = Outbox(con)
    add_sync(con, "s", 1)
    outbox.add("s", 0, records("s", 3))

    outbox.record_failure(["s:0", "s:1"], "ProvisionedThroughputExceededException")
    outbox.record_failure(["s:0"], "InternalFailure")
    outbox.ack(["s:1"])

    assert outbox.counts() == OutboxCounts(pending=2, failing=1, pending_users=2, max_tries=2)
    rows = con.execute("SELECT message_id, tries, last_error FROM outbox ORDER BY sequence")
    assert rows.fetchall() == [("s:0", 2, "InternalFailure"), ("s:2", 0, None)]


class CountingConnection:
    """A connection that records every statement run through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.statements: list[str] = []

    def execute(self, query: str, *args: Any) -> duckdb.DuckDBPyConnection:
        self.statements.append(query)
        return self._con.execute(query, *args)

    def executemany(self, query: str, *args: Any) -> duckdb.DuckDBPyConnection:
        self.statements.append(query)
        return self._con.executemany(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_acking_thousands_of_ids_is_one_batched_update(con: duckdb.DuckDBPyConnection) -> None:
    # GIVEN 5,002 pending records
    counting = CountingConnection(con)
    outbox = Outbox(counting)  # type: ignore[arg-type]
    add_sync(con, "s", 1)
    outbox.add("s", 0, records("s", 5002))

    # WHEN two ids are acked, then the other 5,000
    counting.statements.clear()
    outbox.ack(["s:5000", "s:5001"])
    for_two = len(counting.statements)
    counting.statements.clear()
    outbox.ack([f"s:{i}" for i in range(5000)])
    for_5000 = counting.statements[:]

    # THEN everything is acked, in as many statements for 5,000 ids as for two: a handful
    assert len(for_5000) == for_two <= 3, for_5000
    assert outbox.counts().pending == 0


def test_empty_ack_and_failure_are_no_ops(con: duckdb.DuckDBPyConnection) -> None:
    outbox = Outbox(con)
    outbox.ack([])
    outbox.record_failure([], "x")
    assert outbox.counts() == OutboxCounts(0, 0, 0, 0)


def test_pending_reads_data_in_byte_bounded_slices_after_the_keys(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN five records and data slices of two records' bytes
    outbox = Outbox(con)
    add_sync(con, "s", 1)
    staged = records("s", 5)
    outbox.add("s", 0, staged)
    monkeypatch.setattr("sync.outbox.PAGE_BYTES", 2 * staged[0].size_bytes)
    # WHEN s:3 is acked while s:0 is being handled (its keys are read, its data is not)
    seen = []
    for record in outbox.pending():
        if record.message_id == "s:0":
            outbox.ack(["s:3"])
        seen.append(record)
    # THEN the later slice no longer holds it; the rest arrives whole and in order
    assert seen == [staged[0], staged[1], staged[2], staged[4]]


def test_a_record_larger_than_a_slice_is_read_alone(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = Outbox(con)
    add_sync(con, "a", 1)
    add_sync(con, "b", 2)
    outbox.add("a", 0, records("a", 3))
    outbox.add("b", 0, records("b", 2))
    monkeypatch.setattr("sync.outbox.PAGE_BYTES", 1)

    ids = [r.message_id for r in outbox.pending()]

    assert ids == ["a:0", "a:1", "a:2", "b:0", "b:1"]
    assert [r.message_id for r in outbox.pending(limit=4)] == ids[:4]


def test_record_data_is_stored_uncompressed(tmp_path: Path) -> None:
    # ZSTD compresses a vector of blobs as one frame: reading one record decompressed them all.
    with duckdb.connect(str(tmp_path / "outbox.duckdb")) as connection:
        connection.execute("CREATE TABLE syncs (sync_id VARCHAR, ordinal BIGINT, status VARCHAR)")
        connection.execute(SCHEMA)
        add_sync(connection, "s", 1)
        Outbox(connection).add(
            "s", 0, [OutgoingRecord(f"s:{i}", f"s:{i}", b"x" * 70_000, 1, True) for i in range(50)]
        )
        connection.execute("CHECKPOINT")
        methods = connection.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('outbox') "
            "WHERE column_name = 'data' AND segment_type = 'BLOB'"
        ).fetchall()
    assert methods == [("Uncompressed",)]


# The outbox as state files before this code wrote it: no size, data stored as sent.
OLD_SCHEMA = """CREATE TABLE outbox (
    sync_id VARCHAR NOT NULL, sequence BIGINT NOT NULL, message_id VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL, data BLOB USING COMPRESSION uncompressed NOT NULL,
    user_count INTEGER NOT NULL,
    in_cohort BOOLEAN NOT NULL, tries INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
    acked BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY (sync_id, sequence))"""


def test_pages_are_planned_from_stored_sizes_and_old_files_are_read_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a state file written before records kept their size and were deflated: five
    # pending records stored as they are sent
    path = tmp_path / "state.duckdb"
    staged = records("s", 5)
    with StateStore(path) as store:
        con = store.connection
        con.execute("INSERT INTO syncs VALUES ('s', 1, 'c', '1', now(), 'staged', 5, 0, 5, 0)")
        con.execute("DROP TABLE outbox")
        con.execute(OLD_SCHEMA)
        for sequence, record in enumerate(staged):
            con.execute(
                "INSERT INTO outbox (sync_id, sequence, message_id, partition_key, data, "
                "user_count, in_cohort) VALUES ('s', $n, $id, $key, $data, 1, $in)",
                {
                    "n": sequence,
                    "id": record.message_id,
                    "key": record.partition_key,
                    "data": record.data,
                    "in": record.in_cohort,
                },
            )
    # WHEN it is opened by this code and read in slices of two records
    monkeypatch.setattr("sync.outbox.PAGE_BYTES", 2 * staged[0].size_bytes)
    with StateStore(path) as store:
        sizes = store.connection.execute("SELECT size_bytes FROM outbox").fetchall()
        pending = list(store.outbox.pending())
        # AND a record staged by this code beside them is deflated, and read back whole
        store.connection.execute(
            "INSERT INTO syncs VALUES ('t', 2, 'c', '2', now(), 'staged', 1, 0, 1, 0)"
        )
        fresh = OutgoingRecord("t:0", "t:0", b'{"users":[' + b'"x",' * 5000 + b'"y"]}', 1, True)
        Outbox(store.connection).add("t", 0, [fresh])
        stored = store.connection.execute(
            "SELECT octet_length(data) FROM outbox WHERE sync_id = 't'"
        ).fetchall()[0][0]
        both = list(store.outbox.pending())
    # THEN each old record got its Kinesis size and arrives as it was, in order; the new one
    # takes a fraction of its size on disk and arrives byte for byte
    assert sizes == [(r.size_bytes,) for r in staged]
    assert pending == staged
    assert both == [*staged, fresh]
    assert stored < len(fresh.data) / 10
