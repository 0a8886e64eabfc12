"""sync.publisher: only refused records are re-sent, only acknowledged records are acked."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from sandbox.fault_plan import FaultPlan, Rate, Schedule
from sandbox.faults import faults_installed
from sandbox.streams import read_records
from sync.contract import decode
from sync.errors import DeliveryError, DeliveryRefusedError, PreflightError
from sync.messages import OutgoingRecord, build_messages
from sync.options import DeliveryOptions
from sync.publisher import MAX_UNPROVEN_RENEWALS, DeliveryReport, ProgressEvent, Publisher

STREAM = "cohorts"


def records(n: int) -> list[OutgoingRecord]:
    return [OutgoingRecord(f"s:{i}", f"s:{i}", f"d{i}".encode(), 1, True) for i in range(n)]


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutRecords",
    )


Script = Callable[[int, list[str]], dict[str, Any] | Exception | None]


class FakeKinesis:
    """Answers PutRecords from a script: (call index, partition keys) -> response, error or None.

    None means success. `landed` counts records Kinesis stored, timed-out calls included.
    """

    def __init__(self, script: Script, clock: FakeClock | None = None) -> None:
        self.script = script
        self.clock = clock
        self.calls: list[list[str]] = []
        self.landed: Counter[str] = Counter()
        self.kwargs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def put_records(self, *, Records: list[dict[str, Any]], **target: str) -> dict[str, Any]:
        keys = [r["PartitionKey"] for r in Records]
        with self._lock:
            index = len(self.calls)
            self.calls.append(keys)
            self.kwargs.append(target)
            if self.clock is not None:
                self.clock.now += 1.0  # each call takes a second of fake time
        outcome = self.script(index, keys)
        if isinstance(outcome, Exception):
            if isinstance(outcome, ReadTimeoutError):
                self.landed.update(keys)  # the request landed; only the answer was lost
            raise outcome
        if outcome is None:
            outcome = {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"} for _ in keys]}
        for key, entry in zip(keys, outcome["Records"], strict=True):
            if "ErrorCode" not in entry:
                self.landed[key] += 1
        return outcome


class FakeClock:
    """Fake monotonic time moved by the recording sleep and by each fake call."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def partial(failures: dict[str, str]) -> Callable[[list[str]], dict[str, Any]]:
    def response(keys: list[str]) -> dict[str, Any]:
        entries = [
            {"ErrorCode": failures[k], "ErrorMessage": "slow down"}
            if k in failures
            else {"SequenceNumber": "1"}
            for k in keys
        ]
        return {"FailedRecordCount": sum(k in failures for k in keys), "Records": entries}

    return response


class Acks:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, ids: list[str]) -> None:
        self.calls.append(ids)

    @property
    def ids(self) -> list[str]:
        return [i for call in self.calls for i in call]


COLLABORATORS = frozenset({"sleep", "clock", "rng", "on_progress", "reconnect"})


def publisher(kinesis: Any, clock: FakeClock, **kwargs: Any) -> Publisher:
    """A one-sender publisher on a fake clock; kwargs: DeliveryOptions fields or collaborators."""
    helpers: dict[str, Any] = {"sleep": clock.sleep, "clock": clock, "rng": random.Random(7)}
    helpers.update({k: v for k, v in kwargs.items() if k in COLLABORATORS})
    settings = {"senders": 1, **{k: v for k, v in kwargs.items() if k not in COLLABORATORS}}
    return Publisher(kinesis, STREAM, DeliveryOptions(**settings), **helpers)


def expected_delays(*ceilings: float) -> list[float]:
    rng = random.Random(7)
    return [rng.uniform(0.0, c) for c in ceilings]


@pytest.mark.unit
def test_partial_failure_resends_only_the_failed_records() -> None:
    # GIVEN Kinesis refuses two of five records in the first call
    first = partial({"s:1": "ProvisionedThroughputExceededException", "s:3": "InternalFailure"})
    clock = FakeClock()
    kinesis = FakeKinesis(lambda i, keys: first(keys) if i == 0 else None)
    acks = Acks()
    # WHEN the publisher sends them
    report = publisher(kinesis, clock).send(records(5), acks)
    # THEN only the two refused records travel again, after one jittered backoff
    assert kinesis.calls == [["s:0", "s:1", "s:2", "s:3", "s:4"], ["s:1", "s:3"]]
    assert clock.sleeps == pytest.approx(expected_delays(1.0))
    assert acks.calls == [["s:0", "s:2", "s:4"], ["s:1", "s:3"]]
    assert kinesis.landed == Counter({f"s:{i}": 1 for i in range(5)})
    assert (report.records_sent, report.put_records_calls, report.retries, report.throttles) == (
        5,
        2,
        2,
        1,
    )
    assert report.bytes_sent == sum(r.size_bytes for r in records(5))
    assert report.failed == ()
    assert kinesis.kwargs[0] == {"StreamName": STREAM}


