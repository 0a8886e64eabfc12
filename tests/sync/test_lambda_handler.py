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

from sync import lambda_handler, membership_writer, poison
from sync.cli import main
from sync.contract import CohortMessage, User, encode, first_listings
from sync.errors import ConsumerError
from sync.lambda_handler import Handler, build_handler
from sync.membership import MemberState
from sync.membership_items import partition_keys
from sync.membership_store import MembershipStore, RawRecord
from tests.oracle import membership_after as expected
from tests.oracle import random_messages, states_of_items

pytestmark = pytest.mark.integration

REGION = "us-east-1"
STREAM = "cohorts"
MEMBERSHIP = "membership"
IDEMPOTENCY = "idempotency"


def create_membership_table(dynamodb: Any, name: str) -> None:
    """The membership table as the stack declares it: pk and sk strings, on demand."""
    dynamodb.create_table(
        TableName=name,
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


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """A one-shard stream and both tables, as the customer would create them."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_membership_table(dynamodb, MEMBERSHIP)
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
    # (one write per user of each message: a user listed twice is written once)
    assert counting.membership_puts == writes == sum(len(first_listings(m.users)) for m in msgs)
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
    [log] = [r.__dict__ for r in caplog.records if r.getMessage() == "poison-record kept"]
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


# --- issue 19: every poison record kept, the contract alike in both consumers -----------------

QUEUE_MAX_BYTES = 262_144  # what the stack sets (provisioning.consumer) and SendMessage enforces


def failure_queue() -> tuple[Any, str]:
    """A queue with the stack's maxMessageSize, so moto refuses what AWS would refuse."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(
        QueueName="failures", Attributes={"MaximumMessageSize": str(QUEUE_MAX_BYTES)}
    )["QueueUrl"]
    return sqs, url


def kept_messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    kept = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        for message in batch:
            kind = message["MessageAttributes"]["kind"]["StringValue"]
            assert poison.message_bytes(message["Body"], kind) <= QUEUE_MAX_BYTES
            kept.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return kept


def handler_with_queue(dynamodb: Any, sqs: Any, url: str, **table: Any) -> Handler:
    return build_handler(
        dynamodb=dynamodb,
        membership_table=MEMBERSHIP,
        idempotency_table=IDEMPOTENCY,
        sqs=sqs,
        failure_queue_url=url,
        table=membership_writer.MembershipTable(dynamodb, MEMBERSHIP, **table) if table else None,
    )


def _payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "cohort_name": "n",
        "cohort_id": "c1",
        "in_cohort": True,
        "computed_time": "1700000000",
        "message_id": "m:1",
        "users": [{"user_id": "u1", "user_properties": {"plan": "pro"}}],
    }
    payload.update(changes)
    return payload


_VALID = json.dumps(_payload()).encode()

# 1700000000 in Arabic-Indic digits: `\d` matches them, the contract does not
ARABIC_INDIC_TIME = "".join(chr(0x0660 + int(d)) for d in "1700000000")

CONTRACT_BREAKS = {
    "arabic-indic digits": (
        json.dumps(_payload(computed_time=ARABIC_INDIC_TIME)).encode(),
        f"record breaks the payload contract: computed_time {ARABIC_INDIC_TIME!r}: must be epoch",
    ),
    "NaN in properties": (
        _VALID.replace(b'"pro"', b"NaN"),
        "record data: not JSON (NaN is not JSON (the contract is strict JSON))",
    ),
    "Infinity at the top": (
        _VALID.replace(b"true", b"Infinity"),
        "record data: not JSON (Infinity is not JSON",
    ),
    "-Infinity in a list": (
        _VALID.replace(b'"pro"', b"[-Infinity]"),
        "record data: not JSON (-Infinity is not JSON",
    ),
    "UTF-16": (
        json.dumps(_payload()).encode("utf-16"),
        "record data: starts with a byte-order mark (b'\\xff\\xfe{')",
    ),
    "UTF-8 BOM": (b"\xef\xbb\xbf" + _VALID, "record data: starts with a byte-order mark"),
    # ASCII text in UTF-16 is valid UTF-8 with NULs between characters: not JSON
    "UTF-16 without BOM": (json.dumps(_payload()).encode("utf-16-le"), "record data: not JSON"),
    "bad UTF-8 in a string": (_VALID.replace(b"pro", b"pr\xff"), "record data: not UTF-8"),
}


