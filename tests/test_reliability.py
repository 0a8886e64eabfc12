"""Reliability: the whole loop under every Kinesis fault class, one at a time and mixed.

Each test provisions the program into a two-account moto world, pushes two days of a cohort
through Amplitude's assumed role while sandbox.faults injects the fault, consumes the stream with
the customer's credentials and compares the membership with the day-2 snapshot. Around that it
checks what at-least-once promises: nothing lost; duplicates only of records whose answer was
lost, byte-identical (same message_id); tries bounded; the push report's counts equal what the
client and the fault layer observed.
"""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from provisioning import constants as c
from sandbox.engine.stack import StackConfig
from sandbox.fault_plan import FaultKind, FaultPlan, Rate
from sandbox.faults import FaultController, faults_installed
from sandbox.pytest_plugin import apply_destination
from sandbox.streams import read_records
from sandbox.world import MotoWorld, moto_world
from sync.consumer import Consumer
from sync.contract import decode
from sync.credentials import assume_role_session
from sync.destination import Destination
from sync.membership_store import MembershipStore, members
from sync.push import DeliveryOptions, PushReport, PushRequest, run_push

pytestmark = pytest.mark.integration

REGION = "us-east-1"
COHORT_ID = "rel01"
DAY1_USERS = 2000
# Day 2: the first 200 leave, 300 join (staying users' property changes are not sent).
DAY2_GONE, DAY2_NEW = 200, 300
# Small messages in small requests: about 60 PutRecords calls per run.
OPTIONS = DeliveryOptions(
    max_users_per_message=4,
    max_records_per_request=10,
    backoff_base_seconds=0.002,
    backoff_cap_seconds=0.05,
)
THROTTLE_CODES = {"ProvisionedThroughputExceededException", "KMSThrottlingException"}


def day1() -> dict[str, dict[str, str]]:
    return {
        f"user{i:05d}@example.com": {"city": "Berlin", "plan": "pro"} for i in range(DAY1_USERS)
    }


def day2() -> dict[str, dict[str, str]]:
    users = {}
    for i in range(DAY2_GONE, DAY1_USERS + DAY2_NEW):
        users[f"user{i:05d}@example.com"] = {
            "city": "Lisbon" if i >= DAY1_USERS else "Berlin",
            "plan": "pro",
        }
    return users


def write_snapshot(path: Path, users: dict[str, dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "city", "plan"])
        for user_id, props in users.items():
            writer.writerow([user_id, props["city"], props["plan"]])
    return path


@dataclass
class PutRecordsSpy:
    """Every PutRecords call the client made: (records in it, error code or exception name)."""

    calls: list[tuple[int, str | None]] = field(default_factory=list)
    connects: int = 0
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, session: boto3.Session) -> None:
        events = session.events
        events.register("before-parameter-build.kinesis.PutRecords", self._before)
        events.register("after-call.kinesis.PutRecords", self._after)
        events.register("after-call-error.kinesis.PutRecords", self._failed)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        # One request's events all run on the sender thread that makes it.
        self._local.count = len(params["Records"])

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        with self._lock:
            self.calls.append((self._local.count, code))

    def _failed(self, exception: Exception, **_: Any) -> None:
        with self._lock:
            self.calls.append((self._local.count, type(exception).__name__))

    def records_in(self, codes: set[str]) -> int:
        return sum(n for n, code in self.calls if code in codes)


@dataclass
class Outcome:
    """What one faulted run produced, for the assertions."""

    reports: list[PushReport]
    faults: FaultController
    spy: PutRecordsSpy
    consumed: dict[str, dict[str, str]]
    stored: dict[str, list[bytes]]  # message_id -> every copy's data, in stream order
    landed_ids: Counter[str]  # message_ids of records stored although their answer was lost


def read_stream(world: MotoWorld, stream_arn: str) -> dict[str, list[bytes]]:
    kinesis = world.client("kinesis", world.customer_admin)
    stored: dict[str, list[bytes]] = defaultdict(list)
    for record in read_records(kinesis, stream_arn):
        message_id = json.loads(record["Data"])["message_id"]
        if message_id != "probe:0":
            stored[message_id].append(record["Data"])
    return stored


