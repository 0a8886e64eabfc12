"""The shard lock: concurrent puts to one shard all land, and moto is restored afterwards."""

from concurrent.futures import ThreadPoolExecutor

import boto3
from moto import mock_aws
from moto.kinesis.models import Shard

from sandbox import moto_fixes


def _concurrent_puts(puts: int) -> int:
    with mock_aws():
        kinesis = boto3.client(
            "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        kinesis.create_stream(StreamName="one", ShardCount=1)

        def put(index: int) -> None:
            kinesis.put_records(
                StreamName="one",
                Records=[
                    {"Data": f"{index}-{n}".encode(), "PartitionKey": "k"} for n in range(500)
                ],
            )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, range(puts)))
        iterator = kinesis.get_shard_iterator(
            StreamName="one", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return len(kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"])


def test_every_concurrent_put_lands_while_installed() -> None:
    with moto_fixes.moto_fixes_installed():
        assert _concurrent_puts(8) == 8 * 500


def test_uninstall_restores_moto() -> None:
    original = Shard.__dict__["put_record"]

    with moto_fixes.moto_fixes_installed():
        assert Shard.__dict__["put_record"] is not original
        assert moto_fixes.is_installed()

    assert Shard.__dict__["put_record"] is original
    assert not moto_fixes.is_installed()


def test_without_the_fix_moto_loses_concurrent_records() -> None:
    # The reason the fix exists: plain moto overwrites records that race for a sequence number.
    assert not moto_fixes.is_installed()
    assert any(_concurrent_puts(8) < 8 * 500 for _ in range(10))  # stops at the first loss