@pytest.mark.parametrize("case", list(CONTRACT_BREAKS))
def test_contract_breaks_are_refused_alike_by_both_consumers(
    aws: tuple[Any, Any], tmp_path: Any, case: str
) -> None:
    data, reason = CONTRACT_BREAKS[case]
    kinesis, dynamodb = aws
    sqs, url = failure_queue()
    # WHEN the Lambda and the CLI consumer's store each get the record
    records = kinesis_records(kinesis, [data])
    assert handler_with_queue(dynamodb, sqs, url)(event(records), CONTEXT) == {
        "batchItemFailures": []
    }
    with MembershipStore(tmp_path / "cli.db") as store:
        outcome = store.apply_page("arn", "s", [RawRecord("1", data)])
        [quarantined] = store.quarantined()
    # THEN neither applies it, and both keep it with the same reason
    [kept] = kept_messages(sqs, url)
    assert dynamodb.scan(TableName=MEMBERSHIP)["Count"] == 0
    assert outcome.quarantined == 1
    assert kept["reason"] == quarantined.reason
    assert kept["reason"].startswith(reason)


def test_a_user_listed_twice_keeps_its_first_listing_in_both_consumers(
    aws: tuple[Any, Any], tmp_path: Any
) -> None:
    kinesis, dynamodb = aws
    # GIVEN a message listing u1 twice with different properties
    message = CohortMessage(
        "n", "c1", True, "10", "m:1", (User("u1", {"n": 1}), User("u2"), User("u1", {"n": 2}))
    )
    handler_for(dynamodb)(event(kinesis_records(kinesis, [encode(message)])), CONTEXT)
    with MembershipStore(tmp_path / "cli.db") as store:
        store.apply_page("arn", "s", [RawRecord("1", encode(message))])
        cli = store.states()
    # THEN both consumers keep the first listing (the contract's rule) and agree
    lambda_states = table_states(dynamodb)
    assert lambda_states[("c1", "u1")].user_properties == {"n": 1}
    assert lambda_states == cli


def _numeric_ids(users: int, props_bytes: int) -> bytes:
    return json.dumps(
        _payload(
            users=[
                {"user_id": n, "user_properties": {"p": "x" * props_bytes}} for n in range(users)
            ]
        )
    ).encode()


POISON_CASES = {
    # the cases: a huge reason (1,000 problems) and a ~305 KB record
    "1,000 numeric ids": _numeric_ids(1000, 0),
    "1,000 numeric ids with 400-byte properties": _numeric_ids(1000, 400),
    "a 1 MiB record that is not JSON": b"{" + b"x" * (1024 * 1024 - 1),
    "a long non-ASCII cohort_id of the wrong type": json.dumps(
        _payload(cohort_id=["é" * 100_000], users=3)
    ).encode(),
}


@pytest.mark.parametrize("case", list(POISON_CASES))
def test_every_poison_record_fits_the_queue(aws: tuple[Any, Any], case: str) -> None:
    kinesis, dynamodb = aws
    sqs, url = failure_queue()
    data = POISON_CASES[case]
    records = kinesis_records(kinesis, [data])
    # WHEN the record is refused
    response = handler_with_queue(dynamodb, sqs, url)(event(records), CONTEXT)
    # THEN it is kept (the queue accepted it: no retry) and its reason is summarised
    assert response == {"batchItemFailures": []}
    [kept] = kept_messages(sqs, url)
    assert kept["dataBytes"] == len(data)
    decoded = base64.b64decode(kept["data"])
    assert data.startswith(decoded) and kept["dataTruncated"] == (decoded != data)
    assert len(kept["reason"].encode()) <= poison.REASON_MAX_BYTES


def test_summarised_reason_counts_problems_and_names_the_first() -> None:
    from sync.contract import decode
    from sync.errors import ContractError

    with pytest.raises(ContractError) as caught:
        decode(_numeric_ids(1000, 0))
    assert str(caught.value).startswith(
        "record breaks the payload contract: 1,000 problems, the first 10: "
        "users[0] user_id 0: must be a non-empty string; users[1] user_id 1:"
    )
    assert len(str(caught.value)) < 1000


