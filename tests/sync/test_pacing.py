"""sync.pacing: the pacer learns capacity from throttles and paces to it, on a fake clock."""

from __future__ import annotations

import pytest

from sandbox.throughput import ShardWriteBudget
from sync.limits import SHARD_WRITE_BYTES_PER_SECOND
from sync.pacing import Pacer, PacingSettings, record_cost

pytestmark = pytest.mark.unit

KIB = 1024


@pytest.mark.parametrize(
    ("size", "cost"),
    [(SHARD_WRITE_BYTES_PER_SECOND, 1.0), (100 * KIB, 100 / 1024), (10, 0.001)],
    ids=["a MiB is a shard-second", "bytes bound", "records bound"],
)
def test_record_cost_is_the_tighter_of_the_two_shard_limits(size: int, cost: float) -> None:
    assert record_cost(size) == pytest.approx(cost)


def test_without_a_hint_one_request_probes_at_one_shard_until_the_first_answer() -> None:
    pacer = Pacer()
    # One request in flight, at one shard's rate (every stream has a shard)...
    assert pacer.max_in_flight() == 1
    assert pacer.rate == 1.0
    # ...carrying up to one shard's burst, so a small push still goes in a few full requests.
    assert pacer.batch_limit() == 1.0
    pacer.spend(0.5, now=0.0)
    assert pacer.delay(now=0.0) == pytest.approx(0.4)
    # Once Kinesis answers, the caller's senders set the concurrency.
    pacer.accepted(0.5, now=0.1)
    assert pacer.max_in_flight() is None


def test_a_hint_needs_no_probe() -> None:
    assert Pacer(shards=2).max_in_flight() is None


def test_a_throttle_is_an_answer_too() -> None:
    pacer = Pacer()
    pacer.spend(0.1, now=0.0)
    pacer.throttled(sent_at=0.0, now=0.1)
    assert pacer.max_in_flight() is None


def saturate(pacer: Pacer, start: float, stop: float, step: float = 0.01) -> float:
    """Spend whatever the pacer allows and have all of it accepted, like a sender that keeps up."""
    now = start
    while now < stop:
        cost = pacer.rate * step
        pacer.spend(cost, now)
        now += step
        pacer.accepted(cost, now)
    return now


def test_slow_start_doubles_the_rate_while_the_sender_keeps_up() -> None:
    # GIVEN no hint and a sender that uses all the rate allows
    pacer = Pacer(settings=PacingSettings(slow_start_doublings_per_second=2.0))
    # WHEN Kinesis takes everything for 1.5 s
    saturate(pacer, 0.0, 1.5)
    # THEN the rate has doubled about twice a second (the first window is the first second)
    assert 2**2.5 < pacer.rate < 2**3.5
    assert pacer.ceiling is None


def test_slow_start_does_not_grow_while_the_sender_is_the_bottleneck() -> None:
    # GIVEN a sender that uses only half of the one-shard start rate
    pacer = Pacer()
    now = 0.0
    for _ in range(300):
        pacer.spend(0.005, now)
        now += 0.01
        pacer.accepted(0.005, now)
    # THEN after its first window the rate stops growing: Kinesis taking half a shard's worth
    # says nothing about a higher rate.
    assert pacer.rate < 2**2.5


def test_first_throttle_measures_capacity_from_the_last_full_bucket() -> None:
    # GIVEN a 4-shard stream that slow start reached only after 1 s at one shard (its bucket
    # sat full and lost that refill), then 2 s at 6 shards: 4 x (2 + 1 burst) = 12 accepted
    pacer = Pacer()
    pacer.spend(1.0, now=0.0)
    pacer.accepted(1.0, now=1.0)
    for step in range(1, 21):
        pacer.accepted(0.6, now=1.0 + step * 0.1)
    # WHEN the first throttle arrives at t=3
    assert pacer.throttled(sent_at=2.9, now=3.0)
    # THEN the ceiling is what the bucket let through since it was last full, 12 / (2 + 1):
    # averaging from the first send, 13 / (3 + 1), would take 3.25 shards for 4
    assert pacer.ceiling == pytest.approx(4.0)
    assert pacer.rate == pytest.approx(3.6)


def test_a_hint_paces_to_the_shard_count() -> None:
    # GIVEN a 2-shard hint
    pacer = Pacer(shards=2)
    # WHEN 0.5 shard-seconds are spent at t=0
    pacer.spend(0.5, now=0.0)
    # THEN the debt (0.5 - 0.2 burst) is paid back at 2 shard-seconds per second
    assert pacer.delay(now=0.0) == pytest.approx(0.15)
    assert pacer.delay(now=0.15) == 0.0
    assert pacer.batch_limit() == pytest.approx(0.2)


