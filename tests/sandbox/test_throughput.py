"""sandbox.throughput: token buckets, shard budgets and clocks, pure and on a fake clock."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.throughput import (
    HASH_KEY_SPACE,
    FakeClock,
    ScaledClock,
    ShardReadBudget,
    ShardWriteBudget,
    ThroughputModel,
    TokenBucket,
    partition_hash,
    record_size_bytes,
)
from sync.limits import (
    SHARD_READ_BYTES_PER_SECOND,
    SHARD_READ_CALLS_PER_SECOND,
    SHARD_WRITE_BYTES_PER_SECOND,
    SHARD_WRITE_RECORDS_PER_SECOND,
)

pytestmark = pytest.mark.unit

MIB = 1024 * 1024


def test_bucket_starts_full_and_refuses_beyond_capacity() -> None:
    bucket = TokenBucket(rate_per_second=10, capacity=10)

    assert bucket.has(10, now=0.0)
    bucket.take(10, now=0.0)
    assert not bucket.has(1, now=0.0)


def test_bucket_refills_at_its_rate_and_caps_at_capacity() -> None:
    bucket = TokenBucket(rate_per_second=10, capacity=10)
    bucket.take(10, now=0.0)

    assert bucket.has(5, now=0.5)
    assert not bucket.has(5.01, now=0.5)
    assert bucket.has(10, now=100.0)
    assert not bucket.has(10.01, now=100.0)


def test_bucket_debt_is_paid_back_before_it_has_credit() -> None:
    bucket = TokenBucket(rate_per_second=2, capacity=2)
    bucket.take(10, now=0.0)  # 8 in debt

    assert not bucket.has(0, now=3.9)
    assert bucket.has(0, now=4.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 2, allow_nan=False), st.integers(1, 300)), min_size=1, max_size=60
    )
)
def test_writes_admitted_never_exceed_capacity_plus_refill(steps: list[tuple[float, int]]) -> None:
    # GIVEN a write budget and a stream of records at arbitrary moments
    budget = ShardWriteBudget()
    now, admitted_records, admitted_bytes = 0.0, 0, 0
    for gap, size in steps:
        now += gap
        # WHEN each record asks for room
        if budget.try_write(size * 1000, now):
            admitted_records += 1
            admitted_bytes += size * 1000
    # THEN nothing beyond one second of burst plus what the elapsed time earned got through
    assert admitted_records <= SHARD_WRITE_RECORDS_PER_SECOND * (1 + now)
    assert admitted_bytes <= SHARD_WRITE_BYTES_PER_SECOND * (1 + now)


def test_write_budget_allows_1000_records_per_second_then_refuses() -> None:
    budget = ShardWriteBudget()

    admitted = sum(budget.try_write(10, now=0.0) for _ in range(SHARD_WRITE_RECORDS_PER_SECOND + 5))

    assert admitted == SHARD_WRITE_RECORDS_PER_SECOND
    assert budget.try_write(10, now=0.001)  # one record earned back after a millisecond


def test_write_budget_allows_one_mib_per_second_then_refuses() -> None:
    budget = ShardWriteBudget()

    assert budget.try_write(SHARD_WRITE_BYTES_PER_SECOND - 100, now=0.0)
    assert not budget.try_write(101, now=0.0)
    assert budget.try_write(100, now=0.0)


def test_refused_write_charges_nothing() -> None:
    budget = ShardWriteBudget()
    budget.try_write(SHARD_WRITE_BYTES_PER_SECOND, now=0.0)

    assert not budget.try_write(MIB, now=0.0)
    assert budget.records.tokens == SHARD_WRITE_RECORDS_PER_SECOND - 1


def test_read_budget_allows_five_calls_per_second() -> None:
    budget = ShardReadBudget()

    admitted = [budget.try_call(now=0.0) for _ in range(SHARD_READ_CALLS_PER_SECOND + 1)]

    assert admitted == [True] * SHARD_READ_CALLS_PER_SECOND + [False]
    assert budget.try_call(now=1 / SHARD_READ_CALLS_PER_SECOND)


def test_a_ten_mib_read_blocks_the_shard_until_the_debt_is_paid() -> None:
    # GIVEN a call that returned 10 MiB, as one GetRecords may
    budget = ShardReadBudget()
    assert budget.try_call(now=0.0)
    budget.charge(10 * MIB, now=0.0)

    # THEN reads are refused until 2 MiB/s has paid back the 8 MiB over the burst
    debt_seconds = (10 * MIB - SHARD_READ_BYTES_PER_SECOND) / SHARD_READ_BYTES_PER_SECOND
    assert not budget.try_call(now=debt_seconds - 0.01)
    assert budget.try_call(now=debt_seconds)


def test_model_keeps_shards_independent() -> None:
    clock = FakeClock()
    model = ThroughputModel(clock)
    hot, cold = ("arn:s", "shardId-000000000000"), ("arn:s", "shardId-000000000001")

    assert model.try_write(hot, SHARD_WRITE_BYTES_PER_SECOND)
    assert not model.try_write(hot, 1)
    assert model.try_write(cold, 1)
    clock.advance(1.0)
    assert model.try_write(hot, SHARD_WRITE_BYTES_PER_SECOND)


def test_scaled_clock_multiplies_elapsed_real_time() -> None:
    real = FakeClock(start=50.0)
    clock = ScaledClock(factor=100, real=real.now)

    real.advance(0.5)

    assert clock.now() == pytest.approx(50.0)


@pytest.mark.parametrize("factor", [0, -1.0])
def test_scaled_clock_rejects_non_positive_factor(factor: float) -> None:
    with pytest.raises(ValueError, match=r"factor .*: must be > 0"):
        ScaledClock(factor=factor)


def test_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="time only moves forward"):
        FakeClock().advance(-1)


def test_partition_hash_is_md5_as_a_big_endian_128_bit_integer() -> None:
    expected = int(hashlib.md5(b"user-42", usedforsecurity=False).hexdigest(), 16)

    assert partition_hash("user-42") == expected
    assert 0 <= partition_hash("user-42") < HASH_KEY_SPACE
    assert partition_hash("ignored", explicit_hash_key="12345") == 12345


def test_record_size_counts_partition_key_in_utf8_bytes() -> None:
    assert record_size_bytes(b"abc", "é") == 3 + 2
