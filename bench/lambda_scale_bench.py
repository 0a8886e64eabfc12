"""The Lambda consumer at production sizes, on the model's virtual clock (`sandbox.consumer_model`),
and its real handler's users/s per invocation against moto with a fixed delay per DynamoDB call.

Rows, at 2, 5 and 10 ms per DynamoDB call, with the stack's default consumer config:
- a 1M-user first sync (1,000 messages x 1,000 users) on a 4-shard stream into a new on-demand
  table: modelled time <= 300 s (the table's own floor is 250 s), 0 function timeouts, throttled
  writes retried and counted;
- the real-time cadence, 10,000 updates a minute: applied with >= 10x headroom (in <= 6 s);
- write units consumed per user update <= 1.1 (conditional failures and rewrites included).
Also printed: the key design measured (one partition key per cohort against ten), and the
handler's own users/s against moto.

Run: .venv/bin/python -m bench.lambda_scale_bench [--users-per-message N] [--moto-users N]
"""

from __future__ import annotations

import argparse
import base64
import time
from typing import Any

import boto3
from moto import mock_aws

from bench.rows import emit
from provisioning import constants as c
from sandbox.consumer_model import ModelReport, Sizing, Workload, run
from sandbox.dynamodb_limits import DynamoDBLimits, LimitedTable
from sync import lambda_handler, membership_writer
from sync.contract import CohortMessage, User, encode

LATENCIES_MS = (2, 5, 10)
FIRST_SYNC_MESSAGES = 1000
USERS_PER_MESSAGE = 1000
SHARDS = 4
# A 1,000-user message with a few properties per user, as the publisher encodes it.
RECORD_BYTES = 60_000
REALTIME_UPDATES_PER_MINUTE = 10_000
FIRST_SYNC_TARGET_SECONDS = 300.0
HEADROOM_TARGET = 10.0
UNITS_TARGET = 1.1


def default_sizing(write_shards: int = 10) -> Sizing:
    """The stack's default consumer config and the handler's own constants."""
    return Sizing(
        shards=SHARDS,
        parallelization=c.DEFAULT_CONSUMER_PARALLELIZATION_FACTOR,
        batch_size=c.DEFAULT_CONSUMER_BATCH_SIZE,
        timeout_seconds=c.DEFAULT_CONSUMER_TIMEOUT_SECONDS,
        writers=membership_writer.WRITERS,
        reserve_seconds=lambda_handler.reserve_ms(c.DEFAULT_CONSUMER_TIMEOUT_SECONDS * 1000) / 1000,
        write_shards=write_shards,
        throttle_base_seconds=membership_writer.THROTTLE_BASE_SECONDS,
        throttle_cap_seconds=membership_writer.THROTTLE_CAP_SECONDS,
    )


def describe(report: ModelReport) -> str:
    """One run's figures."""
    return (
        f"{report.seconds:,.1f} s modelled, {report.users / report.seconds:,.0f} users/s,"
        f" {report.invocations:,} invocations, {report.timeouts} timeouts,"
        f" {report.records_retried:,} records handed back unfinished,"
        f" {report.throttled:,} throttled writes retried,"
        f" {report.units_per_user:.3f} WCU per user update"
    )


def model_rows(users_per_message: int) -> None:
    """The first-sync, real-time and write-unit rows at each latency."""
    sizing = default_sizing()
    first_sync = Workload(FIRST_SYNC_MESSAGES, users_per_message, RECORD_BYTES)
    realtime = Workload(
        REALTIME_UPDATES_PER_MINUTE // users_per_message or 1, users_per_message, RECORD_BYTES
    )
    users = FIRST_SYNC_MESSAGES * users_per_message
    for latency_ms in LATENCIES_MS:
        limits = DynamoDBLimits(latency_seconds=latency_ms / 1000)
        started = time.perf_counter()
        report = run(sizing, first_sync, limits)
        print(
            f"first sync {users:,} users, {latency_ms} ms: {describe(report)}"
            f" ({time.perf_counter() - started:.1f} s to model)",
            flush=True,
        )
        emit(
            f"Lambda consumer: {users:,}-user first sync, {SHARDS} shards, new on-demand table,"
            f" {latency_ms} ms per call (modelled)",
            f"{report.seconds:,.0f} s, {report.timeouts} timeouts,"
            f" {report.throttled:,} throttled writes retried",
            f"<= {FIRST_SYNC_TARGET_SECONDS:.0f} s, 0 timeouts",
            report.seconds <= FIRST_SYNC_TARGET_SECONDS and report.timeouts == 0,
        )
        emit(
            f"Lambda consumer: write units per user update, {latency_ms} ms (modelled)",
            f"{report.units_per_user:.3f}",
            f"<= {UNITS_TARGET}",
            report.units_per_user <= UNITS_TARGET,
        )
        minute = run(sizing, realtime, limits)
        headroom = 60.0 / minute.seconds
        print(f"real time {realtime.messages * users_per_message:,} updates: {describe(minute)}")
        emit(
            f"Lambda consumer: {REALTIME_UPDATES_PER_MINUTE:,} updates a minute, {latency_ms} ms"
            " (modelled)",
            f"applied in {minute.seconds:.1f} s: {headroom:.0f}x headroom",
            f">= {HEADROOM_TARGET:.0f}x",
            headroom >= HEADROOM_TARGET,
        )