def test_throttles_of_requests_sent_before_a_decrease_are_echoes() -> None:
    pacer = Pacer(shards=4)
    assert pacer.throttled(sent_at=0.5, now=1.0)
    rate = pacer.rate
    # Sent before the decrease: already answered.
    assert not pacer.throttled(sent_at=0.9, now=1.1)
    assert pacer.rate == rate
    assert pacer.decreases == 1
    # Sent after it: news.
    assert pacer.throttled(sent_at=1.05, now=1.2)
    assert pacer.decreases == 2


def test_ceiling_is_never_below_one_shard() -> None:
    pacer = Pacer()
    pacer.accepted(0.01, now=0.0)
    pacer.throttled(sent_at=0.0, now=0.0)
    assert pacer.ceiling == 1.0
    assert pacer.rate == pytest.approx(0.9)


def test_recovers_quickly_to_just_below_the_ceiling_then_probes_slowly() -> None:
    # GIVEN a pacer that learned a ceiling of 2 shards and dropped to 1.8
    pacer = Pacer(shards=2)
    pacer.throttled(sent_at=0.0, now=0.0)
    assert pacer.rate == pytest.approx(1.8)
    # WHEN an acceptance comes 0.1 s later
    pacer.accepted(0.1, now=0.1)
    # THEN the rate is back at 97% of the ceiling, no higher
    assert pacer.rate == pytest.approx(2 * 0.97)
    # AND a second later it has only probed a few percent above that
    for step in range(2, 12):
        pacer.accepted(0.1, now=step * 0.1)
    assert pacer.rate is not None
    assert 2 * 0.97 < pacer.rate < 2 * 1.05


def test_a_ceiling_that_holds_is_probed_ever_faster() -> None:
    # A ceiling learned from a small sample must not pin the rate: growth doubles every second.
    pacer = Pacer(shards=1)
    saturate(pacer, 0.0, 10.0)
    assert pacer.rate > 10


def test_a_throttle_spends_the_burst() -> None:
    pacer = Pacer(shards=1)
    pacer.throttled(sent_at=0.0, now=0.0)
    pacer.spend(0.09, now=0.0)
    # No burst allowance left: the 0.09 shard-seconds take 0.1 s at 0.9 shards.
    assert pacer.delay(now=0.0) == pytest.approx(0.1)


def test_idle_time_earns_at_most_one_burst() -> None:
    pacer = Pacer(shards=1)
    pacer.spend(0.0, now=0.0)
    pacer.spend(0.5, now=100.0)
    assert pacer.delay(now=100.0) == pytest.approx(0.4)


def test_learns_a_simulated_shard_to_within_a_few_percent() -> None:
    # GIVEN one modelled shard (sandbox.throughput's budget), 10 KiB records, 5 ms round trips
    shard = ShardWriteBudget()
    pacer = Pacer()
    size = 10 * KIB
    now, sent_bytes, throttled, attempts = 0.0, 0, 0, 0
    # WHEN a sender sends for 60 s, as fast as the pacer allows
    while now < 60.0:
        now += pacer.delay(now)
        count = max(1, int(pacer.batch_limit() / record_cost(size)))
        pacer.spend(count * record_cost(size), now)
        sent_at, now = now, now + 0.005
        accepted = sum(shard.try_write(size, now) for _ in range(count))
        attempts += count
        throttled += count - accepted
        sent_bytes += accepted * size
        if accepted:
            pacer.accepted(accepted * record_cost(size), now)
        if accepted < count:
            pacer.throttled(sent_at, now)
    # THEN it delivered over 90% of the shard's capacity with under 5% of tries throttled
    assert sent_bytes / (now + 1.0) / SHARD_WRITE_BYTES_PER_SECOND > 0.90
    assert throttled / attempts < 0.05
    assert pacer.ceiling == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"decrease_factor": 1.5}, "decrease_factor 1.5: need 0 < value <= 1"),
        ({"burst_seconds": 0}, "burst_seconds 0: must be > 0"),
        ({"probe_per_second": -1}, "probe_per_second -1: must be >= 0"),
    ],
)
def test_invalid_settings_name_the_value_and_rule(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PacingSettings(**settings)


def test_a_hint_must_be_positive() -> None:
    with pytest.raises(ValueError, match="shards 0: must be > 0"):
        Pacer(shards=0)
