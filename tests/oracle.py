"""Test oracles: membership's last-writer-wins rule applied in memory, and what a policy grants.

The consumer, the Lambda handler and the SQLite store are checked against the first (fed by
`random_messages`, the one generator of their inputs); generated
policies against Amplitude's template with the second. They live here because no product or
program code uses them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from sync.contract import CohortMessage, User
from sync.membership import Member, MemberState, Version, tiebreak_of

MembershipMap = MutableMapping[tuple[str, str], MemberState]


def version_of(message: CohortMessage) -> Version:
    """The version every user update in this message carries."""
    return Version(int(message.computed_time), tiebreak_of(message.in_cohort, message.message_id))


def apply_message(state: MembershipMap, message: CohortMessage) -> int:
    """Apply one message to an in-memory membership; return how many users it changed."""
    version = version_of(message)
    changed = 0
    for user in message.users:
        key = (message.cohort_id, user.user_id)
        current = state.get(key)
        if current is None or current.version < version:
            state[key] = MemberState(
                message.cohort_name, message.in_cohort, version, user.user_properties
            )
            changed += 1
    return changed


def membership_after(messages: Iterable[CohortMessage]) -> dict[tuple[str, str], MemberState]:
    """The membership that applying every message gives (in any order: that is the rule)."""
    state: dict[tuple[str, str], MemberState] = {}
    for message in messages:
        apply_message(state, message)
    return state


def states_of_items(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], MemberState]:
    """The membership the Lambda consumer's DynamoDB items hold, read without its code."""
    return {
        (i["pk"]["S"], i["sk"]["S"]): MemberState(
            i["cohort_name"]["S"],
            i["in_cohort"]["BOOL"],
            Version(int(i["computed_time"]["N"]), i["tiebreak"]["S"]),
            json.loads(i["user_properties"]["S"]) if "user_properties" in i else None,
        )
        for i in items
    }


def random_messages(
    count: int,
    seed: int = 1,
    *,
    cohort_name: str = "Churn risk",
    user_pool: int = 8,
    users_per_message: int = 3,
    time_spread: int | None = None,
) -> list[CohortMessage]:
    """Messages over two cohorts with overlapping users, entering and exiting, and ties.

    `computed_time` is drawn from `time_spread` seconds (half of `count` by default), so some
    messages share one and the tiebreak decides; users come from a pool of `user_pool`.
    """
    rng = random.Random(seed)
    spread = count // 2 + 1 if time_spread is None else time_spread
    return [
        CohortMessage(
            cohort_name=cohort_name,
            cohort_id=rng.choice(["c1", "c2"]),
            in_cohort=rng.random() < 0.6,
            computed_time=str(1_700_000_000 + rng.randrange(spread)),
            message_id=f"msg:{i}",
            users=tuple(
                User(f"u{rng.randrange(user_pool)}", {"i": i} if rng.random() < 0.5 else None)
                for _ in range(users_per_message)
            ),
        )
        for i in range(count)
    ]


def members_of(state: Mapping[tuple[str, str], MemberState], cohort_id: str) -> list[Member]:
    """Current members of one cohort in an in-memory membership, ordered by user_id."""
    return [
        Member(user_id, member.user_properties)
        for (cohort, user_id), member in sorted(state.items())
        if cohort == cohort_id and member.in_cohort
    ]


def actions_and_resources(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) pair a policy's Allow statements grant, for comparing documents."""
    pairs: set[tuple[str, str]] = set()
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            for resource in [resources] if isinstance(resources, str) else resources:
                pairs.add((action, resource))
    return pairs
