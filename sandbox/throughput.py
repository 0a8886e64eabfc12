"""Kinesis per-shard throughput as token buckets: the limits moto never enforces, as a pure model.

moto accepts any write and read rate. Kinesis gives every shard 1 MiB/s and 1000 records/s of
writes and 2 MiB/s and 5 GetRecords calls/s of reads (`sync.limits`). This module models those
budgets with token buckets over an injectable clock, with no moto or boto3 in sight;
`sandbox.faults` wires it into moto's Kinesis responses.
"""

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sync.limits import (
    SHARD_READ_BYTES_PER_SECOND,
    SHARD_READ_CALLS_PER_SECOND,
    SHARD_WRITE_BYTES_PER_SECOND,
    SHARD_WRITE_RECORDS_PER_SECOND,
)

HASH_KEY_SPACE = 2**128  # Kinesis hash keys are unsigned 128-bit integers


class Clock(Protocol):
    """A source of model time in seconds; only differences between readings matter."""

    def now(self) -> float:
        """Return the current model time in seconds."""
        ...


class ScaledClock:
    """Model time runs `factor` times faster than real time, so shards refill `factor`x faster."""

    def __init__(self, factor: float, real: Callable[[], float] = time.monotonic) -> None:
        if factor <= 0:
            raise ValueError(f"factor {factor!r}: must be > 0")
        self.factor = factor
        self._real = real
        self._origin = real()

    def now(self) -> float:
        """Return model seconds elapsed since construction: real seconds times the factor."""
        return (self._real() - self._origin) * self.factor


class FakeClock:
    """A clock that moves only when told to, for deterministic tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        """Return the current fake time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        if seconds < 0:
            raise ValueError(f"seconds {seconds!r}: time only moves forward")
        self._now += seconds


@dataclass
class TokenBucket:
    """Refills at `rate_per_second` up to `capacity`; starts full; may be debited into debt."""

    rate_per_second: float
    capacity: float
    tokens: float = field(init=False)
    updated_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last update, never above capacity."""
        if self.updated_at is None:
            self.updated_at = now
        elif now > self.updated_at:
            earned = (now - self.updated_at) * self.rate_per_second
            self.tokens = min(self.capacity, self.tokens + earned)
            self.updated_at = now

    def has(self, amount: float, now: float) -> bool:
        """Whether `amount` tokens are available at `now`."""
        self.refill(now)
        return self.tokens >= amount

    def take(self, amount: float, now: float) -> None:
        """Remove `amount` tokens unconditionally; the balance may go negative (debt)."""
        self.refill(now)
        self.tokens -= amount


@dataclass
class ShardWriteBudget:
    """A shard's write allowance: bytes and records per second, both must allow a record."""

    bytes: TokenBucket = field(
        default_factory=lambda: TokenBucket(
            SHARD_WRITE_BYTES_PER_SECOND, SHARD_WRITE_BYTES_PER_SECOND
        )
    )
    records: TokenBucket = field(
        default_factory=lambda: TokenBucket(
            SHARD_WRITE_RECORDS_PER_SECOND, SHARD_WRITE_RECORDS_PER_SECOND
        )
    )

    def try_write(self, size_bytes: int, now: float) -> bool:
        """Charge one record of `size_bytes` if both buckets allow it; report whether it fit."""
        if not (self.bytes.has(size_bytes, now) and self.records.has(1, now)):
            return False
        self.bytes.take(size_bytes, now)
        self.records.take(1, now)
        return True


@dataclass
class ShardReadBudget:
    """A shard's read allowance: GetRecords calls per second, and bytes that may run into debt."""

    calls: TokenBucket = field(
        default_factory=lambda: TokenBucket(
            SHARD_READ_CALLS_PER_SECOND, SHARD_READ_CALLS_PER_SECOND
        )
    )
    bytes: TokenBucket = field(
        default_factory=lambda: TokenBucket(
            SHARD_READ_BYTES_PER_SECOND, SHARD_READ_BYTES_PER_SECOND
        )
    )

    def try_call(self, now: float) -> bool:
        """Admit one GetRecords call unless the call rate is spent or earlier reads are in debt."""
        # Kinesis lets one call return up to 10 MiB and then throttles the shard's reads until
        # the 2 MiB/s budget has paid that back; a bucket allowed into debt models exactly that.
        if not (self.calls.has(1, now) and self.bytes.has(0, now)):
            return False
        self.calls.take(1, now)
        return True

    def charge(self, size_bytes: int, now: float) -> None:
        """Charge the bytes an admitted call returned."""
        self.bytes.take(size_bytes, now)


ShardKey = tuple[str, str]  # (stream ARN, shard id)


class ThroughputModel:
    """Write and read budgets for every shard seen, over one clock; thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._writes: dict[ShardKey, ShardWriteBudget] = {}
        self._reads: dict[ShardKey, ShardReadBudget] = {}
        # moto server mode serves requests on several threads; budgets must not race.
        self._lock = threading.Lock()

    def try_write(self, shard: ShardKey, size_bytes: int) -> bool:
        """Charge one record to `shard` if its write budget allows; report whether it fit."""
        with self._lock:
            budget = self._writes.setdefault(shard, ShardWriteBudget())
            return budget.try_write(size_bytes, self.clock.now())

    def try_read(self, shard: ShardKey) -> bool:
        """Admit one GetRecords call on `shard` if its read budget allows."""
        with self._lock:
            budget = self._reads.setdefault(shard, ShardReadBudget())
            return budget.try_call(self.clock.now())

    def charge_read(self, shard: ShardKey, size_bytes: int) -> None:
        """Charge the bytes an admitted GetRecords call returned."""
        with self._lock:
            budget = self._reads.setdefault(shard, ShardReadBudget())
            budget.charge(size_bytes, self.clock.now())


def partition_hash(partition_key: str, explicit_hash_key: str | None = None) -> int:
    """Return the 128-bit hash key Kinesis routes by: the explicit one, else MD5 of the key."""
    if explicit_hash_key:
        return int(explicit_hash_key)
    return int.from_bytes(
        hashlib.md5(partition_key.encode("utf-8"), usedforsecurity=False).digest(), "big"
    )


def record_size_bytes(data: bytes, partition_key: str) -> int:
    """Return the size Kinesis charges for a record: data plus UTF-8 partition key."""
    return len(data) + len(partition_key.encode("utf-8"))
