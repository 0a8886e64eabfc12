"""The Lambda consumer's membership items: built from a message, checked against DynamoDB's limits,
and read back as a cohort's members.

Key design (chosen by `sandbox.consumer_model`, see bench/README.md): a cohort's users are spread
over WRITE_SHARDS partition keys, `pk` = "<cohort_id>#<n>" with n = CRC-32 of the user_id (UTF-8)
modulo WRITE_SHARDS, `sk` = user_id. One key per cohort would cap a cohort's writes at one
partition's 1,000 write units per second (a 1M-user first sync: over 16 minutes); ten keys let
a new on-demand table's 4,000 write units per second be the limit (about 250 s). Reading a cohort
is one query per key, merged by user_id (`members`).

Item building is pure. A user whose item DynamoDB would refuse (a sort key over 1,024
bytes, an item over 400 KB) is found here before any write, so the handler keeps it as poison on
its own and applies the rest of the message: DynamoDB's ValidationException would otherwise fail
the record on every retry and block the shard.
"""

from __future__ import annotations

import heapq
import json
import zlib
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
from sync.membership import Member, tiebreak_of

Item = dict[str, dict[str, Any]]
WRITE_SHARDS = 10
_SEPARATOR = "#"


def partition_key(cohort_id: str, user_id: str) -> str:
    """The `pk` of a user's item: the cohort id and the user's write shard."""
    shard = zlib.crc32(user_id.encode("utf-8", "surrogatepass")) % WRITE_SHARDS
    return f"{cohort_id}{_SEPARATOR}{shard}"


def partition_keys(cohort_id: str) -> list[str]:
    """Every `pk` a cohort's items may have."""
    return [f"{cohort_id}{_SEPARATOR}{shard}" for shard in range(WRITE_SHARDS)]


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
    for index, user in first_listings(message.users):
        item = _item(message, user, computed, tiebreak)
        pk_bytes = len(item["pk"]["S"].encode())
        sk_bytes = len(user.user_id.encode())
        problem = None
        if pk_bytes > DYNAMODB_MAX_PARTITION_KEY_BYTES:
            problem = (
                f"cohort_id ({pk_bytes:,} bytes with its shard): DynamoDB's partition key is at"
                f" most {DYNAMODB_MAX_PARTITION_KEY_BYTES:,} bytes"
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
        "pk": {"S": partition_key(message.cohort_id, user.user_id)},
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


def members(dynamodb: Any, table_name: str, cohort_id: str) -> Iterator[Member]:
    """Current members of one cohort in the Lambda consumer's table, ordered by user_id."""
    streams = [_query(dynamodb, table_name, pk) for pk in partition_keys(cohort_id)]
    for item in heapq.merge(*streams, key=lambda item: item["sk"]["S"]):
        props = item.get("user_properties")
        yield Member(item["sk"]["S"], None if props is None else json.loads(props["S"]))


def knows_cohort(dynamodb: Any, table_name: str, cohort_id: str) -> bool:
    """True when any item of the cohort exists (its members may all have left)."""
    return any(
        dynamodb.query(
            TableName=table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            Limit=1,
        )["Items"]
        for pk in partition_keys(cohort_id)
    )


def _query(dynamodb: Any, table_name: str, pk: str) -> Iterator[Item]:
    """One key's items with in_cohort true, by sk (DynamoDB returns them sorted)."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table_name,
        KeyConditionExpression="pk = :pk",
        FilterExpression="in_cohort = :t",
        ExpressionAttributeValues={":pk": {"S": pk}, ":t": {"BOOL": True}},
    )
    for page in pages:
        yield from page["Items"]
