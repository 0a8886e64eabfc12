"""Throughput benchmark: paced delivery into a provisioned stream of N shards under the model.

Run: .venv/bin/python -m bench.throughput_bench [--shards 1 2 4] [--model-seconds 20]
     [--scale 4] [--users-per-message 100] [--senders 4]

In-process moto (mock_aws, with sandbox.moto_fixes so concurrent puts lose nothing) with
sandbox.faults' throughput model on: every shard admits 1 MiB/s and 1000 records/s of writes
(1 s of burst), on a clock running `scale` times faster than real time. The publisher gets that
model clock (its sleeps are scaled back to real time), so its pacing and backoff run in model
seconds. Each run sends `model_seconds` x N MiB of cohort messages (users with two properties,
message_id partition keys) to a fresh PROVISIONED stream, twice: seeded with the shard count,
and learning from throttling alone.

Printed per run: delivered bytes as a fraction of what the stream could accept from the first
send to the last acknowledgement, N x 1 MiB/s for that time plus the one second of burst every
shard starts with (so the burst cannot flatter a short run), and the throttled fraction of
PutRecords record-attempts (the model's own counters). Targets: >= 90% of capacity, <= 5% throttled.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import boto3
from botocore.config import Config
from moto import mock_aws

from bench.rows import emit
from sandbox.fault_plan import FaultPlan
from sandbox.faults import faults_installed
from sandbox.moto_fixes import moto_fixes_installed
from sync.limits import DEFAULT_SENDERS, SHARD_WRITE_BYTES_PER_SECOND
from sync.messages import OutgoingRecord, build_messages
from sync.options import DeliveryOptions
from sync.publisher import Publisher

REGION = "us-east-1"
TARGET_UTILIZATION = 0.90
TARGET_THROTTLED = 0.05
BURST_SECONDS = 1.0  # sandbox.throughput's write buckets start full: one second of capacity


@dataclass(frozen=True)
class Result:
    """One run's figures."""

    shards: int
    seeded: bool
    records: int
    mib: float
    model_seconds: float
    real_seconds: float
    utilization: float
    throttled_fraction: float
    calls: int

    def row(self) -> str:
        """One table row."""
        ok = self.utilization >= TARGET_UTILIZATION and self.throttled_fraction <= TARGET_THROTTLED
        return (
            f"| {self.shards} | {'shard count' if self.seeded else 'learned'} | "
            f"{self.records:,} | {self.mib:.1f} | {self.model_seconds:.1f} | "
            f"{self.real_seconds:.1f} | {self.calls:,} | **{self.utilization:.1%}** | "
            f"**{self.throttled_fraction:.2%}** | {'yes' if ok else 'NO'} |"
        )


def cohort_records(total_bytes: int, users_per_message: int) -> list[OutgoingRecord]:
    """Cohort messages adding up to at least `total_bytes`, built as a push builds them."""
    user = json.dumps({"user_id": "", "user_properties": {"city": "Berlin", "plan": "pro"}})
    per_user = len(user) + 20
    count = total_bytes // per_user + users_per_message
    users = (
        json.dumps(
            {
                "user_id": f"user-{i:010d}@example.com",
                "user_properties": {"city": "Berlin", "plan": "pro"},
            },
            separators=(",", ":"),
        )
        for i in range(count)
    )
    return list(
        build_messages(
            cohort_id="bench",
            cohort_name="Throughput bench",
            in_cohort=True,
            computed_time=str(int(time.time())),
            sync_id="bench-sync",
            first_sequence=0,
            users=users,
            max_users_per_message=users_per_message,
        )
    )


def run(
    shards: int,
    *,
    seeded: bool,
    model_seconds: float,
    scale: float,
    users_per_message: int,
    senders: int,
) -> Result:
    """Send `model_seconds` of capacity into a fresh N-shard stream; measure what went through."""
    capacity = shards * SHARD_WRITE_BYTES_PER_SECOND
    records = cohort_records(int(capacity * model_seconds), users_per_message)
    sent_bytes = sum(r.size_bytes for r in records)
    # botocore's retries off: the publisher alone decides what is re-sent and when.
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    with (
        mock_aws(),
        moto_fixes_installed(),
        faults_installed(FaultPlan(throughput=True, scale=scale)) as faults,
    ):
        kinesis = boto3.client("kinesis", region_name=REGION, config=config)
        name = f"bench-{shards}"
        kinesis.create_stream(
            StreamName=name,
            ShardCount=shards,
            StreamModeDetails={"StreamMode": "PROVISIONED"},
        )
        clock = faults.clock
        publisher = Publisher(
            kinesis,
            name,
            DeliveryOptions(senders=senders, shards=shards if seeded else None),
            clock=clock.now,
            sleep=lambda seconds: time.sleep(seconds / scale),
        )
        real_started = time.perf_counter()
        model_started = clock.now()
        report = publisher.send(records, on_acked=lambda ids: None)
        model_elapsed = clock.now() - model_started
        real_elapsed = time.perf_counter() - real_started
        seen, throttled = faults.records_seen, faults.records_throttled
    if report.failed or report.records_sent != len(records):
        raise SystemExit(f"{len(report.failed)} record(s) not delivered: the bench is invalid")
    return Result(
        shards=shards,
        seeded=seeded,
        records=len(records),
        mib=sent_bytes / 2**20,
        model_seconds=model_elapsed,
        real_seconds=real_elapsed,
        utilization=sent_bytes / ((model_elapsed + BURST_SECONDS) * capacity),
        throttled_fraction=throttled / seen if seen else 0.0,
        calls=report.put_records_calls,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run every configuration and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.throughput_bench")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--model-seconds", type=float, default=20.0)
    parser.add_argument("--scale", type=float, default=4.0, help="model seconds per real second")
    parser.add_argument("--users-per-message", type=int, default=100)
    parser.add_argument("--senders", type=int, default=DEFAULT_SENDERS)
    parser.add_argument(
        "--hog", action="store_true", help="run a CPU-bound process beside it (a loaded machine)"
    )
    args = parser.parse_args(argv)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        return _table(args)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def _table(args: argparse.Namespace) -> int:
    """Every configuration's row, and one target row each."""
    print(
        "| shards | capacity from | records | MiB | model s | real s | calls | "
        "of capacity | throttled | targets met |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for shards in args.shards:
        for seeded in (True, False):
            result = run(
                shards,
                seeded=seeded,
                model_seconds=args.model_seconds,
                scale=args.scale,
                users_per_message=args.users_per_message,
                senders=args.senders,
            )
            print(result.row(), flush=True)
            met = (
                result.utilization >= TARGET_UTILIZATION
                and result.throttled_fraction <= TARGET_THROTTLED
            )
            emit(
                f"paced delivery, {shards} shard(s), {'hinted' if seeded else 'learned'}"
                + (", CPU hog beside it" if args.hog else ""),
                f"{result.utilization:.1%} of capacity, {result.throttled_fraction:.2%} throttled",
                f">= {TARGET_UTILIZATION:.0%}, <= {TARGET_THROTTLED:.0%} throttled",
                met,
            )
    # Targets are reported as rows; a missed one on a loaded machine is not an error.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