def test_users_dynamodb_refuses_are_kept_alone_and_the_rest_applied(
    aws: tuple[Any, Any],
) -> None:
    kinesis, dynamodb = aws
    sqs, url = failure_queue()
    # GIVEN a message with a 1,025-byte user_id and an item over 400 KB between valid users
    users = (
        User("u1"),
        User("x" * 1025),
        User("u2", {"blob": "y" * (400 * 1024)}),
        User("é" * 512),  # 1,024 bytes: at the limit, written
    )
    records = kinesis_records(kinesis, [encode(CohortMessage("n", "c1", True, "9", "m:1", users))])
    handler = handler_with_queue(dynamodb, sqs, url)
    # WHEN it is processed, twice (a redelivery)
    assert handler(event(records), CONTEXT) == {"batchItemFailures": []}
    assert handler(event(records), CONTEXT) == {"batchItemFailures": []}
    # THEN the others are written, and the two users are kept once, by position, with the rule
    assert set(u for _, u in table_states(dynamodb)) == {"u1", "é" * 512}
    [kept] = kept_messages(sqs, url)
    assert kept["kind"] == "poison-users"
    assert kept["reason"] == (
        "users DynamoDB refuses, kept here, the rest applied: users[1] user_id (1,025 bytes):"
        " DynamoDB's sort key is at most 1,024 bytes; users[2] item (409,718 bytes with its"
        " user_properties): DynamoDB's item is at most 409,600 bytes"
    )
    # (the record is larger than a queue message: its start is kept, the rest is in the stream)
    data = base64.b64decode(records[0]["kinesis"]["data"])
    assert data.startswith(base64.b64decode(kept["data"])) and kept["dataTruncated"]


class ThrottlingDynamoDB(CountingDynamoDB):
    """Throttles every other membership write, with on-demand DynamoDB's error."""

    def put_item(self, **params: Any) -> Any:
        if params["TableName"] == MEMBERSHIP:
            self.membership_puts += 1
            if self.membership_puts % 2:
                raise ClientError(
                    {
                        "Error": {"Code": "ThrottlingException", "Message": "throttled"},
                        "ThrottlingReasons": [{"reason": "KeyRangeThroughputExceeded"}],
                    },
                    "PutItem",
                )
        return self._client.put_item(**params)


def test_throttled_writes_are_retried_and_lose_nothing(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, dynamodb = aws
    msgs = messages(6, seed=11)
    throttling = ThrottlingDynamoDB(dynamodb)
    table = membership_writer.MembershipTable(throttling, MEMBERSHIP, sleep=lambda _: None)
    handler = build_handler(
        dynamodb=throttling, membership_table=MEMBERSHIP, idempotency_table=IDEMPOTENCY, table=table
    )
    # WHEN half the writes are throttled
    response = handler(event(kinesis_records(kinesis, [encode(m) for m in msgs])), CONTEXT)
    # THEN each is retried, counted, and the table is exactly what was sent
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)
    throttled = sum(
        json.loads(i["data"]["S"])["throttled"]
        for i in dynamodb.scan(TableName=IDEMPOTENCY)["Items"]
    )
    writes = sum(len(first_listings(m.users)) for m in msgs)
    assert throttling.membership_puts == writes + throttled and throttled >= writes // 2
    [metric_set] = emitted_metrics(capsys.readouterr().out)
    assert metric_set["ThrottledWrites"] == [float(throttled)]