@pytest.mark.unit
def test_backoff_waits_exactly_the_jittered_delay_when_nothing_else_is_in_flight() -> None:
    clock = FakeClock()
    # Calls take no fake time here, so each sleep is the whole delay before the next try.
    always_refuse = partial({"s:0": "InternalFailure"})
    kinesis = FakeKinesis(lambda i, keys: always_refuse(keys))
    report = publisher(kinesis, clock, max_tries=4).send(records(1), Acks())
    delays = expected_delays(1.0, 2.0, 4.0)
    assert clock.sleeps == pytest.approx(delays)
    assert kinesis.calls == [["s:0"]] * 4
    assert report.failed == ("s:0",)
    assert report.retries == 3
    assert report.records_sent == 0


@pytest.mark.unit
def test_records_that_exhaust_their_tries_are_reported_and_never_acked() -> None:
    clock = FakeClock()
    refuse = partial({"s:1": "ProvisionedThroughputExceededException"})
    kinesis = FakeKinesis(lambda i, keys: refuse(keys), clock)
    acks = Acks()
    report = publisher(kinesis, clock, max_tries=3).send(records(3), acks)
    assert Counter(k for call in kinesis.calls for k in call)["s:1"] == 3
    assert sorted(acks.ids) == ["s:0", "s:2"]
    assert report.failed == ("s:1",)
    assert report.throttles == 3
    assert report.to_json()["failed"] == ["s:1"]


@pytest.mark.unit
def test_retries_coalesce_into_the_next_request_with_fresh_records() -> None:
    # GIVEN 1200 records and ten refused in the first call of 500
    clock = FakeClock()
    refused = {f"s:{i}": "ProvisionedThroughputExceededException" for i in range(0, 500, 50)}
    first = partial(refused)
    kinesis = FakeKinesis(lambda i, keys: first(keys) if i == 0 else None, clock)
    acks = Acks()
    # Unpaced: the retry mechanics alone (a pacer would shrink requests after the throttle)
    report = publisher(kinesis, clock, pacing=None).send(records(1200), acks)
    # THEN the ten retries ride along with fresh records: 3 calls, the minimum for 1210 sends
    assert [len(c) for c in kinesis.calls] == [500, 500, 210]
    assert kinesis.calls[2][:10] == list(refused)
    assert report.put_records_calls == 3
    assert sorted(acks.ids) == sorted(f"s:{i}" for i in range(1200))
    assert clock.sleeps == []


@pytest.mark.unit
def test_whole_request_throttle_resends_the_whole_batch_after_backoff() -> None:
    clock = FakeClock()
    kinesis = FakeKinesis(
        lambda i, keys: client_error("ProvisionedThroughputExceededException") if i < 2 else None
    )
    acks = Acks()
    # Unpaced: only the backoff sleeps (a pacer would add its own after the throttle)
    report = publisher(kinesis, clock, pacing=None).send(records(4), acks)
    assert kinesis.calls == [["s:0", "s:1", "s:2", "s:3"]] * 3
    assert clock.sleeps == pytest.approx(expected_delays(1.0, 2.0))
    assert acks.calls == [["s:0", "s:1", "s:2", "s:3"]]
    assert (report.throttles, report.retries, report.put_records_calls) == (8, 8, 3)


@pytest.mark.unit
@pytest.mark.parametrize(
    "error",
    [
        client_error("KMSThrottlingException"),
        client_error("ServiceUnavailable", 503),
        client_error("SomethingNew", 500),
        ReadTimeoutError(endpoint_url="http://kinesis"),
    ],
    ids=["kms-throttle", "unavailable", "unknown-5xx", "read-timeout"],
)
def test_transient_request_errors_are_retried(error: Exception) -> None:
    clock = FakeClock()
    kinesis = FakeKinesis(lambda i, keys: error if i == 0 else None)
    acks = Acks()
    report = publisher(kinesis, clock).send(records(2), acks)
    assert len(kinesis.calls) == 2
    assert acks.ids == ["s:0", "s:1"]
    assert report.records_sent == 2


