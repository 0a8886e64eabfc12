"""sync.push.GroupedAcks: acks grouped into fewer transactions, never an id Kinesis did not take."""

from __future__ import annotations

import pytest

from sync.push import GroupedAcks

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_acks_are_grouped_by_count_then_flushed_whole() -> None:
    committed: list[list[str]] = []
    acks = GroupedAcks(committed.append, min_records=3, max_seconds=60, clock=Clock())
    acks(["a", "b"])
    assert committed == []  # held: fewer than three
    acks(["c"])
    assert committed == [["a", "b", "c"]]
    acks(["d"])
    acks.flush()
    acks.flush()  # nothing held: no empty transaction
    assert committed == [["a", "b", "c"], ["d"]]


def test_acks_are_never_held_longer_than_max_seconds() -> None:
    clock = Clock()
    committed: list[list[str]] = []
    acks = GroupedAcks(committed.append, min_records=1000, max_seconds=1.0, clock=clock)
    acks(["a"])
    clock.now = 0.5
    acks(["b"])
    assert committed == []
    clock.now = 1.0
    acks(["c"])
    assert committed == [["a", "b", "c"]]
