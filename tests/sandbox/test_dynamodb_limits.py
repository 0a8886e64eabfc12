"""DynamoDB's limits in the sandbox: partition and table buckets, AWS's errors, write units."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox.dynamodb_limits import (
    KEY_RANGE_REASON,
    NEW_ON_DEMAND_TABLE_WRITE_UNITS_PER_SECOND,
    PARTITION_WRITE_UNITS_PER_SECOND,
    DynamoDBLimits,
    LimitedTable,
    WriteThroughput,
    write_units,
)
from tests.sync.test_lambda_handler import create_membership_table

TABLE = "membership"


def test_one_partition_key_takes_1000_write_units_a_second() -> None:
    buckets = WriteThroughput(DynamoDBLimits())
    # WHEN one key gets 1,001 writes at once, then more half a second later
    verdicts = [buckets.admit("c#0", 1, 0.0) for _ in range(1001)]
    later = [buckets.admit("c#0", 1, 0.5) for _ in range(501)]
    # THEN 1,000 pass, the next is throttled for the key range; 500 refill in half a second
    assert PARTITION_WRITE_UNITS_PER_SECOND == 1000
    assert verdicts.count(None) == 1000 and verdicts[-1] == KEY_RANGE_REASON
    assert later.count(None) == 500
    assert (buckets.consumed_units, buckets.throttled) == (1500, 2)


def test_a_new_on_demand_table_takes_4000_write_units_a_second_over_all_keys() -> None:
    buckets = WriteThroughput(DynamoDBLimits())
    verdicts = [buckets.admit(f"c#{n % 10}", 1, 0.0) for n in range(5000)]
    assert NEW_ON_DEMAND_TABLE_WRITE_UNITS_PER_SECOND == 4000
    assert verdicts.count(None) == 4000 and buckets.partitions() == 10


@pytest.mark.parametrize(("value_bytes", "units"), [(10, 1), (1000, 1), (1020, 2), (2100, 3)])
def test_a_write_costs_one_unit_per_started_kilobyte(value_bytes: int, units: int) -> None:
    item = {"pk": {"S": "c#1"}, "sk": {"S": "u"}, "v": {"S": "x" * value_bytes}}
    assert write_units(item) == units


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_membership_table(dynamodb, TABLE)
        yield dynamodb


def test_throttled_writes_fail_with_aws_code_and_reason(client: Any) -> None:
    now = [0.0]
    waits: list[float] = []
    limits = DynamoDBLimits(latency_seconds=0.005, partition_write_units_per_second=2)
    table = LimitedTable(TABLE, limits, clock=lambda: now[0], sleep=waits.append)
    table.attach(client)
    item = {"pk": {"S": "c#0"}, "sk": {"S": "u"}}
    # WHEN a key gets three writes in the same instant
    client.put_item(TableName=TABLE, Item=item)
    client.put_item(TableName=TABLE, Item=item)
    with pytest.raises(ClientError) as caught:
        client.put_item(TableName=TABLE, Item=item)
    # THEN the third is refused as AWS refuses it; every call waited the latency
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert caught.value.response["ThrottlingReasons"][0]["reason"] == KEY_RANGE_REASON
    assert waits == [0.005] * 3
    # AND a second later the key takes writes again
    now[0] = 1.0
    client.put_item(TableName=TABLE, Item=item)


def test_a_failed_condition_still_consumes_write_units(client: Any) -> None:
    table = LimitedTable(TABLE, DynamoDBLimits(latency_seconds=0.0))
    table.attach(client)
    item = {"pk": {"S": "c#0"}, "sk": {"S": "u"}}
    client.put_item(TableName=TABLE, Item=item)
    with pytest.raises(ClientError):
        client.put_item(TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(pk)")
    assert table.throughput.consumed_units == 2


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"pk": {"S": "c#0"}, "sk": {"S": "x" * 1025}},
            "Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
        ),
        (
            {"pk": {"S": "c" * 2049}, "sk": {"S": "u"}},
            "Size of hashkey has exceeded the maximum size limit of 2048 bytes",
        ),
        (
            {"pk": {"S": "c#0"}, "sk": {"S": "u"}, "p": {"S": "y" * 409_600}},
            "Item size has exceeded the maximum allowed size",
        ),
    ],
)
def test_items_over_dynamodbs_limits_are_refused(
    client: Any, item: dict[str, Any], message: str
) -> None:
    LimitedTable(TABLE, DynamoDBLimits(latency_seconds=0.0)).attach(client)
    with pytest.raises(ClientError) as caught:
        client.put_item(TableName=TABLE, Item=item)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]
