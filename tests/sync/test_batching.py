"""sync.batching: PutRecords batches never break a limit, keep order and are as few as possible."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.batching import pack_put_records, take_batch
from sync.errors import RecordLimitError
from sync.limits import MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT
from sync.messages import OutgoingRecord

pytestmark = pytest.mark.unit


def record(n: int, data_bytes: int, key: str = "") -> OutgoingRecord:
    key = key or f"s:{n}"
    return OutgoingRecord(f"s:{n}", key, b"x" * data_bytes, 1, True)


def sizes(batch: list[OutgoingRecord]) -> int:
    return sum(r.size_bytes for r in batch)


def test_defaults_are_kinesis_limits_of_500_records_and_5_mib() -> None:
    small = [record(i, 10) for i in range(1001)]
    assert [len(b) for b in pack_put_records(small)] == [500, 500, 1]
    # 1 MiB records with a 3-byte key ("s:N"): only four fit 5 MiB once keys are counted.
    big = [record(i, 1024 * 1024 + 5 - len(f"s:{i}")) for i in range(6)]
    batches = list(pack_put_records(big))
    assert [len(b) for b in batches] == [4, 2]
    assert all(sizes(b) <= MAX_PUT_RECORDS_BYTES for b in batches)
    assert MAX_PUT_RECORDS_COUNT == 500


def test_partition_keys_count_toward_the_request_size() -> None:
    # Data alone would fit 100 bytes; with the 10-byte keys only two records do.
    records = [record(i, 40, key="k" * 10) for i in range(3)]
    assert [len(b) for b in pack_put_records(records, max_bytes=100)] == [2, 1]


def test_empty_input_yields_no_batches() -> None:
    assert list(pack_put_records([])) == []


def test_record_bigger_than_a_request_is_refused() -> None:
    with pytest.raises(RecordLimitError) as info:
        list(pack_put_records([record(0, 200)], max_bytes=100))
    assert str(info.value) == (
        "record 's:0' is 203 bytes (data plus partition key): "
        "a PutRecords request holds at most 100"
    )


def test_take_batch_pops_the_longest_fitting_prefix() -> None:
    queue = deque(record(i, 7) for i in range(5))  # 10 bytes each
    assert [r.message_id for r in take_batch(queue, max_count=3, max_bytes=25)] == ["s:0", "s:1"]
    assert [r.message_id for r in queue] == ["s:2", "s:3", "s:4"]
    assert len(take_batch(queue, max_count=2, max_bytes=1000)) == 2
    assert len(queue) == 1


def minimal_batch_count(weights: list[int], max_count: int, max_bytes: int) -> int:
    """Reference: dynamic programming over every contiguous split, not greedy."""
    best = [0] + [len(weights) + 1] * len(weights)
    for end in range(1, len(weights) + 1):
        for begin in range(end - 1, -1, -1):
            if end - begin > max_count or sum(weights[begin:end]) > max_bytes:
                break
            best[end] = min(best[end], best[begin] + 1)
    return best[-1]


@settings(max_examples=200, deadline=None)
@given(
    data_sizes=st.lists(st.integers(0, 60), max_size=80),
    max_count=st.integers(1, 12),
    max_bytes=st.integers(64, 300),
)
def test_property_batches_fit_keep_order_and_are_minimal(
    data_sizes: list[int], max_count: int, max_bytes: int
) -> None:
    records = [record(i, size) for i, size in enumerate(data_sizes)]
    batches = list(pack_put_records(records, max_count=max_count, max_bytes=max_bytes))
    assert all(1 <= len(b) <= max_count and sizes(b) <= max_bytes for b in batches)
    assert [r for b in batches for r in b] == records
    weights = [r.size_bytes for r in records]
    assert len(batches) == minimal_batch_count(weights, max_count, max_bytes)
    # take_batch, applied repeatedly, makes the same batches.
    queue = deque(records)
    taken = []
    while queue:
        taken.append(take_batch(queue, max_count=max_count, max_bytes=max_bytes))
    assert taken == batches


def test_take_batch_stops_before_a_later_record_over_the_limit() -> None:
    # GIVEN a queue whose second record alone exceeds the (paced) request limit
    queue = deque([record(0, 7), record(1, 40), record(2, 7)])
    # WHEN a batch is taken, THEN it ends before that record, which waits for the next batch
    assert [r.message_id for r in take_batch(queue, max_bytes=25)] == ["s:0"]
    assert [r.message_id for r in queue] == ["s:1", "s:2"]


def test_take_batch_refuses_a_first_record_over_the_limit() -> None:
    queue = deque([record(0, 40)])
    with pytest.raises(RecordLimitError) as info:
        take_batch(queue, max_bytes=25)
    assert str(info.value) == (
        "record 's:0' is 43 bytes (data plus partition key): a PutRecords request holds at most 25"
    )
