"""The Lambda consumer's throughput: users/second through the simulated event source mapping into
moto's DynamoDB, next to the CLI consumer (SQLite) reading the same stream, in one run."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from provisioning import constants as c
from provisioning.archive import project_entries, write_archive
from sandbox.engine import consumer_resources
from sandbox.engine.runner import PROGRAM_DIR
from sandbox.engine.stack import StackConfig, apply
from sandbox.lambda_mapping import MappingSimulator
from sandbox.world import MotoWorld, moto_world
from sync.consumer import Consumer
from sync.contract import CohortMessage, User, encode
from sync.membership_store import MembershipStore

REGION = "us-east-1"


def publish(world: MotoWorld, stream_arn: str, users: int, per_message: int) -> int:
    """Put `users` entering users, `per_message` a record, as the admin; the record count."""
    kinesis = world.client("kinesis", world.customer_admin)
    batch: list[dict[str, Any]] = []
    records = 0
    for index, start in enumerate(range(0, users, per_message)):
        message = CohortMessage(
            cohort_name="Bench cohort",
            cohort_id="bench",
            in_cohort=True,
            computed_time="1700000000",
            message_id=f"bench:{index}",
            users=tuple(
                User(f"user-{n:08d}", {"plan": "pro"})
                for n in range(start, min(users, start + per_message))
            ),
        )
        batch.append({"Data": encode(message), "PartitionKey": message.message_id})
        records += 1
        if len(batch) == 100:
            kinesis.put_records(StreamARN=stream_arn, Records=batch)
            batch = []
    if batch:
        kinesis.put_records(StreamARN=stream_arn, Records=batch)
    return records


def put_floor(world: MotoWorld, users: int) -> float:
    """Seconds for one unconditional PutItem per user into a fresh table: moto's own cost."""
    dynamodb = world.client("dynamodb", world.customer_admin)
    dynamodb.create_table(
        TableName="bench-floor",
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
    started = time.perf_counter()
    for n in range(users):
        dynamodb.put_item(
            TableName="bench-floor",
            Item={"pk": {"S": "bench"}, "sk": {"S": f"user-{n:08d}"}, "in_cohort": {"BOOL": True}},
        )
    return time.perf_counter() - started


def main() -> None:
    """Apply `consumer: lambda`, publish, then time both consumers on the same records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=c.DEFAULT_CONSUMER_BATCH_SIZE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, moto_world(REGION) as world:
        archive = Path(tmp) / "lambda.zip"
        write_archive(project_entries(PROGRAM_DIR), archive)
        config = StackConfig(
            "bench",
            {
                c.CONFIG_CONSUMER: "lambda",
                c.CONFIG_CONSUMER_ARCHIVE: str(archive),
                c.CONFIG_CONSUMER_BATCH_SIZE: str(args.batch_size),
                c.CONFIG_STREAM_MODE: "PROVISIONED",
                c.CONFIG_SHARD_COUNT: str(args.shards),
            },
        )
        run = apply(config, session=world.customer_admin.session(REGION), region=REGION)
        stream_arn = run.outputs[c.OUTPUT_STREAM_ARN]
        t0 = time.perf_counter()
        records = publish(world, stream_arn, args.users, args.per_message)
        print(
            f"published {args.users:,} users in {records:,} records over {args.shards} shards"
            f" ({time.perf_counter() - t0:.1f} s); IAM enforced, in-process moto"
        )

        kinesis = world.client("kinesis", world.customer_admin)
        with MembershipStore(Path(tmp) / "cli.sqlite") as store:
            cli = Consumer(kinesis, stream_arn, store, from_start=True).consume(until_idle=True)
            cli_members = sum(1 for _ in store.members("bench"))
        (mapping,) = run.of_type(consumer_resources.MAPPING)
        assert mapping.id is not None
        simulator = MappingSimulator(world, mapping.id)
        report = simulator.poll()
        dynamodb = world.client("dynamodb", world.customer_admin)
        table = run.outputs[c.OUTPUT_MEMBERSHIP_TABLE]
        pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
        lambda_members = sum(page["Count"] for page in pages)
        floor_seconds = put_floor(world, min(args.users, 2000))

    cli_rate = args.users / cli.seconds
    lambda_rate = args.users / report.seconds
    print(
        f"(a) CLI consumer -> SQLite:        {cli.seconds:7.2f} s  {cli_rate:10,.0f} users/s"
        f"  ({cli_members:,} members)"
    )
    print(
        f"(b) simulated mapping -> DynamoDB: {report.seconds:7.2f} s  {lambda_rate:10,.0f} users/s"
        f"  ({lambda_members:,} items, {report.invocations} invocations of"
        f" {args.batch_size} records)"
    )
    floor_rate = min(args.users, 2000) / floor_seconds
    print(
        f"(c) bare PutItem loop (floor):      {floor_seconds:7.2f} s  {floor_rate:10,.0f} users/s"
        f"  (one unconditional PutItem per user, {min(args.users, 2000):,} users)"
    )
    print(report.render())
    print(f"ratio (a)/(b): {cli_rate / lambda_rate:.1f}x")
    print(f"ratio (c)/(b): {floor_rate / lambda_rate:.2f}x  (the handler against moto's own cost)")


if __name__ == "__main__":
    main()
