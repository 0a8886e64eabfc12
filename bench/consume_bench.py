"""Consumer throughput against in-process moto: Consumer.consume versus a bare GetRecords loop."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from sync.consumer import Consumer
from sync.contract import CohortMessage, User, encode
from sync.limits import DEFAULT_USERS_PER_MESSAGE, GET_RECORDS_MAX_RECORDS, MAX_PUT_RECORDS_BYTES
from sync.membership_store import MembershipStore

STREAM = "bench-cohorts"
REGION = "us-east-1"


def publish(kinesis: Any, users: int, per_message: int) -> int:
    """Put `users` entering users, `per_message` a record; return the record count."""
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    records = 0
    for index, start in enumerate(range(0, users, per_message)):
        message = CohortMessage(
            cohort_name="Bench cohort",
            cohort_id="bench",
            in_cohort=True,
            computed_time="1700000000",
            message_id=f"bench:{index}",
            users=tuple(
                User(f"user-{n:08d}", {"plan": "pro", "n": n})
                for n in range(start, min(users, start + per_message))
            ),
        )
        data = encode(message)
        if batch and (len(batch) == 500 or batch_bytes + len(data) > MAX_PUT_RECORDS_BYTES - 4096):
            kinesis.put_records(StreamName=STREAM, Records=batch)
            batch, batch_bytes = [], 0
        batch.append({"Data": data, "PartitionKey": message.message_id})
        batch_bytes += len(data) + len(message.message_id)
        records += 1
    if batch:
        kinesis.put_records(StreamName=STREAM, Records=batch)
    return records


def raw_floor(kinesis: Any) -> tuple[float, int]:
    """Seconds to read every record of every shard with no processing at all."""
    started = time.perf_counter()
    count = 0
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            response = kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_MAX_RECORDS)
            count += len(response["Records"])
            iterator = response["NextShardIterator"]
            if not response["Records"]:
                break
    return time.perf_counter() - started, count


def main() -> None:
    """Publish, then time the raw read and the consumer, and print both and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--per-message", type=int, default=DEFAULT_USERS_PER_MESSAGE)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=args.shards)
        t0 = time.perf_counter()
        records = publish(kinesis, args.users, args.per_message)
        print(
            f"published {args.users:,} users in {records:,} records over {args.shards} shards"
            f" ({time.perf_counter() - t0:.1f} s)"
        )
        floor_seconds, floor_records = raw_floor(kinesis)
        print(f"(a) raw GetRecords loop:   {floor_seconds:6.2f} s  ({floor_records:,} records)")
        with MembershipStore(Path(tmp) / "state.db") as store:
            report = Consumer(kinesis, STREAM, store, from_start=True).consume()
            members = sum(1 for _ in store.members("bench"))
        print(
            f"(b) Consumer.consume:      {report.seconds:6.2f} s  ({report.records:,} records,"
            f" {report.applied:,} applied, {members:,} members)"
        )
        print(f"ratio (b)/(a): {report.seconds / floor_seconds:.2f}x  (target <= 2x)")


if __name__ == "__main__":
    main()
