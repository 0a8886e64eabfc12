"""Provision → push day 1 → push day 2 → consume: membership equals day 2, however delivered."""

import csv
import dataclasses
import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from sandbox.pytest_plugin import AppliedDestination
from sandbox.streams import read_records
from sync.consumer import Consumer
from sync.destination import Destination
from sync.membership_store import MembershipStore, members
from sync.push import PushRequest, run_push

pytestmark = [pytest.mark.e2e]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def day2() -> dict[str, dict[str, str]]:
    with (EXAMPLES / "day2.csv").open(encoding="utf-8") as handle:
        return {row.pop("user_id"): row for row in csv.DictReader(handle)}


def push_both_days(applied: AppliedDestination, session: boto3.Session, state: Path) -> None:
    for day, name in enumerate(("day1.csv", "day2.csv")):
        request = PushRequest(
            destination=applied.destination,
            snapshot=EXAMPLES / name,
            cohort_id="gs72ns",
            cohort_name="Test Cohort",
            state=state,
            computed_time=str(1_700_000_000 + day * 86_400),
        )
        assert run_push(request, connect=lambda: session).ok


def read_stream(kinesis: Any, name: str) -> list[dict[str, Any]]:
    return read_records(kinesis, name)


def consume(kinesis: Any, destination: Destination, state: Path) -> dict[str, dict[str, Any]]:
    with MembershipStore(state) as store:
        Consumer(kinesis, destination.stream_arn, store, from_start=True).consume(until_idle=True)
        return {m.user_id: dict(m.user_properties or {}) for m in members(store, "gs72ns")}


def test_shuffled_and_duplicated_delivery_gives_the_same_members(
    cohort_destination: AppliedDestination, amplitude_session: boto3.Session, tmp_path: Path
) -> None:
    # GIVEN both days delivered, then every record re-put twice, shuffled, into a second stream
    push_both_days(cohort_destination, amplitude_session, tmp_path / "state.duckdb")
    world = cohort_destination.world
    kinesis = world.client("kinesis", world.customer_admin)
    delivered = read_stream(kinesis, cohort_destination.destination.stream_name)
    replayed = [*delivered, *delivered]
    random.Random(7).shuffle(replayed)
    kinesis.create_stream(StreamName="replayed", ShardCount=3)
    for record in replayed:
        kinesis.put_record(
            StreamName="replayed", Data=record["Data"], PartitionKey=record["PartitionKey"]
        )
    arn = kinesis.describe_stream_summary(StreamName="replayed")["StreamDescriptionSummary"]
    other = dataclasses.replace(
        cohort_destination.destination, stream_name="replayed", stream_arn=arn["StreamARN"]
    )

    # WHEN the consumer reads the shuffled, duplicated stream
    got = consume(kinesis, other, tmp_path / "consumer.sqlite")

    # THEN it materializes exactly day 2
    assert len(replayed) == 2 * len(delivered) >= 6
    assert got == day2()
