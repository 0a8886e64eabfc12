"""The Lambda consumer on events built from records read out of moto, writing to moto DynamoDB."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sync import lambda_handler
from sync.contract import CohortMessage, User, encode
from sync.errors import ConsumerError
from sync.lambda_handler import Handler, build_handler
from sync.membership import MemberState
from tests.oracle import membership_after as expected
from tests.oracle import random_messages, states_of_items

pytestmark = pytest.mark.integration

REGION = "us-east-1"
STREAM = "cohorts"
MEMBERSHIP = "membership"
IDEMPOTENCY = "idempotency"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """A one-shard stream and both tables, as the customer would create them."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=MEMBERSHIP,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.create_table(
            TableName=IDEMPOTENCY,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield kinesis, dynamodb


def messages(count: int, seed: int = 1) -> list[CohortMessage]:
    return random_messages(count, seed, user_pool=6, users_per_message=2)


def kinesis_records(kinesis: Any, payloads: list[bytes]) -> list[dict[str, Any]]:
    """Put payloads, then read them back as Lambda's Kinesis event records."""
    for data in payloads:
        kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey="key")
    summary = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    arn = summary["StreamARN"]
    [shard] = kinesis.list_shards(StreamName=STREAM)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    return [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode(),
                "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard['ShardId']}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
            "awsRegion": REGION,
            "eventSourceARN": arn,
        }
        for r in records
    ]


def event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def table_states(dynamodb: Any) -> dict[tuple[str, str], MemberState]:
    return states_of_items(dynamodb.scan(TableName=MEMBERSHIP)["Items"])


class CountingDynamoDB:
    """Counts membership writes and can fail them for chosen users."""

    def __init__(self, client: Any, fail_users: set[str] | None = None) -> None:
        self._client = client
        self.membership_puts = 0
        self.fail_users = fail_users or set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **params: Any) -> Any:
        if params["TableName"] == MEMBERSHIP:
            self.membership_puts += 1
            if params["Item"]["sk"]["S"] in self.fail_users:
                raise ClientError(
                    {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem"
                )
        return self._client.put_item(**params)


class FakeContext:
    """The part of Lambda's context powertools reads."""

    function_name = "cohort-consumer"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


CONTEXT = FakeContext()


def handler_for(dynamodb: Any) -> Handler:
    return build_handler(
        dynamodb=dynamodb, membership_table=MEMBERSHIP, idempotency_table=IDEMPOTENCY
    )


def test_batch_applies_membership_with_no_failures(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    msgs = messages(12)
    # WHEN the records arrive in one event
    response = handler_for(dynamodb)(
        event(kinesis_records(kinesis, [encode(m) for m in msgs])), CONTEXT
    )
    # THEN every record succeeded and the table holds the last writer per user
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)


def test_duplicate_delivery_is_idempotent(aws: tuple[Any, Any]) -> None:
    # GIVEN a batch already applied
    kinesis, dynamodb = aws
    msgs = messages(8, seed=2)
    batch = event(kinesis_records(kinesis, [encode(m) for m in msgs]))
    counting = CountingDynamoDB(dynamodb)
    handler = handler_for(counting)
    handler(batch, CONTEXT)
    writes = counting.membership_puts
    # WHEN Lambda delivers it again (a retry)
    assert handler(batch, CONTEXT) == {"batchItemFailures": []}
    # THEN the membership table is not written again and is unchanged
    assert counting.membership_puts == writes == 16
    assert table_states(dynamodb) == expected(msgs)
    assert dynamodb.scan(TableName=IDEMPOTENCY)["Count"] == 8


def test_shuffled_delivery_in_several_invocations_gives_the_same_membership(
    aws: tuple[Any, Any],
) -> None:
    kinesis, dynamodb = aws
    msgs = messages(16, seed=3)
    # GIVEN every message twice, shuffled, split over three invocations
    delivered = msgs + msgs
    random.Random(9).shuffle(delivered)
    records = kinesis_records(kinesis, [encode(m) for m in delivered])
    handler = handler_for(dynamodb)
    for start in (0, 11, 22):
        assert handler(event(records[start : start + 11]), CONTEXT) == {"batchItemFailures": []}
    # THEN the table equals applying each message once, in order
    assert table_states(dynamodb) == expected(msgs)


def test_poison_record_is_logged_and_does_not_block_the_batch(
    aws: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kinesis, dynamodb = aws
    msgs = messages(2, seed=4)
    records = kinesis_records(kinesis, [encode(msgs[0]), b'{"users": 3}', encode(msgs[1])])
    # WHEN a batch holds a record that breaks the contract
    response = handler_for(dynamodb)(event(records), CONTEXT)
    # THEN it is reported processed (not retried) and logged with its reason
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)
    [log] = [r.__dict__ for r in caplog.records if r.getMessage() == "poison record skipped"]
    assert log["sequence_number"] == records[1]["kinesis"]["sequenceNumber"]
    assert log["reason"].startswith("record breaks the payload contract: cohort_name: missing")
    assert log["reason"].endswith("users int: must be a list")
    assert log["data_prefix"] == '{"users": 3}'


def test_failing_record_is_reported_in_batch_item_failures_and_retry_applies_it(
    aws: tuple[Any, Any],
) -> None:
    kinesis, dynamodb = aws
    good = CohortMessage("n", "c1", True, "10", "good", (User("u1"),))
    bad = CohortMessage("n", "c1", True, "10", "bad", (User("u2"), User("u-fails")))
    records = kinesis_records(kinesis, [encode(good), encode(bad)])
    # GIVEN DynamoDB fails writes for one user
    faulty = CountingDynamoDB(dynamodb, fail_users={"u-fails"})
    # WHEN the batch is processed
    response = handler_for(faulty)(event(records), CONTEXT)
    # THEN only that record is reported for retry
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[1]["kinesis"]["sequenceNumber"]}]
    }
    # AND when Lambda retries it after the fault clears, it applies (idempotency did not stick)
    assert handler_for(dynamodb)(event(records[1:]), CONTEXT) == {"batchItemFailures": []}
    assert {user for (_, user), s in table_states(dynamodb).items() if s.in_cohort} == {
        "u1",
        "u2",
        "u-fails",
    }