def key_design(users_per_message: int) -> None:
    """One partition key per cohort against ten write shards, 5 ms, the default config."""
    limits = DynamoDBLimits()
    workload = Workload(100, users_per_message, RECORD_BYTES)
    for shards in (1, 10):
        report = run(default_sizing(shards), workload, limits)
        print(f"key design: {shards} partition key(s) per cohort, 100k users: {describe(report)}")


def moto_rate(users: int, delay_ms: float) -> float:
    """The real handler's users/s in one invocation against moto, `delay_ms` added per call."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for name, keys in (("membership", ("pk", "sk")), ("idempotency", ("id",))):
            dynamodb.create_table(
                TableName=name,
                KeySchema=[
                    {"AttributeName": k, "KeyType": t}
                    for k, t in zip(keys, ("HASH", "RANGE"), strict=False)
                ],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        LimitedTable("membership", DynamoDBLimits(latency_seconds=delay_ms / 1000)).attach(dynamodb)
        handler = lambda_handler.build_handler(
            dynamodb=dynamodb, membership_table="membership", idempotency_table="idempotency"
        )
        per_message = min(users, USERS_PER_MESSAGE)
        records = [
            _event_record(
                n,
                CohortMessage(
                    "Bench",
                    "bench",
                    True,
                    "1700000000",
                    f"bench:{n}",
                    tuple(
                        User(f"user-{n * per_message + i:08d}", {"plan": "pro"})
                        for i in range(per_message)
                    ),
                ),
            )
            for n in range(max(1, users // per_message))
        ]
        started = time.perf_counter()
        response = handler({"Records": records}, _Context())
        seconds = time.perf_counter() - started
        assert response == {"batchItemFailures": []}, response
        return len(records) * per_message / seconds


class _Context:
    function_name = "bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _event_record(n: int, message: CohortMessage) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": message.message_id,
            "sequenceNumber": str(n + 1),
            "data": base64.b64encode(encode(message)).decode(),
            "approximateArrivalTimestamp": 1_700_000_000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{n + 1}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
    }


def main() -> None:
    """Print the model's runs and the target rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users-per-message", type=int, default=USERS_PER_MESSAGE)
    parser.add_argument("--moto-users", type=int, default=2000)
    parser.add_argument("--moto-delay-ms", type=float, default=5.0)
    args = parser.parse_args()
    model_rows(args.users_per_message)
    key_design(args.users_per_message)
    floor = moto_rate(args.moto_users, 0.0)
    rate = moto_rate(args.moto_users, args.moto_delay_ms)
    print(
        f"handler against moto: {floor:,.0f} users/s with no delay (moto's own cost),"
        f" {rate:,.0f} users/s with {args.moto_delay_ms:g} ms per call"
        f" ({membership_writer.WRITERS} writes in flight)"
    )
    needed = 4000 / SHARDS / c.DEFAULT_CONSUMER_PARALLELIZATION_FACTOR
    emit(
        f"Lambda handler against moto, {args.moto_delay_ms:g} ms per DynamoDB call:"
        f" users/s in one invocation ({args.moto_users:,} users)",
        f"{rate:,.0f} users/s",
        f">= {needed:,.0f} (a lane's share of the table's 4,000 WCU/s)",
        rate >= needed,
    )


if __name__ == "__main__":
    main()