@pytest.mark.unit
def test_a_timeout_that_landed_duplicates_but_acks_once() -> None:
    clock = FakeClock()
    kinesis = FakeKinesis(
        lambda i, keys: ReadTimeoutError(endpoint_url="http://kinesis") if i == 0 else None
    )
    acks = Acks()
    publisher(kinesis, clock).send(records(3), acks)
    # Stored twice (consumers dedupe on message_id), acknowledged once.
    assert kinesis.landed == Counter({"s:0": 2, "s:1": 2, "s:2": 2})
    assert acks.ids == ["s:0", "s:1", "s:2"]


@pytest.mark.unit
def test_access_denied_stops_sending_and_lists_every_unsent_record() -> None:
    # GIVEN three requests' worth of records and a role that loses access on the second
    clock = FakeClock()
    kinesis = FakeKinesis(lambda i, keys: client_error("AccessDeniedException") if i == 1 else None)
    acks = Acks()
    with pytest.raises(DeliveryError) as info:
        publisher(kinesis, clock, max_records_per_request=2).send(records(6), acks)
    error = info.value
    # THEN no new work was sent, and the error says what to do
    assert isinstance(error, DeliveryRefusedError)
    assert len(kinesis.calls) == 2
    assert str(error) == (
        "AccessDeniedException from PutRecords on cohorts: role lacks kinesis:PutRecords on "
        "cohorts: re-run `pulumi up` / check the policy attachment (An error occurred "
        "(AccessDeniedException) when calling the PutRecords operation: "
        "AccessDeniedException happened)"
    )
    assert error.code == "AccessDeniedException"
    assert error.unsent == ("s:2", "s:3", "s:4", "s:5")
    assert isinstance(error.__cause__, ClientError)
    assert acks.ids == ["s:0", "s:1"]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (
            "ResourceNotFoundException",
            "stream arn:aws:kinesis:us-east-1:123456789012:stream/c not found",
        ),
        ("KMSAccessDeniedException", "role lacks kms:GenerateDataKey on the KMS key of arn"),
        ("KMSDisabledException", "is disabled: enable it"),
        ("ValidationException", "rejected as invalid"),
    ],
)
def test_non_retryable_codes_name_the_fix(code: str, fix: str) -> None:
    clock = FakeClock()
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/c"
    kinesis = FakeKinesis(lambda i, keys: client_error(code))
    with pytest.raises(DeliveryRefusedError) as info:
        Publisher(kinesis, arn, DeliveryOptions(senders=1), sleep=clock.sleep, clock=clock).send(
            records(1), Acks()
        )
    assert str(info.value).startswith(f"{code} from PutRecords on {arn}: ")
    assert fix in str(info.value)
    assert info.value.unsent == ("s:0",)
    assert kinesis.kwargs == [{"StreamARN": arn}]


@pytest.mark.unit
def test_credentials_that_cannot_refresh_stop_delivery() -> None:
    clock = FakeClock()
    kinesis = FakeKinesis(
        lambda i, keys: PreflightError("cannot assume role arn:aws:iam::1:role/r")
    )
    with pytest.raises(DeliveryRefusedError) as info:
        publisher(kinesis, clock).send(records(1), Acks())
    assert info.value.code == "ExpiredTokenException"
    assert "could not be refreshed" in str(info.value)
    assert "cannot assume role arn:aws:iam::1:role/r" in str(info.value)


@pytest.mark.unit
def test_backoff_ceiling_doubles_from_base_to_cap() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    pub = Publisher(FakeKinesis(lambda i, k: None), STREAM, rng=Top())
    assert [pub.backoff_seconds(n) for n in range(1, 11)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        64.0,
        128.0,
        128.0,
        128.0,
    ]


