"""The Lambda consumer's membership items: built from a message, checked against DynamoDB's limits.

Pure functions over plain data. A user whose item DynamoDB would refuse (a sort key over 1,024
bytes, an item over 400 KB) is found here before any write, so the handler keeps it as poison on
its own and applies the rest of the message: DynamoDB's ValidationException would otherwise fail
the record on every retry and block the shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sync.contract import CohortMessage, User, first_listings
from sync.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    DYNAMODB_MAX_NUMBER_BYTES,
    DYNAMODB_MAX_PARTITION_KEY_BYTES,
    DYNAMODB_MAX_SORT_KEY_BYTES,
)
from sync.membership import tiebreak_of

Item = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class UserItem:
    """One user's item, or why DynamoDB would refuse it (then `item` is None)."""

    index: int  # the user's position in the message
    user_id: str
    item: Item | None
    problem: str | None = None


def computed_number(message: CohortMessage) -> str:
    """`computed_time` as DynamoDB's number text (no leading zeros)."""
    return message.computed_time.lstrip("0") or "0"


def item_bytes(item: Item) -> int:
    """An item's size as DynamoDB counts it: names plus values (numbers at their 21-byte bound)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        (kind, content), *_ = value.items()
        if kind == "S":
            total += len(content.encode())
        elif kind == "N":
            total += DYNAMODB_MAX_NUMBER_BYTES
        else:  # BOOL
            total += 1
    return total


def items_of(message: CohortMessage) -> Iterator[UserItem]:
    """Each user's item in message order (first listings only), or the DynamoDB limit it breaks."""
    computed = computed_number(message)
    tiebreak = tiebreak_of(message.in_cohort, message.message_id)
    pk_bytes = len(message.cohort_id.encode())
    for index, user in first_listings(message.users):
        item = _item(message, user, computed, tiebreak)
        sk_bytes = len(user.user_id.encode())
        problem = None
        if pk_bytes > DYNAMODB_MAX_PARTITION_KEY_BYTES:
            problem = (
                f"cohort_id ({pk_bytes:,} bytes): DynamoDB's partition key is at most "
                f"{DYNAMODB_MAX_PARTITION_KEY_BYTES:,} bytes"
            )
        elif sk_bytes > DYNAMODB_MAX_SORT_KEY_BYTES:
            problem = (
                f"users[{index}] user_id ({sk_bytes:,} bytes): DynamoDB's sort key is at most "
                f"{DYNAMODB_MAX_SORT_KEY_BYTES:,} bytes"
            )
        elif (size := item_bytes(item)) > DYNAMODB_MAX_ITEM_BYTES:
            problem = (
                f"users[{index}] item ({size:,} bytes with its user_properties): DynamoDB's item"
                f" is at most {DYNAMODB_MAX_ITEM_BYTES:,} bytes"
            )
        yield UserItem(index, user.user_id, None if problem else item, problem)


def _item(message: CohortMessage, user: User, computed: str, tiebreak: str) -> Item:
    item: Item = {
        "pk": {"S": message.cohort_id},
        "sk": {"S": user.user_id},
        "in_cohort": {"BOOL": message.in_cohort},
        "computed_time": {"N": computed},
        "tiebreak": {"S": tiebreak},
        "message_id": {"S": message.message_id},
        "cohort_name": {"S": message.cohort_name},
    }
    if user.user_properties is not None:
        props = json.dumps(user.user_properties, ensure_ascii=False, separators=(",", ":"))
        item["user_properties"] = {"S": props}
    return item
