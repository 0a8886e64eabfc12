"""The mass-exit guard: a pure decision over a diff's counts, before anything is staged.

A truncated or empty export looks exactly like a cohort whose members all left; sending it would
empty the cohort downstream. Directory sync tools guard this the same way (Microsoft Entra's
accidental-deletion threshold, Backstage's `rejectRemovalsAbovePercentage`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sync.limits import DEFAULT_MAX_EXIT_FRACTION


@dataclass(frozen=True)
class ExitGuard:
    """How many of a cohort's members one push may remove: a share, or any with `allow`."""

    max_exit_fraction: float = DEFAULT_MAX_EXIT_FRACTION
    allow: bool = False


def mass_exit_refusal(
    *, members: int, exiting: int, snapshot_users: int, guard: ExitGuard
) -> str | None:
    """Why the push must be refused (None when it may go): more than the allowed share of
    `members` exiting, or an empty snapshot for a cohort that has members."""
    if guard.allow or members == 0 or exiting == 0:
        return None
    share = exiting / members
    if snapshot_users == 0:
        reason = f"the snapshot is empty: all {members:,} members of the cohort would exit"
        override = "--allow-mass-exit"
    elif share > guard.max_exit_fraction:
        reason = (
            f"{exiting:,} of the cohort's {members:,} members would exit ({share:.1%}), more "
            f"than --max-exit-fraction {guard.max_exit_fraction:g}"
        )
        override = "--allow-mass-exit, or a --max-exit-fraction of at least " + _ceil(share)
    else:
        return None
    return (
        f"mass exit refused: {reason}. A truncated or empty export looks exactly like this; "
        f"nothing was staged. If the exits are real, pass {override}"
    )


def _ceil(share: float) -> str:
    """`share` rounded up to two decimals, so passing it as the threshold lets the push go."""
    return f"{min(1.0, math.ceil(share * 100) / 100):.2f}"