@pytest.mark.unit
def test_invalid_options_are_refused_all_at_once_before_any_publisher_exists() -> None:
    with pytest.raises(ValueError) as info:
        DeliveryOptions(senders=0, max_tries=0, backoff_base_seconds=0, max_records_per_request=501)
    assert str(info.value) == (
        "--senders 0: must be a whole number from 1 to 64; "
        "--max-tries 0: must be a whole number from 1 to 100; "
        "backoff 0..128.0 s: need 0 < base <= cap; "
        "max_records_per_request 501: must be 1..500 (Kinesis's PutRecords limit)"
    )


@pytest.mark.unit
def test_an_empty_stream_name_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_name '': must name a stream or be its ARN"):
        Publisher(object(), "")


@pytest.mark.unit
def test_the_publisher_sends_as_its_options_say() -> None:
    # GIVEN options that differ from every default the publisher could fall back on
    clock = FakeClock()
    refuse_first = partial({"s:0": "InternalFailure"})
    kinesis = FakeKinesis(lambda i, keys: refuse_first(keys))
    options = DeliveryOptions(
        senders=2,
        max_tries=2,
        backoff_base_seconds=0.5,
        backoff_cap_seconds=0.5,
        max_records_per_request=3,
        pacing=None,
    )
    # WHEN it sends seven records, the first refused on every try
    pub = Publisher(kinesis, STREAM, options, sleep=clock.sleep, clock=clock)
    report = pub.send(records(7), Acks())
    # THEN requests hold at most three records, the refused one gets exactly two tries
    assert pub.options is options
    assert max(len(keys) for keys in kinesis.calls) == 3
    assert report.failed == ("s:0",)
    assert sum("s:0" in keys for keys in kinesis.calls) == 2
    assert report.records_sent == 6


@pytest.mark.unit
def test_senders_run_put_records_concurrently_and_progress_is_reported() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def script(index: int, keys: list[str]) -> None:
        # The first call goes alone (the pacer's slow start waits for Kinesis's first answer);
        # the four after it would time out here unless they are in flight at once.
        if 1 <= index <= 4:
            barrier.wait()
        return None

    events: list[ProgressEvent] = []
    pub = Publisher(
        FakeKinesis(script),
        STREAM,
        DeliveryOptions(senders=4, max_records_per_request=10),
        on_progress=events.append,
    )
    acks = Acks()
    report = pub.send(records(80), acks)
    assert report.put_records_calls == 8
    assert sorted(acks.ids) == sorted(f"s:{i}" for i in range(80))
    assert [e.put_records_calls for e in events][-1] == 8
    assert events[-1].records_acked == 80


# --- against moto ----------------------------------------------------------------------------


@pytest.fixture
def kinesis() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


