"""`consumer: lambda` on moto, driven by the simulated mapping: exact DynamoDB membership through
duplicates, shuffling, poison, throttling and crashes; the function role is least privilege."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioning import constants as c
from provisioning.archive import project_entries, write_archive
from sandbox.engine import consumer_resources as cr
from sandbox.engine.runner import PROGRAM_DIR, ProgramRun
from sandbox.engine.stack import StackConfig, apply
from sandbox.lambda_mapping import MappingSimulator
from sandbox.proof import prove_consumer
from sandbox.world import MotoWorld
from sync import lambda_handler
from sync.contract import CohortMessage, encode
from sync.membership import MemberState
from tests.oracle import membership_after as expected
from tests.oracle import random_messages, states_of_items

pytestmark = pytest.mark.integration

# AWS's sample Kinesis event (Lambda developer guide, "Using AWS Lambda with Amazon Kinesis").
AWS_SAMPLE_RECORD = {
    "kinesis": {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "1",
        "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
        "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
        "approximateArrivalTimestamp": 1545084650.987,
    },
    "eventSource": "aws:kinesis",
    "eventVersion": "1.0",
    "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
    "eventName": "aws:kinesis:record",
    "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
    "awsRegion": "us-east-2",
    "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
}


@dataclass
class Consumer:
    """An applied `consumer: lambda` stack and what the tests drive it with."""

    world: MotoWorld
    run: ProgramRun

    @property
    def outputs(self) -> dict[str, Any]:
        return self.run.outputs

    def mapping(self, **kwargs: Any) -> MappingSimulator:
        (mapping,) = self.run.of_type(cr.MAPPING)
        assert mapping.id is not None
        return MappingSimulator(self.world, mapping.id, **kwargs)

    def put(self, *payloads: bytes) -> None:
        kinesis = self.world.client("kinesis", self.world.customer_admin)
        for index, data in enumerate(payloads):
            kinesis.put_record(
                StreamARN=self.outputs[c.OUTPUT_STREAM_ARN], Data=data, PartitionKey=f"k{index}"
            )

    def membership(self) -> dict[tuple[str, str], MemberState]:
        dynamodb = self.world.client("dynamodb", self.world.customer_admin)
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=self.outputs[c.OUTPUT_MEMBERSHIP_TABLE]
        )
        return states_of_items(item for page in pages for item in page["Items"])

    def failures(self) -> list[dict[str, Any]]:
        sqs = self.world.client("sqs", self.world.customer_admin)
        bodies = []
        while True:
            got = sqs.receive_message(
                QueueUrl=self.outputs[c.OUTPUT_FAILURE_QUEUE_URL], MaxNumberOfMessages=10
            ).get("Messages", [])
            if not got:
                return bodies
            bodies.extend(json.loads(m["Body"]) for m in got)


def build_archive(directory: Path) -> Path:
    """The project's own code only: enough for Lambda to accept, built without network."""
    out = directory / "lambda-test.zip"
    write_archive(project_entries(PROGRAM_DIR), out)
    return out


def apply_consumer(world: MotoWorld, archive: Path, **config: str) -> Consumer:
    values = {
        "consumer": "lambda",
        "consumerArchive": str(archive),
        "streamMode": "PROVISIONED",
        "shardCount": "2",
        "consumerBatchSize": "10",
        "consumerMaxRetries": "2",
        **config,
    }
    run = apply(
        StackConfig("test", values),
        session=world.customer_admin.session(world.region),
        region=world.region,
    )
    return Consumer(world, run)


@pytest.fixture
def consumer(moto_world: MotoWorld, tmp_path: Path) -> Iterator[Consumer]:
    lambda_handler.reset()
    yield apply_consumer(moto_world, build_archive(tmp_path))
    lambda_handler.reset()


def messages(count: int, seed: int) -> list[CohortMessage]:
    return random_messages(count, seed, user_pool=8, users_per_message=3)


# --- what was deployed ----------------------------------------------------------------------


def test_the_mapping_is_read_back_as_configured(consumer: Consumer) -> None:
    simulator = consumer.mapping()

    assert simulator.mapping.batch_size == 10
    assert simulator.mapping.max_retries == 2
    assert simulator.mapping.max_record_age_seconds == c.DEFAULT_CONSUMER_MAX_RECORD_AGE_SECONDS
    assert simulator.mapping.bisect is True
    assert simulator.mapping.starting_position == "TRIM_HORIZON"
    assert simulator.mapping.report_batch_item_failures is True
    assert simulator.mapping.on_failure_arn is not None
    assert simulator.mapping.on_failure_arn.endswith(":amplitude-cohorts-consumer-failures")
    assert simulator.function["Handler"] == "sync.lambda_handler.handler"
    assert simulator.function["Environment"]["Variables"] == {
        "MEMBERSHIP_TABLE": consumer.outputs[c.OUTPUT_MEMBERSHIP_TABLE],
        "IDEMPOTENCY_TABLE": consumer.outputs[c.OUTPUT_IDEMPOTENCY_TABLE],
        "FAILURE_QUEUE_URL": consumer.outputs[c.OUTPUT_FAILURE_QUEUE_URL],
    }


