"""The consumer's model on a virtual clock: what bounds a cohort's first sync, and what it costs."""

from __future__ import annotations

from dataclasses import replace

from sandbox.consumer_model import LAMBDA_PAYLOAD_BYTES, Sizing, Workload, run
from sandbox.dynamodb_limits import DynamoDBLimits
from sync import lambda_handler, membership_writer

SIZING = Sizing(
    shards=4,
    parallelization=1,
    batch_size=10,
    timeout_seconds=60,
    writers=membership_writer.WRITERS,
    reserve_seconds=lambda_handler.reserve_ms(60_000) / 1000,
    write_shards=10,
    throttle_base_seconds=membership_writer.THROTTLE_BASE_SECONDS,
    throttle_cap_seconds=membership_writer.THROTTLE_CAP_SECONDS,
)
WORKLOAD = Workload(messages=20, users=1000, record_bytes=60_000)


def test_one_key_per_cohort_is_capped_by_one_partition() -> None:
    # WHEN 20,000 users go to one partition key, then to ten
    one = run(replace(SIZING, write_shards=1), WORKLOAD, DynamoDBLimits())
    ten = run(SIZING, WORKLOAD, DynamoDBLimits())
    # THEN one key takes at least 19 s (1,000 a second after a second's burst), ten keys the
    # table's 4,000 a second; both throttle, neither times out, nothing is written twice
    assert one.seconds >= 19.0 and one.partitions == 1
    assert ten.seconds <= 20_000 / 4000 + 1.0 and ten.partitions == 10
    assert one.throttled > 0 and ten.throttled > 0
    assert one.timeouts == ten.timeouts == 0
    assert ten.units_per_user == 1.0


def test_latency_bounds_a_lane_when_the_table_does_not() -> None:
    # GIVEN one shard, 32 writes in flight, 10 ms a call, and a table that never throttles
    roomy = DynamoDBLimits(
        latency_seconds=0.010,
        partition_write_units_per_second=1e9,
        table_write_units_per_second=1e9,
    )
    report = run(replace(SIZING, shards=1), Workload(4, 1000, 60_000), roomy)
    # THEN 4,000 users take 4,000 / 32 calls of 10 ms plus two idempotency calls a record
    calls = 4 * (-(-1000 // 32) + 2)
    assert abs(report.seconds - calls * 0.010) < 0.015
    assert report.throttled == 0


def test_a_short_timeout_retries_records_but_never_times_out() -> None:
    # GIVEN a timeout that one batch of 1,000-user records cannot finish in (one key)
    report = run(
        replace(SIZING, write_shards=1, timeout_seconds=8, batch_size=10),
        WORKLOAD,
        DynamoDBLimits(),
    )
    # THEN records are handed back unfinished and retried, never killed, all applied
    assert report.records_retried > 0 and report.timeouts == 0
    assert report.units_per_user > 1.0  # rewriting a retried record's users costs units too


def test_large_records_shrink_a_batch_to_lambdas_payload() -> None:
    # GIVEN six 900 KB records a shard: base64-encoded, five fit in 6 MB, six do not
    report = run(SIZING, Workload(24, 10, 900_000), DynamoDBLimits())
    # THEN each shard needs two invocations although the batch size (10) would take all six
    assert LAMBDA_PAYLOAD_BYTES == 6 * 1024 * 1024
    assert report.invocations == 4 * 2
