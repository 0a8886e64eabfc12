"""DynamoDB's limits, which moto lacks: per-call latency, partition and table write throughput,
item and key sizes. Put on a boto3 client with botocore's event hooks, or run on a virtual clock.

Figures (AWS documentation, ../shared/reference/FACTS.md "Limits the consumer lives with"):
- latency: "single-digit milliseconds" per call; modelled as a fixed `latency_seconds` (5 ms).
- each partition serves at most 1,000 write units per second ("hot partitions" page); beyond it
  requests fail with ProvisionedThroughputExceededException, ThrottlingReasons
  `TableWriteKeyRangeThroughputExceeded` (API reference, ThrottlingReason: Table + Write +
  KeyRangeThroughputExceeded), in both capacity modes.
- a new on-demand table starts with a warm throughput of 4,000 write units per second ("warm
  throughput" page): the table's write bucket, throttled with the same reason (it is its
  partitions that refuse).
- one write unit per item write of up to 1 KB; a conditional write whose condition fails still
  consumes write units (counted here, `consumed_units`).
- item at most 400 KB, partition key at most 2,048 bytes, sort key at most 1,024 bytes
  (`sync.limits`, which the handler checks before writing): ValidationException, as DynamoDB.

Not modelled: split-for-heat (one partition key value stays one partition: the pessimistic case),
burst capacity beyond one second of unused throughput, reads' limits, adaptive capacity.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from unittest import mock

import boto3

from sync.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    DYNAMODB_MAX_PARTITION_KEY_BYTES,
    DYNAMODB_MAX_SORT_KEY_BYTES,
)
from sync.membership_items import item_bytes

DEFAULT_LATENCY_SECONDS: Final = 0.005
PARTITION_WRITE_UNITS_PER_SECOND: Final = 1000.0
NEW_ON_DEMAND_TABLE_WRITE_UNITS_PER_SECOND: Final = 4000.0
WRITE_UNIT_BYTES: Final = 1024
THROTTLED_CODE: Final = "ProvisionedThroughputExceededException"
KEY_RANGE_REASON: Final = "TableWriteKeyRangeThroughputExceeded"
_WRITES: Final = ("PutItem", "UpdateItem", "DeleteItem")


@dataclass(frozen=True)
class DynamoDBLimits:
    """What the model enforces; every figure can be changed (tests make limits small)."""

    latency_seconds: float = DEFAULT_LATENCY_SECONDS
    partition_write_units_per_second: float = PARTITION_WRITE_UNITS_PER_SECOND
    table_write_units_per_second: float = NEW_ON_DEMAND_TABLE_WRITE_UNITS_PER_SECOND


class _Bucket:
    """A token bucket holding at most one second of throughput."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)


@dataclass
class WriteThroughput:
    """Per-partition and per-table write buckets; `admit` takes units or says why not."""

    limits: DynamoDBLimits
    consumed_units: int = 0
    throttled: int = 0
    _table: _Bucket | None = None
    _partitions: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, partition_key: str, units: int, now: float) -> str | None:
        """Consume `units` for a write to `partition_key` at `now`; the throttling reason if not."""
        with self._lock:
            table = self._table or _Bucket(self.limits.table_write_units_per_second, now)
            self._table = table
            partition = self._partitions.setdefault(
                partition_key, _Bucket(self.limits.partition_write_units_per_second, now)
            )
            table.refill(now)
            partition.refill(now)
            if partition.tokens < units or table.tokens < units:
                self.throttled += 1
                return KEY_RANGE_REASON
            partition.tokens -= units
            table.tokens -= units
            self.consumed_units += units
            return None

    def partitions(self) -> int:
        """How many partition key values were written."""
        return len(self._partitions)


def write_units(item: Mapping[str, Any]) -> int:
    """Write units one write of this item consumes: one per started KB (at least one)."""
    return max(1, math.ceil(item_bytes(dict(item)) / WRITE_UNIT_BYTES))


def size_problem(item: Mapping[str, Any], key_names: tuple[str, str]) -> str | None:
    """DynamoDB's ValidationException message for an item over its limits, or None."""
    hash_name, range_name = key_names
    if len(str(item[hash_name]["S"]).encode()) > DYNAMODB_MAX_PARTITION_KEY_BYTES:
        return (
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum"
            f" size limit of {DYNAMODB_MAX_PARTITION_KEY_BYTES} bytes"
        )
    if len(str(item[range_name]["S"]).encode()) > DYNAMODB_MAX_SORT_KEY_BYTES:
        return (
            "One or more parameter values were invalid: Aggregated size of all range keys has"
            f" exceeded the size limit of {DYNAMODB_MAX_SORT_KEY_BYTES} bytes"
        )
    if item_bytes(dict(item)) > DYNAMODB_MAX_ITEM_BYTES:
        return "Item size has exceeded the maximum allowed size"
    return None


class _Response:
    """Enough of an HTTP response for botocore to raise the error it carries."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


@dataclass
class LimitedTable:
    """The limits of one table (pk/sk keys) put on boto3 DynamoDB clients through event hooks."""

    table_name: str
    limits: DynamoDBLimits = field(default_factory=DynamoDBLimits)
    key_names: tuple[str, str] = ("pk", "sk")
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    throughput: WriteThroughput = field(init=False)
    calls: int = 0

    def __post_init__(self) -> None:
        self.throughput = WriteThroughput(self.limits)

    def attach(self, client: Any) -> Any:
        """Make every call of this client wait the latency, and this table's writes obey limits."""
        client.meta.events.register("before-call.dynamodb", self._before_call)
        return client

    def _before_call(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        self.calls += 1
        if self.limits.latency_seconds:
            self.sleep(self.limits.latency_seconds)
        if model.name not in _WRITES:
            return None
        request = json.loads(params.get("body") or b"{}")  # DynamoDB's JSON protocol body
        if request.get("TableName") != self.table_name:
            return None
        item = request.get("Item") or request.get("Key") or {}
        problem = size_problem(item, self.key_names) if "Item" in request else None
        if problem is not None:
            return _Response(400), {"Error": {"Code": "ValidationException", "Message": problem}}
        reason = self.throughput.admit(
            str(item[self.key_names[0]]["S"]), write_units(item), self.clock()
        )
        if reason is None:
            return None
        arn = f"arn:aws:dynamodb:::table/{self.table_name}"
        return _Response(400), {
            "Error": {"Code": THROTTLED_CODE, "Message": "Throughput exceeds the current capacity"},
            "ThrottlingReasons": [{"reason": reason, "resource": arn}],
        }

    @contextmanager
    def on_new_clients(self) -> Iterator[None]:
        """Attach to every DynamoDB client `boto3.client` makes meanwhile (the handler's own)."""
        real = boto3.client

        def client(service: str, *args: Any, **kwargs: Any) -> Any:
            made = real(service, *args, **kwargs)
            return self.attach(made) if service == "dynamodb" else made

        with mock.patch.object(boto3, "client", client):
            yield