class ShrinkingContext(FakeContext):
    """A context whose remaining time drops by `step` each time it is read."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.left = start_ms
        self.step = step_ms

    def get_remaining_time_in_millis(self) -> int:
        self.left -= self.step
        return self.left


def test_an_invocation_out_of_time_reports_the_rest_and_loses_nothing(
    aws: tuple[Any, Any],
) -> None:
    kinesis, dynamodb = aws
    msgs = messages(10, seed=12)
    records = kinesis_records(kinesis, [encode(m) for m in msgs])
    handler = handler_for(dynamodb)
    # WHEN the time left falls under the reserve part way through the batch
    context = ShrinkingContext(10_000, 200)
    response = handler(event(records), context)
    # THEN it returns in time, reporting the unfinished records from the first of them
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    sequence = [r["kinesis"]["sequenceNumber"] for r in records]
    assert failed and failed == sequence[sequence.index(failed[0]) :]
    assert context.left > 0
    # AND Lambda's retry of those records completes the table
    retry = records[sequence.index(failed[0]) :]
    assert handler(event(retry), CONTEXT) == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)


class FixedContext(FakeContext):
    """A context with a fixed time left."""

    def __init__(self, left_ms: int) -> None:
        self.left = left_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.left


def test_a_short_timeout_keeps_a_share_of_it_and_still_applies(aws: tuple[Any, Any]) -> None:
    kinesis, dynamodb = aws
    msgs = messages(4, seed=14)
    # WHEN the function's timeout (3 s) is under STOP_STARTING_MS
    response = handler_for(dynamodb)(
        event(kinesis_records(kinesis, [encode(m) for m in msgs])), FixedContext(3_000)
    )
    # THEN the reserve is a quarter of it, and the batch is applied rather than handed back
    assert lambda_handler.reserve_ms(3_000) == 750 < lambda_handler.STOP_STARTING_MS
    assert response == {"batchItemFailures": []}
    assert table_states(dynamodb) == expected(msgs)


def test_members_reads_the_lambdas_table_as_it_reads_the_cli_consumers_state(
    aws: tuple[Any, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same messages applied by the Lambda (users over all write shards) and the CLI
    kinesis, dynamodb = aws
    msgs = messages(40, seed=13)
    wide = CohortMessage(
        "Churn risk", "c1", True, "1800000000", "wide", tuple(User(f"w{n}") for n in range(100))
    )
    payloads = [encode(m) for m in [*msgs, wide]]
    handler_for(dynamodb)(event(kinesis_records(kinesis, payloads)), CONTEXT)
    state = tmp_path / "cli.sqlite"
    with MembershipStore(state) as store:
        store.apply_page("arn", "s", [RawRecord(str(i), p) for i, p in enumerate(payloads)])
    capsys.readouterr()  # the handler's logs and metrics
    keys = {i["pk"]["S"] for i in dynamodb.scan(TableName=MEMBERSHIP)["Items"]}
    assert keys >= set(partition_keys("c1"))
    for cohort, output_format in (("c1", "csv"), ("c2", "jsonl")):
        # WHEN `members` reads each
        assert (
            main(
                ["members", "--state", str(state), "--cohort-id", cohort, "--format", output_format]
            )
            == 0
        )
        from_state = capsys.readouterr().out
        assert (
            main(
                [
                    "members",
                    "--dynamodb-table",
                    MEMBERSHIP,
                    "--cohort-id",
                    cohort,
                    "--format",
                    output_format,
                ]
            )
            == 0
        )
        # THEN both print the same members, in the same order
        assert capsys.readouterr().out == from_state and from_state.count("\n") > 1


def test_members_of_an_unknown_cohort_in_the_table_says_what_to_do(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "--dynamodb-table", MEMBERSHIP, "--cohort-id", "nope"]) == 2
    assert f"--cohort-id 'nope': no such cohort in table {MEMBERSHIP}" in capsys.readouterr().err


def emitted_metrics(out: str) -> list[dict[str, Any]]:
    """The embedded-metric-format lines an invocation printed."""
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_each_invocation_emits_its_counts_as_cloudwatch_metrics(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis, dynamodb = aws
    sqs, url = failure_queue()
    # GIVEN two valid messages (the second older, so its user is stale), a poison record, and a
    # message with a user DynamoDB refuses
    good = CohortMessage("n", "c1", True, "10", "m:1", (User("u1"), User("u2")))
    again = CohortMessage("n", "c1", True, "9", "m:2", (User("u1"),))
    refused = CohortMessage("n", "c1", True, "10", "m:3", (User("u3"), User("x" * 1025)))
    payloads = [encode(good), encode(again), b"not json", encode(refused)]
    capsys.readouterr()
    # WHEN one invocation handles them
    handler_with_queue(dynamodb, sqs, url)(event(kinesis_records(kinesis, payloads)), CONTEXT)
    # THEN it prints one metric set in powertools' namespace with every count and the time left
    [metric_set] = emitted_metrics(capsys.readouterr().out)
    names = {m["Name"] for m in metric_set["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert metric_set["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CohortSync"
    assert {name: metric_set[name] for name in names} == {
        "UsersWritten": [3.0],
        "UsersStale": [1.0],
        "PoisonRecords": [1.0],
        "PoisonUsers": [1.0],
        "ThrottledWrites": [0.0],
        "RemainingTimeMs": [60_000.0],
    }


def test_the_client_keeps_a_connection_for_every_write_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, Any] = {}

    def client(service: str, **kwargs: Any) -> Any:
        made[service] = kwargs.get("config")
        return object()

    monkeypatch.setenv("MEMBERSHIP_TABLE", MEMBERSHIP)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY)
    monkeypatch.setattr(lambda_handler.boto3, "client", client)
    lambda_handler._from_environment()
    # botocore's default pool (10) would queue 22 of the 32 writers
    assert made["dynamodb"].max_pool_connections >= membership_writer.WRITERS


def test_members_of_a_table_that_cannot_be_queried_names_it_and_the_fix(
    aws: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "--dynamodb-table", "no-such-table", "--cohort-id", "c1"]) != 0
    err = capsys.readouterr().err
    assert "--dynamodb-table 'no-such-table': cannot query it (ResourceNotFoundException)" in err
    assert "pass the stack's membershipTable output" in err