class SerializedPuts:
    """moto's shards number records as max + 1 without a lock: concurrent puts to one shard can
    overwrite each other. Four senders still run; their calls reach moto one at a time."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def put_records(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._client.put_records(**kwargs)


def read_all(client: Any) -> list[bytes]:
    return [record["Data"] for record in read_records(client, STREAM)]


@pytest.mark.integration
def test_every_record_arrives_exactly_once_in_moto(kinesis: Any) -> None:
    users = [f'{{"user_id":"u{i}","user_properties":{{"n":{i}}}}}' for i in range(6000)]
    sent = list(
        build_messages(
            cohort_id="c",
            cohort_name="C",
            in_cohort=True,
            computed_time="1700000000",
            sync_id="s",
            first_sequence=0,
            users=users,
            max_users_per_message=5,
        )
    )
    acks = Acks()
    report = Publisher(SerializedPuts(kinesis), STREAM).send(iter(sent), acks)
    stored = read_all(kinesis)
    assert Counter(decode(d).message_id for d in stored) == Counter(r.message_id for r in sent)
    assert sorted(stored) == sorted(r.data for r in sent)
    assert sorted(acks.ids) == sorted(r.message_id for r in sent)
    assert report == DeliveryReport(
        records_sent=1200,
        bytes_sent=sum(r.size_bytes for r in sent),
        put_records_calls=3,
        retries=0,
        throttles=0,
        failed=(),
        seconds=report.seconds,
    )


@pytest.mark.integration
def test_missing_stream_in_moto_is_refused_with_the_fix(kinesis: Any) -> None:
    with pytest.raises(DeliveryRefusedError) as info:
        Publisher(kinesis, "nope").send(records(2), Acks())
    assert info.value.code == "ResourceNotFoundException"
    assert "stream nope not found: check the destination's region and stream name" in str(
        info.value
    )
    assert info.value.unsent == ("s:0", "s:1")


@pytest.mark.integration
def test_nothing_is_lost_when_moto_fails_records_throttles_and_drops_responses() -> None:
    # GIVEN moto failing 10% of records, throttling call 2 whole, and losing call 4's answer
    plan = FaultPlan(
        seed=3,
        record_internal=Rate(0.1),
        throttle=Schedule(((2, 2),)),
        timeout_landed=Schedule(((4, 4),)),
    )
    # botocore's own retries off: the publisher alone decides what is re-sent
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    with mock_aws(), faults_installed(plan):
        client = boto3.client("kinesis", region_name="us-east-1", config=config)
        client.create_stream(StreamName=STREAM, ShardCount=2)
        sent = records(1500)
        acks = Acks()
        # Unpaced, so the lost call is a whole 500-record request (pacing shrinks them)
        options = DeliveryOptions(
            senders=1, backoff_base_seconds=0.001, backoff_cap_seconds=0.01, pacing=None
        )
        report = Publisher(client, STREAM, options).send(sent, acks)
        stored = Counter(read_all(client))
    # THEN every record arrived, duplicates only from the lost answer, each acked exactly once
    assert set(stored) == {r.data for r in sent}
    duplicated = {data for data, n in stored.items() if n > 1}
    assert 0 < len(duplicated) <= 500
    assert sorted(acks.ids) == sorted(r.message_id for r in sent)
    assert report.failed == ()
    assert report.records_sent == 1500
    assert report.throttles >= 500
    assert report.retries > 500 + 500  # the throttled call and the lost call, re-sent whole


@pytest.mark.unit
def test_sessions_that_keep_expiring_unused_stop_the_push() -> None:
    # GIVEN a Kinesis that answers ExpiredToken to every session, however fresh
    clock = FakeClock()
    kinesis = FakeKinesis(lambda i, keys: client_error("ExpiredTokenException"), clock)
    renewals: list[int] = []

    def reconnect() -> FakeKinesis:
        renewals.append(1)
        return kinesis

    # WHEN records are sent
    with pytest.raises(DeliveryRefusedError) as caught:
        publisher(kinesis, clock, reconnect=reconnect).send(records(3), Acks())

    # THEN it renews a bounded number of times, then stops naming the cause; nothing is acked
    assert len(renewals) == MAX_UNPROVEN_RENEWALS
    assert caught.value.code == "ExpiredTokenException"
    assert "could not be refreshed" in str(caught.value)
    assert len(caught.value.unsent) == 3


@pytest.mark.unit
def test_sessions_that_expire_after_carrying_records_are_renewed_without_limit() -> None:
    # GIVEN a session that expires on every other call, after the previous one succeeded
    clock = FakeClock()
    expire_odd = FakeKinesis(
        lambda i, keys: client_error("ExpiredTokenException") if i % 2 else None, clock
    )

    # WHEN more calls than the renewal bound are needed
    report = publisher(
        expire_odd, clock, reconnect=lambda: expire_odd, max_records_per_request=1, pacing=None
    ).send(records(2 * MAX_UNPROVEN_RENEWALS), Acks())

    # THEN every record arrives and each expiry was a renewal
    assert report.records_sent == 2 * MAX_UNPROVEN_RENEWALS
    assert report.reconnects == 2 * MAX_UNPROVEN_RENEWALS - 1


@pytest.mark.unit
def test_paced_requests_carry_a_record_bigger_than_the_paced_limit_after_a_small_one() -> None:
    # GIVEN a one-shard stream, whose paced requests carry about 100 KiB, and a small record
    # followed by one of 300 KiB (the last entering message, then a full exiting one)
    clock = FakeClock()
    kinesis = FakeKinesis(lambda index, keys: None, clock)
    small = OutgoingRecord("s:0", "s:0", b"x" * 1000, 1, True)
    big = OutgoingRecord("s:1", "s:1", b"y" * 300 * 1024, 1000, False)
    acks = Acks()
    # WHEN both are sent
    report = publisher(kinesis, clock, shards=1).send([small, big], on_acked=acks)
    # THEN each goes in its own request and both are acked
    assert kinesis.calls == [["s:0"], ["s:1"]]
    assert acks.ids == ["s:0", "s:1"]
    assert report.records_sent == 2