def test_tables_queue_and_logs_are_created_as_declared(consumer: Consumer) -> None:
    dynamodb = consumer.world.client("dynamodb", consumer.world.customer_admin)
    membership = dynamodb.describe_table(TableName=consumer.outputs[c.OUTPUT_MEMBERSHIP_TABLE])
    table = membership["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    idempotency = consumer.outputs[c.OUTPUT_IDEMPOTENCY_TABLE]
    ttl = dynamodb.describe_time_to_live(TableName=idempotency)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    backups = dynamodb.describe_continuous_backups(TableName=idempotency)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    sqs = consumer.world.client("sqs", consumer.world.customer_admin)
    attributes = sqs.get_queue_attributes(
        QueueUrl=consumer.outputs[c.OUTPUT_FAILURE_QUEUE_URL], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    logs = consumer.world.client("logs", consumer.world.customer_admin)
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/amplitude-cohorts")[
        "logGroups"
    ]
    assert (group["logGroupName"], group["retentionInDays"]) == (
        "/aws/lambda/amplitude-cohorts-consumer",
        30,
    )
    cloudwatch = consumer.world.client("cloudwatch", consumer.world.customer_admin)
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    assert sorted((a["Namespace"], a["MetricName"]) for a in alarms) == [
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ]


# --- the event and the round trip -----------------------------------------------------------


def test_events_have_exactly_the_fields_of_aws_sample_event(consumer: Consumer) -> None:
    consumer.put(b"hello")
    simulator = consumer.mapping()
    kinesis = consumer.world.client("kinesis", simulator.role_credentials)
    stream = consumer.outputs[c.OUTPUT_STREAM_ARN]
    for shard in kinesis.list_shards(StreamARN=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, StreamARN=stream)["Records"]
        if records:
            break

    (record,) = simulator.event(shard["ShardId"], records)["Records"]

    assert set(record) == set(AWS_SAMPLE_RECORD)
    assert set(record["kinesis"]) == set(AWS_SAMPLE_RECORD["kinesis"])
    assert base64.b64decode(record["kinesis"]["data"]) == b"hello"
    assert record["eventID"] == f"{shard['ShardId']}:{records[0]['SequenceNumber']}"
    assert record["eventSourceARN"] == stream
    assert record["invokeIdentityArn"] == simulator.function["Role"]
    assert record["awsRegion"] == consumer.world.region


def test_round_trip_applies_every_message_to_dynamodb(consumer: Consumer) -> None:
    msgs = messages(40, seed=1)
    consumer.put(*(encode(m) for m in msgs))

    report = consumer.mapping().poll()

    assert consumer.membership() == expected(msgs)
    assert report.records_read == 40
    assert (report.function_errors, report.partial_failures, report.retries) == (0, 0, 0)
    assert consumer.failures() == []


def test_a_second_poll_resumes_after_the_checkpoint(consumer: Consumer) -> None:
    first, second = messages(12, seed=2)[:6], messages(12, seed=2)[6:]
    simulator = consumer.mapping()
    consumer.put(*(encode(m) for m in first))
    assert simulator.poll().records_read == 6
    consumer.put(*(encode(m) for m in second))

    assert simulator.poll().records_read == 6
    assert consumer.membership() == expected(first + second)


# --- chaos: exact membership whatever happens -----------------------------------------------


def test_duplicates_and_shuffled_order_end_in_exact_membership(consumer: Consumer) -> None:
    msgs = messages(30, seed=3)
    delivered = msgs + random.Random(3).sample(msgs, 10)  # a lost acknowledgement re-sends
    random.Random(4).shuffle(delivered)
    consumer.put(*(encode(m) for m in delivered))

    consumer.mapping().poll()

    assert consumer.membership() == expected(msgs)


def test_poison_records_are_listed_in_the_failure_queue(consumer: Consumer) -> None:
    msgs = messages(10, seed=5)
    poison = [b"not json", b'{"cohort_id": 7}']
    consumer.put(encode(msgs[0]), poison[0], *(encode(m) for m in msgs[1:]), poison[1])

    report = consumer.mapping().poll()

    assert consumer.membership() == expected(msgs)
    kept = consumer.failures()
    assert sorted(base64.b64decode(k["data"]) for k in kept) == sorted(poison)
    assert {k["kind"] for k in kept} == {"poison-record"}
    reasons = {base64.b64decode(k["data"]): k["reason"] for k in kept}
    assert reasons[b"not json"].startswith("record data: not UTF-8 JSON")
    assert "cohort_id 7: must be a non-empty string" in reasons[b'{"cohort_id": 7}']
    assert report.sent_to_destination == 0  # kept by the handler, not given up on


def test_a_throttled_table_is_retried_to_exact_membership(
    consumer: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = messages(20, seed=6)
    consumer.put(*(encode(m) for m in msgs))
    throttles = {"left": 7}
    real_client = boto3.client

    def throttled_client(service: str, *args: Any, **kwargs: Any) -> Any:
        client = real_client(service, *args, **kwargs)

        def throttle(params: dict[str, Any], **_: Any) -> None:
            if params.get("TableName", "").endswith("-membership") and throttles["left"] > 0:
                throttles["left"] -= 1
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}},
                    "PutItem",
                )

        client.meta.events.register("provide-client-params.dynamodb.PutItem", throttle)
        return client

    monkeypatch.setattr(lambda_handler.boto3, "client", throttled_client)

    report = consumer.mapping().poll()

    assert throttles["left"] == 0
    assert report.partial_failures > 0 and report.retries > 0
    assert consumer.membership() == expected(msgs)
    assert consumer.failures() == []


