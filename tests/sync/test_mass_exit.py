"""The mass-exit guard as a pure decision over a diff's counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.limits import DEFAULT_MAX_EXIT_FRACTION
from sync.mass_exit import ExitGuard, mass_exit_refusal


def refusal(members: int, exiting: int, snapshot_users: int, **guard: object) -> str | None:
    return mass_exit_refusal(
        members=members,
        exiting=exiting,
        snapshot_users=snapshot_users,
        guard=ExitGuard(**guard),  # type: ignore[arg-type]
    )


def test_the_default_refuses_more_than_half() -> None:
    assert DEFAULT_MAX_EXIT_FRACTION == 0.5
    assert refusal(100, 50, 50) is None
    message = refusal(100, 51, 49)
    assert message is not None
    assert "51 of the cohort's 100 members would exit (51.0%)" in message
    assert "more than --max-exit-fraction 0.5" in message
    assert "nothing was staged" in message
    assert "pass --allow-mass-exit, or a --max-exit-fraction of at least 0.51" in message


def test_an_empty_snapshot_is_refused_whatever_the_fraction() -> None:
    message = refusal(6, 6, 0, max_exit_fraction=1.0)
    assert message is not None
    assert "the snapshot is empty: all 6 members of the cohort would exit" in message
    assert message.endswith("pass --allow-mass-exit")
    assert refusal(6, 6, 0, allow=True) is None


@pytest.mark.parametrize(
    ("members", "exiting", "snapshot_users"),
    [(0, 0, 0), (0, 0, 10), (10, 0, 0 + 10), (1, 0, 5)],
    ids=["first-sync-empty", "first-sync", "nobody-leaves", "one-member-stays"],
)
def test_nothing_to_lose_is_never_refused(members: int, exiting: int, snapshot_users: int) -> None:
    assert refusal(members, exiting, snapshot_users, max_exit_fraction=0.0) is None


@given(
    members=st.integers(1, 10**7),
    data=st.data(),
    fraction=st.floats(0.0, 1.0),
)
def test_refused_exactly_when_the_share_is_over_the_threshold_or_all_go(
    members: int, data: st.DataObject, fraction: float
) -> None:
    exiting = data.draw(st.integers(0, members))
    entering = data.draw(st.integers(0, 10**6))
    snapshot_users = members - exiting + entering
    message = refusal(members, exiting, snapshot_users, max_exit_fraction=fraction)
    expected = exiting > 0 and (exiting / members > fraction or snapshot_users == 0)
    assert (message is not None) == expected
    # AND the override always lets it through, and the threshold it suggests would too
    assert refusal(members, exiting, snapshot_users, allow=True) is None
    if message is not None and snapshot_users > 0:
        suggested = float(message.rsplit("at least ", 1)[1])
        assert refusal(members, exiting, snapshot_users, max_exit_fraction=suggested) is None