def test_module_handler_reads_the_environment_lazily(
    aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kinesis, dynamodb = aws
    monkeypatch.setenv("MEMBERSHIP_TABLE", MEMBERSHIP)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY)
    lambda_handler.reset()
    msgs = messages(3, seed=5)
    try:
        response = lambda_handler.handler(
            event(kinesis_records(kinesis, [encode(m) for m in msgs])), CONTEXT
        )
    finally:
        lambda_handler.reset()
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "environment MEMBERSHIP_TABLE, IDEMPOTENCY_TABLE: not set; name the DynamoDB tables"),
        (
            {
                "MEMBERSHIP_TABLE": "m",
                "IDEMPOTENCY_TABLE": "i",
                "IDEMPOTENCY_EXPIRES_AFTER_SECONDS": "1h",
            },
            "environment IDEMPOTENCY_EXPIRES_AFTER_SECONDS '1h': must be a positive number",
        ),
    ],
)
def test_module_handler_names_missing_configuration(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("MEMBERSHIP_TABLE", "IDEMPOTENCY_TABLE", "IDEMPOTENCY_EXPIRES_AFTER_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lambda_handler.reset()
    with pytest.raises(ConsumerError) as caught:
        lambda_handler.handler({"Records": []}, CONTEXT)
    assert str(caught.value).startswith(message)


def test_poison_record_is_kept_in_the_failure_queue_with_its_data_and_reason(
    aws: tuple[Any, Any],
) -> None:
    kinesis, dynamodb = aws
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    msgs = messages(2, seed=5)
    poison = b'{"users": 3}'
    records = kinesis_records(kinesis, [encode(msgs[0]), poison, encode(msgs[1])])
    handler = build_handler(
        dynamodb=dynamodb,
        membership_table=MEMBERSHIP,
        idempotency_table=IDEMPOTENCY,
        sqs=sqs,
        failure_queue_url=queue,
    )
    # WHEN a batch holds a record that breaks the contract
    response = handler(event(records), CONTEXT)
    # THEN the batch succeeds and the record waits in the queue: raw bytes, reason, position
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)
    [kept] = sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    body = json.loads(kept["Body"])
    assert kept["MessageAttributes"]["kind"]["StringValue"] == "poison-record"
    assert base64.b64decode(body["data"]) == poison
    assert body["reason"] == (
        "record breaks the payload contract: cohort_name: missing; cohort_id: missing; "
        "in_cohort: missing; computed_time: missing; message_id: missing; "
        "users int: must be a list"
    )
    assert (body["sequenceNumber"], body["shardId"]) == (
        records[1]["kinesis"]["sequenceNumber"],
        records[1]["eventID"].split(":")[0],
    )
    assert (body["eventSourceARN"], body["dataBytes"], body["dataTruncated"]) == (
        records[1]["eventSourceARN"],
        len(poison),
        False,
    )


def test_poison_record_fails_when_it_cannot_be_kept(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    sqs = boto3.client("sqs", region_name=REGION)
    msgs = messages(1, seed=6)
    records = kinesis_records(kinesis, [b"not json", encode(msgs[0])])
    handler = build_handler(
        dynamodb=dynamodb,
        membership_table=MEMBERSHIP,
        idempotency_table=IDEMPOTENCY,
        sqs=sqs,
        failure_queue_url=f"https://sqs.{REGION}.amazonaws.com/123456789012/no-such-queue",
    )
    # WHEN the failure queue refuses the poison record
    response = handler(event(records), CONTEXT)
    # THEN that record is retried rather than dropped; the valid one is applied
    assert table_states(dynamodb) == expected(msgs)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]
    }