def run_loop(tmp_path: Path, plan: FaultPlan, options: DeliveryOptions = OPTIONS) -> Outcome:
    """Provision, push day 1 and day 2 under `plan`, consume; everything the tests compare."""
    spy = PutRecordsSpy()
    snapshots = [
        write_snapshot(tmp_path / "day1.csv", day1()),
        write_snapshot(tmp_path / "day2.csv", day2()),
    ]
    with moto_world(REGION) as world:
        applied = apply_destination(world, StackConfig(stack="reliability"), tmp_path)
        destination: Destination = applied.destination

        def connect() -> boto3.Session:
            spy.connects += 1
            session = assume_role_session(
                world.amplitude.session(REGION),
                destination.role_arn,
                session_name="amplitude-cohort-sync",
                external_id=applied.outputs.get(c.OUTPUT_EXTERNAL_ID),
                region=REGION,
            )
            spy.install(session)
            return session

        reports = []
        with faults_installed(plan) as faults:
            for day, snapshot in enumerate(snapshots, start=1):
                request = PushRequest(
                    destination=destination,
                    snapshot=snapshot,
                    cohort_id=COHORT_ID,
                    cohort_name="Reliability",
                    state=tmp_path / "state.duckdb",
                    computed_time=str(1_700_000_000 + day * 86_400),
                    options=options,
                    skip_preflight=True,
                )
                reports.append(run_push(request, connect=connect))
        stored = read_stream(world, destination.stream_arn)
        kinesis = world.client("kinesis", world.customer_admin)
        with MembershipStore(tmp_path / "consumer.sqlite") as store:
            Consumer(kinesis, destination.stream_arn, store, from_start=True).consume(
                until_idle=True
            )
            consumed = {m.user_id: dict(m.user_properties or {}) for m in members(store, COHORT_ID)}
    landed_ids = Counter(decode(data).message_id for data in faults.landed_data)
    return Outcome(reports, faults, spy, consumed, stored, landed_ids)


def assert_delivered_at_least_once(outcome: Outcome) -> None:
    """The membership is day 2's; nothing lost; duplicates only where an answer was lost."""
    assert outcome.consumed == day2()
    assert all(report.ok for report in outcome.reports)
    staged = sum(report.messages for report in outcome.reports)
    assert len(outcome.stored) == staged
    assert sum(report.records for report in outcome.reports) == staged
    for message_id, copies in outcome.stored.items():
        # A duplicate is the very same record: consumers may dedupe on message_id.
        assert len(set(copies)) == 1, message_id
        assert len(copies) == 1 + outcome.landed_ids[message_id], message_id


def assert_reports_truthful(outcome: Outcome) -> None:
    """Calls, record tries and throttles in the reports equal what was observed."""
    reports, spy, faults = outcome.reports, outcome.spy, outcome.faults
    calls = sum(r.put_records_calls for r in reports)
    assert calls == len(spy.calls) == faults.calls_seen["PutRecords"]
    tries = sum(n for n, _ in spy.calls)
    assert tries == sum(r.records + r.retries for r in reports)
    whole_request_throttled = spy.records_in(THROTTLE_CODES)
    assert sum(r.throttles for r in reports) == faults.records_throttled + whole_request_throttled
    # Tries bounded: no record needed more than max_tries (all acked, none failed).
    assert sum(r.retries for r in reports) <= sum(r.records for r in reports) * (
        OPTIONS.max_tries - 1
    )


# --- one fault class at a time ---------------------------------------------------------------

RATE = 0.15  # high enough that every run meets the fault dozens of times


