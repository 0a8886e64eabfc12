"""Adaptive send pacing: a token bucket whose rate is learned from Kinesis throttling.

Rates are in shard-equivalents: one unit is one shard's write budget per second (1 MiB/s or
1000 records/s, whichever a record exhausts first), so a hint is just the shard count and both
Kinesis write limits are paced by one number.

Without a hint the pacer slow-starts, as TCP does: one shard's rate (every stream has a shard),
one request in flight until the first answer, then the rate doubles while Kinesis keeps taking
everything. A throttle means a shard's bucket is empty, so what Kinesis accepted between two
throttles, divided by the time between them, is the stream's capacity; the pacer keeps that as
its ceiling and drops below it (multiplicative decrease). Successes climb back to just under the
ceiling fast, then probe above it, slowly at first and faster the longer it holds, so capacity
that grows (on-demand scaling, a wrong hint) is found again.
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
    # Growth before the first throttle, from one shard's rate: 4 shards are reached in a second.
    # Kinesis hides its limit behind its burst until the burst is gone, so the rate overshoots
    # before the first throttle; what that costs is what is in flight then, a few small requests.
    slow_start_doublings_per_second: float = 2.0
    # Before the first throttle a request may carry one shard's burst (every stream has a
    # shard), so a small push goes in a few full requests; a 5 MiB request into a one-shard
    # stream would be 80% throttled.
    slow_start_batch_limit: float = 1.0
    # What a shard lets through above its rate after a quiet spell (its bucket starts full);
    # the first throttle's measurement counts it so the burst does not inflate the ceiling.
    stream_burst_seconds: float = 1.0
    # The rate grows only while sends used this much of it over the last window (one
    # min_interval_seconds): below that the sender is the bottleneck and growth is unfounded.
    grow_above_use: float = 0.9

    def __post_init__(self) -> None:
        problems = []
        for name in ("decrease_factor", "recover_fraction", "grow_above_use"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} {getattr(self, name)}: need 0 < value <= 1")
        for name in ("probe_per_second", "recover_doublings_per_second"):
            if getattr(self, name) < 0:
                problems.append(f"{name} {getattr(self, name)}: must be >= 0")
        # Slow start that cannot grow would stay at one shard for good (nothing would throttle),
        # and the first measurement divides by at least the stream's burst.
        positive = (
            "burst_seconds",
            "min_interval_seconds",
            "min_ceiling",
            "slow_start_batch_limit",
        )
        for name in (*positive, "slow_start_doublings_per_second", "stream_burst_seconds"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} {getattr(self, name)}: must be > 0")
        if problems:
            raise ValueError("; ".join(problems))


class Pacer:
    """Token bucket over an external clock; `ceiling` None means slow start (nothing learned)."""

    def __init__(self, shards: float | None = None, settings: PacingSettings | None = None) -> None:
        if shards is not None and not shards > 0:
            raise ValueError(f"shards {shards}: must be > 0")
        self.settings = settings or PacingSettings()
        self.rate: float = self.settings.min_ceiling if shards is None else shards
        self.ceiling: float | None = shards
        self.decreases = 0
        self._tokens = self.rate * self.settings.burst_seconds
        self._answered = shards is not None  # a hint is as good as an answer: no probe needed
        # Allowance the rate earned and what was spent of it, over the current window; whether
        # the last full window was spent (the rate, not the sender, set the pace).
        self._window_started: float | None = None
        self._earned = 0.0
        self._spent = 0.0
        self._rate_bound = True
        self._updated_at: float | None = None
        self._grown_at: float | None = None
        self._decreased_at: float | None = None
        self._above_since: float | None = None
        self._first_sent_at: float | None = None
        self._empty_at: float | None = None  # last throttle seen: a bucket was empty then
        self._slow_start_accepted: list[tuple[float, float]] = []  # (when, cost) until a ceiling
        self._accepted_since_empty = 0.0

    def delay(self, now: float) -> float:
        """Seconds until the next request may be sent; 0 while out of debt."""
        self._refill(now)
        # A sliver of debt left by float rounding must not make a caller sleep for nothing.
        return 0.0 if self._tokens >= -_EPSILON else -self._tokens / self.rate

    def max_in_flight(self) -> int | None:
        """Requests that may be in flight at once; None leaves it to the caller's senders."""
        # Until Kinesis has answered once, one request probes the stream: if it is throttled,
        # or refused outright, there are no others in flight to share its fate.
        return None if self._answered else 1

    def batch_limit(self) -> float:
        """The most cost one request should carry, so requests spread over time."""
        paced = self.rate * self.settings.burst_seconds
        return max(paced, self.settings.slow_start_batch_limit) if self.ceiling is None else paced

    def spend(self, cost: float, now: float) -> None:
        """Charge a request about to be sent; the balance may go into debt."""
        if self._first_sent_at is None:
            self._first_sent_at = now
        self._refill(now)
        self._tokens -= cost
        self._spent += cost

    def accepted(self, cost: float, now: float) -> None:
        """Record what Kinesis took from one response, and grow the rate while it keeps taking."""
        self._answered = True
        self._accepted_since_empty += cost
        if self.ceiling is None:
            self._slow_start_accepted.append((now, cost))
        if self._grown_at is None or now <= self._grown_at:
            self._grown_at = now
            return
        # Growth is capped per update so a long idle spell does not license a storm.
        elapsed = min(now - self._grown_at, self.settings.min_interval_seconds)
        self._grown_at = now
        self._refill(now)
        knee = None if self.ceiling is None else self.ceiling * self.settings.recover_fraction
        if knee is not None and self.rate < knee:
            # Back towards a capacity already measured: no need for the sender to prove it.
            grown = self.rate * 2 ** (self.settings.recover_doublings_per_second * elapsed)
            self.rate = min(grown, knee)
            self._above_since = None
        elif not self._rate_bound:
            # The sender, not the rate, set the pace (a busy CPU, too few senders, a slow
            # producer): that Kinesis took it says nothing about a higher rate, and a rate left
            # to drift up unchecked releases a storm once the sender catches up.
            self._above_since = None
        elif knee is None:
            self.rate *= 2 ** (self.settings.slow_start_doublings_per_second * elapsed)
        else:
            # The probe speeds up the longer the ceiling holds: a ceiling measured while little
            # was being sent (a throttle fault early on) must not pin the rate for minutes.
            if self._above_since is None:
                self._above_since = now
            speedup = 2 ** (now - self._above_since)
            self.rate *= (1 + self.settings.probe_per_second * speedup) ** elapsed

    def throttled(self, sent_at: float, now: float) -> bool:
        """React to a throttle of a request sent at `sent_at`; True if the rate was lowered."""
        self._answered = True
        measured = self._measure(now)
        # Requests sent before the last decrease were paced at the old rate: their throttles
        # are echoes of the congestion already answered, not news.
        if self._decreased_at is not None and sent_at < self._decreased_at:
            return False
        if measured is not None and self.ceiling is None:
            # Slow start's rate grew on no evidence and overshot while the burst lasted; only
            # what was accepted says anything about the capacity.
            self.ceiling = measured
        elif measured is not None:
            # The average since the last throttle is the capacity only if sending was saturated
            # all along; after a quiet spell it underestimates, and the rate that just
            # overshot bounds the truth from above.
            self.ceiling = max(measured, self.rate * self.settings.decrease_factor)
        else:
            self.ceiling = min(self.rate, self.ceiling or self.rate)
        self.ceiling = max(self.ceiling, self.settings.min_ceiling)
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
        if self._empty_at is not None:
            span = now - self._empty_at
            if span < self.settings.min_interval_seconds:
                return None  # too short a span to average over; keep accumulating
            measured = self._accepted_since_empty / span
        elif self._first_sent_at is not None:
            measured = self._first_measure(self._first_sent_at, now)
        else:
            measured = 0.0
        self._empty_at = now
        self._accepted_since_empty = 0.0
        return measured if measured > 0 else None

    def _first_measure(self, first_sent_at: float, now: float) -> float:
        """Capacity at the first throttle, from the acceptances since the first send.

        A bucket that was last full at t and is empty now let through at most capacity x
        (now - t + burst), so every start t gives a lower bound on the capacity, and the last
        moment it was full gives the capacity itself. That moment is unknown: while slow start
        ran below capacity the bucket sat full and its refill was lost, which would drag an
        average from the first send well below the truth. The largest bound is the estimate.
        """
        burst = self.settings.stream_burst_seconds
        total = sum(cost for _, cost in self._slow_start_accepted)
        best = total / (now - first_sent_at + burst)
        later = total
        for at, cost in self._slow_start_accepted:
            later -= cost  # what was accepted after `at`
            best = max(best, later / (now - at + burst))
        self._slow_start_accepted.clear()
        return best

    def _refill(self, now: float) -> None:
        if self._window_started is None:
            self._window_started = now
        elif now - self._window_started >= self.settings.min_interval_seconds:
            self._rate_bound = self._spent >= self.settings.grow_above_use * self._earned
            self._window_started, self._earned, self._spent = now, 0.0, 0.0
        if self._updated_at is not None and now > self._updated_at:
            self._earned += (now - self._updated_at) * self.rate
            burst = self.rate * self.settings.burst_seconds
            self._tokens = min(burst, self._tokens + (now - self._updated_at) * self.rate)
        if self._updated_at is None or now > self._updated_at:
            self._updated_at = now
