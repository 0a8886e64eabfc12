"""Adaptive send pacing: a token bucket whose rate is learned from Kinesis throttling.

Rates are in shard-equivalents: one unit is one shard's write budget per second (1 MiB/s or
1000 records/s, whichever a record exhausts first), so a hint is just the shard count and both
Kinesis write limits are paced by one number.

Without a hint the pacer limits nothing until the first throttle. A throttle means a shard's
bucket is empty, so what Kinesis accepted between two throttles, divided by the time between
them, is the stream's capacity; the pacer keeps that as its ceiling and drops below it
(multiplicative decrease). Successes climb back to just under the ceiling fast, then probe above
it, slowly at first and faster the longer it holds, so capacity that grows (on-demand scaling, a
wrong hint) is found again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.limits import SHARD_WRITE_BYTES_PER_SECOND, SHARD_WRITE_RECORDS_PER_SECOND

_EPSILON = 1e-9


def record_cost(size_bytes: int) -> float:
    """Shard-seconds one record of `size_bytes` (data plus partition key) uses of a shard."""
    return max(size_bytes / SHARD_WRITE_BYTES_PER_SECOND, 1 / SHARD_WRITE_RECORDS_PER_SECOND)


@dataclass(frozen=True)
class PacingSettings:
    """How the pacer adapts; rates in shard-equivalents, times in clock seconds."""

    decrease_factor: float = 0.9  # rate right after a throttle, as a fraction of the ceiling
    recover_fraction: float = 0.97  # where fast recovery stops, as a fraction of the ceiling
    recover_doublings_per_second: float = 2.0  # growth below that point
    probe_per_second: float = 0.02  # growth above it, doubling every second it holds
    burst_seconds: float = 0.1  # tokens that may accumulate while idle, in seconds of rate
    min_interval_seconds: float = 1.0  # shortest span between throttles that measures capacity
    # Every stream has a shard, so capacity is never below one shard's; a ceiling measured lower
    # comes from a small sample (or a hot partition key under the limit) and is raised to it.
    min_ceiling: float = 1.0
    # Before anything is learned no request carries more than one shard's burst (every stream
    # has a shard): a 5 MiB request into a one-shard stream would be 80% throttled.
    unpaced_batch_limit: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("decrease_factor", "recover_fraction"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} {getattr(self, name)}: need 0 < value <= 1")
        for name in ("probe_per_second", "recover_doublings_per_second"):
            if getattr(self, name) < 0:
                problems.append(f"{name} {getattr(self, name)}: must be >= 0")
        for name in ("burst_seconds", "min_interval_seconds", "min_ceiling", "unpaced_batch_limit"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} {getattr(self, name)}: must be > 0")
        if problems:
            raise ValueError("; ".join(problems))


class Pacer:
    """Token bucket over an external clock; `rate` None means unpaced (nothing learned yet)."""

    def __init__(self, shards: float | None = None, settings: PacingSettings | None = None) -> None:
        if shards is not None and not shards > 0:
            raise ValueError(f"shards {shards}: must be > 0")
        self.settings = settings or PacingSettings()
        self.rate: float | None = shards
        self.ceiling: float | None = shards
        self.decreases = 0
        self._tokens = 0.0 if shards is None else shards * self.settings.burst_seconds
        self._updated_at: float | None = None
        self._grown_at: float | None = None
        self._decreased_at: float | None = None
        self._above_since: float | None = None
        self._first_accepted_at: float | None = None
        self._empty_at: float | None = None  # last throttle seen: a bucket was empty then
        self._accepted_since_empty = 0.0

    def delay(self, now: float) -> float:
        """Seconds until the next request may be sent; 0 while out of debt."""
        if self.rate is None:
            return 0.0
        self._refill(now)
        # A sliver of debt left by float rounding must not make a caller sleep for nothing.
        return 0.0 if self._tokens >= -_EPSILON else -self._tokens / self.rate

    def batch_limit(self) -> float:
        """The most cost one request should carry, so requests spread over time."""
        if self.rate is None:
            return self.settings.unpaced_batch_limit
        return self.rate * self.settings.burst_seconds

    def spend(self, cost: float, now: float) -> None:
        """Charge a request about to be sent; the balance may go into debt."""
        if self.rate is None:
            return
        self._refill(now)
        self._tokens -= cost

    def accepted(self, cost: float, now: float) -> None:
        """Record what Kinesis took from one response, and grow the rate while it keeps taking."""
        if self._first_accepted_at is None:
            self._first_accepted_at = now
        self._accepted_since_empty += cost
        if self.rate is None:
            return
        if self._grown_at is None or now <= self._grown_at:
            self._grown_at = now
            return
        # Growth is capped per update so a long idle spell does not license a storm.
        elapsed = min(now - self._grown_at, self.settings.min_interval_seconds)
        self._grown_at = now
        self._refill(now)
        knee = None if self.ceiling is None else self.ceiling * self.settings.recover_fraction
        if knee is None or self.rate < knee:
            grown = self.rate * 2 ** (self.settings.recover_doublings_per_second * elapsed)
            self.rate = grown if knee is None else min(grown, knee)
            self._above_since = None
        else:
            # The probe speeds up the longer the ceiling holds: a ceiling measured while little
            # was being sent (a throttle fault early on) must not pin the rate for minutes.
            if self._above_since is None:
                self._above_since = now
            speedup = 2 ** (now - self._above_since)
            self.rate *= (1 + self.settings.probe_per_second * speedup) ** elapsed

    def throttled(self, sent_at: float, now: float) -> bool:
        """React to a throttle of a request sent at `sent_at`; True if the rate was lowered."""
        measured = self._measure(now)
        # Requests sent before the last decrease were paced at the old rate: their throttles
        # are echoes of the congestion already answered, not news.
        if self._decreased_at is not None and sent_at < self._decreased_at:
            return False
        if measured is not None:
            # The average since the last throttle is the capacity only if sending was saturated
            # all along; after a quiet spell it underestimates, and the rate that just
            # overshot bounds the truth from above.
            floor = 0.0 if self.rate is None else self.rate * self.settings.decrease_factor
            self.ceiling = max(measured, floor)
        elif self.rate is not None:
            self.ceiling = min(self.rate, self.ceiling or self.rate)
        self.ceiling = max(self.ceiling or 0.0, self.settings.min_ceiling)
        self.rate = self.ceiling * self.settings.decrease_factor
        # Kinesis's own bucket is empty when it throttles: no burst until it has refilled.
        self._tokens = min(self._tokens, 0.0)
        self._updated_at = now
        self._grown_at = now
        self._decreased_at = now
        self._above_since = None
        self.decreases += 1
        return True

    def _measure(self, now: float) -> float | None:
        """Capacity from what was accepted since the last empty bucket, if long enough ago."""
        start = self._empty_at if self._empty_at is not None else self._first_accepted_at
        if start is None:
            self._empty_at = now
            return None
        if self._empty_at is not None and now - start < self.settings.min_interval_seconds:
            return None  # too short a span to average over; keep accumulating
        # Before the first throttle the span starts at the first acceptance with a full bucket
        # (Kinesis gives one second of burst), so it is at least one second long; later spans
        # start and end with an empty bucket and measure the capacity itself.
        span = now - start if self._empty_at is not None else max(now - start, 1.0)
        measured = self._accepted_since_empty / span
        self._empty_at = now
        self._accepted_since_empty = 0.0
        return measured if measured > 0 else None

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        if self._updated_at is not None and now > self._updated_at:
            burst = self.rate * self.settings.burst_seconds
            self._tokens = min(burst, self._tokens + (now - self._updated_at) * self.rate)
        if self._updated_at is None or now > self._updated_at:
            self._updated_at = now