def test_a_crash_mid_batch_is_bisected_and_retried_to_exact_membership(
    consumer: Consumer,
) -> None:
    msgs = messages(20, seed=7)
    consumer.put(*(encode(m) for m in msgs))
    crashes = {"left": 3}

    def crash_after_half(handler: Any, event: dict[str, Any], context: Any) -> Any:
        records = event["Records"]
        if crashes["left"] and len(records) > 1:
            crashes["left"] -= 1
            handler({"Records": records[: len(records) // 2]}, context)  # half got written
            raise RuntimeError("the runtime died mid-batch")
        return handler(event, context)

    report = consumer.mapping(invoke=crash_after_half).poll()

    assert report.function_errors == 3 and report.bisections == 3
    assert consumer.membership() == expected(msgs)
    assert consumer.failures() == []


def test_exhausted_retries_go_to_the_failure_queue_in_aws_shape(consumer: Consumer) -> None:
    msgs = messages(4, seed=8)
    consumer.put(*(encode(m) for m in msgs))

    def always_fail(handler: Any, event: dict[str, Any], context: Any) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]
            ]
        }

    simulator = consumer.mapping(invoke=always_fail)
    report = simulator.poll()

    assert report.records_discarded == 4
    kept = consumer.failures()
    assert kept == simulator.destination_messages
    assert sum(m["KinesisBatchInfo"]["batchSize"] for m in kept) == 4
    for message in kept:
        assert set(message) == {
            "requestContext",
            "responseContext",
            "version",
            "timestamp",
            "KinesisBatchInfo",
        }
        assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert message["requestContext"]["approximateInvokeCount"] == 3  # 1 + 2 retries
        assert message["requestContext"]["functionArn"] == consumer.outputs[c.OUTPUT_FUNCTION_ARN]
        assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
        assert set(message["KinesisBatchInfo"]) == {
            "shardId",
            "startSequenceNumber",
            "endSequenceNumber",
            "approximateArrivalOfFirstRecord",
            "approximateArrivalOfLastRecord",
            "batchSize",
            "streamArn",
        }
    assert consumer.membership() == {}


def test_records_older_than_the_maximum_age_are_given_up_on(consumer: Consumer) -> None:
    consumer.put(*(encode(m) for m in messages(3, seed=9)))
    simulator = consumer.mapping(clock=lambda: time.time() + 2 * 86_400)

    report = simulator.poll()

    assert report.invocations == 0 and report.records_discarded == 3
    kept = consumer.failures()
    assert kept == simulator.destination_messages
    assert {m["requestContext"]["condition"] for m in kept} == {"RecordAgeExceeded"}
    assert all("responseContext" not in m for m in kept)


# --- the function role, probed from outside -------------------------------------------------


def test_function_role_reads_its_stream_and_nothing_else(consumer: Consumer) -> None:
    steps = prove_consumer(consumer.world, consumer.outputs, consumer.mapping().function["Role"])

    assert [(s.name, s.passed) for s in steps if not s.passed] == []
    assert len(steps) == 12


def test_the_probe_catches_a_widened_function_role(consumer: Consumer) -> None:
    role_arn = consumer.mapping().function["Role"]
    iam = consumer.world.client("iam", consumer.world.customer_admin)
    iam.put_role_policy(
        RoleName=role_arn.rsplit("/", 1)[-1],
        PolicyName="too-wide",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"}],
            }
        ),
    )

    steps = prove_consumer(consumer.world, consumer.outputs, role_arn)

    assert [s.name for s in steps if not s.passed] == [
        "the function role cannot write another table"
    ]
