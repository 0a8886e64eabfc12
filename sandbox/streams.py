"""Reading a whole stream back, as tests and benchmarks check what Kinesis holds."""

from __future__ import annotations

from typing import Any

PAGE_RECORDS = 10_000  # GetRecords' own maximum


def read_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard, oldest first per shard; `stream` is a name or an ARN."""
    target = {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
    # moto resolves an ARN-made iterator only when GetRecords names the ARN again.
    on_read = {"StreamARN": stream} if "StreamARN" in target else {}
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(**target)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            **target, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(**on_read, ShardIterator=iterator, Limit=PAGE_RECORDS)
            records.extend(page["Records"])
            # An empty page is the shard's tip (moto never ends an open shard's iterator).
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records