@pytest.mark.parametrize(
    ("kind", "observed"),
    [
        (FaultKind.RECORD_INTERNAL, None),
        (FaultKind.THROTTLE, "ProvisionedThroughputExceededException"),
        (FaultKind.KMS_THROTTLE, "KMSThrottlingException"),
        (FaultKind.UNAVAILABLE, "ServiceUnavailable"),
        (FaultKind.RESET, "ConnectionClosedError"),
        (FaultKind.TIMEOUT, "ReadTimeoutError"),
        (FaultKind.TIMEOUT_LANDED, "ReadTimeoutError"),
        (FaultKind.EXPIRED_TOKEN, "ExpiredTokenException"),
    ],
    ids=lambda value: str(value),
)
def test_each_fault_class_loses_nothing(tmp_path: Path, kind: FaultKind, observed: str) -> None:
    # GIVEN the fault firing on 15% of PutRecords calls (of records, for record-internal)
    plan = FaultPlan(seed=11, **{kind.field_name: Rate(RATE)})
    # WHEN both days are pushed through it and consumed
    outcome = run_loop(tmp_path, plan)
    # THEN the fault really happened, and the loop delivered exactly what at-least-once allows
    assert outcome.faults.faults[kind] >= 5
    if observed is not None:
        assert (
            sum(1 for _, code in outcome.spy.calls if code == observed)
            == (outcome.faults.faults[kind])
        )
    assert_delivered_at_least_once(outcome)
    assert_reports_truthful(outcome)
    retries = sum(r.retries for r in outcome.reports)
    if kind is FaultKind.RECORD_INTERNAL:
        assert retries == outcome.faults.faults[kind]
    else:
        assert retries == sum(n for n, code in outcome.spy.calls if code is not None)
    if kind is FaultKind.TIMEOUT_LANDED:
        assert sum(outcome.landed_ids.values()) > 0
        assert sum(len(copies) - 1 for copies in outcome.stored.values()) == len(
            outcome.faults.landed
        )
    else:
        assert outcome.faults.landed == []
        assert all(len(copies) == 1 for copies in outcome.stored.values())
    if kind is FaultKind.EXPIRED_TOKEN:
        # The role was assumed again after expiries (once per push, plus renewals).
        assert outcome.spy.connects > len(outcome.reports)


def test_tries_are_bounded_and_undelivered_records_stay_in_the_outbox(tmp_path: Path) -> None:
    # GIVEN Kinesis unavailable for every call, and three tries per record
    options = replace(OPTIONS, max_tries=3)
    outcome = run_loop(tmp_path, FaultPlan(unavailable=Rate(1.0)), options)
    # THEN each record was tried exactly three times, then reported and kept for a replay
    day1_report = outcome.reports[0]
    assert day1_report.records == 0
    assert len(day1_report.failed) == day1_report.messages == day1_report.pending_left
    assert day1_report.retries == 2 * day1_report.messages
    assert sum(n for n, _ in outcome.spy.calls) == 3 * sum(r.pending_left for r in outcome.reports)
    assert not day1_report.ok
    assert outcome.stored == {}
    assert outcome.consumed == {}


# --- mixed, at realistic rates ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 29])
def test_mixed_faults_at_realistic_rates_lose_nothing(tmp_path: Path, seed: int) -> None:
    # GIVEN every fault class at once, at rates a bad day might bring, and shard throughput
    # limits on a clock 50x faster than real time
    plan = FaultPlan(
        seed=seed,
        throughput=True,
        scale=50,
        record_internal=Rate(0.02),
        throttle=Rate(0.02),
        kms_throttle=Rate(0.01),
        unavailable=Rate(0.01),
        internal=Rate(0.01),
        reset=Rate(0.01),
        timeout=Rate(0.01),
        timeout_landed=Rate(0.02),
        reset_landed=Rate(0.01),
        expired_token=Rate(0.01),
    )
    outcome = run_loop(tmp_path, plan)
    # THEN several classes fired, and the delivery guarantees and report truth still hold
    fired = {kind for kind, n in outcome.faults.faults.items() if n > 0}
    assert len(fired) >= 4
    assert outcome.faults.faults.total() >= 8
    assert_delivered_at_least_once(outcome)
    assert_reports_truthful(outcome)
