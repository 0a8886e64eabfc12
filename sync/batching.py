"""Greedy, order-preserving packing of records into PutRecords requests."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from sync.errors import RecordLimitError
from sync.limits import MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT
from sync.messages import OutgoingRecord


def _check_fits(record: OutgoingRecord, max_bytes: int) -> int:
    size = record.size_bytes
    if size > max_bytes:
        raise RecordLimitError(
            f"record {record.message_id!r} is {size} bytes (data plus partition key): "
            f"a PutRecords request holds at most {max_bytes}"
        )
    return size


def pack_put_records(
    records: Iterable[OutgoingRecord],
    *,
    max_count: int = MAX_PUT_RECORDS_COUNT,
    max_bytes: int = MAX_PUT_RECORDS_BYTES,
) -> Iterator[list[OutgoingRecord]]:
    """Yield batches in input order, each closed when the next record would break a limit."""
    batch: list[OutgoingRecord] = []
    batch_bytes = 0
    for record in records:
        size = _check_fits(record, max_bytes)
        if batch and (len(batch) >= max_count or batch_bytes + size > max_bytes):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(record)
        batch_bytes += size
    if batch:
        yield batch


def take_batch(
    queue: deque[OutgoingRecord],
    *,
    max_count: int = MAX_PUT_RECORDS_COUNT,
    max_bytes: int = MAX_PUT_RECORDS_BYTES,
) -> list[OutgoingRecord]:
    """Pop from the left of `queue` the longest prefix that fits one PutRecords request.

    Only a first record over `max_bytes` is refused; a later one ends the batch and leads the
    next, since callers pass limits tighter than Kinesis's (the publisher's pacing does).
    """
    if queue:
        _check_fits(queue[0], max_bytes)
    batch: list[OutgoingRecord] = []
    batch_bytes = 0
    while queue and len(batch) < max_count:
        size = queue[0].size_bytes
        if batch_bytes + size > max_bytes:
            break
        batch.append(queue.popleft())
        batch_bytes += size
    return batch
