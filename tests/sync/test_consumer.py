"""The consumer against in-process moto: every shard, resharding, restarts, poison and throttles."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.kinesis.models import Stream

from sync.consumer import Consumer, ConsumeReport
from sync.contract import CohortMessage, encode
from sync.errors import ConsumerError
from sync.membership_store import MembershipStore, members
from tests.oracle import membership_after as expected_states
from tests.oracle import random_messages

pytestmark = pytest.mark.integration

REGION = "us-east-1"
STREAM = "cohorts"


class FakeTime:
    """A clock that only moves when the consumer sleeps, so tests never really wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class Wrapped:
    """A Kinesis client with hooks around some calls; everything else goes straight through."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.before: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.shard_of_iterator: dict[str, str] = {}
        self.reads: list[str] = []  # shard id of every GetRecords call, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _call(self, name: str, params: dict[str, Any]) -> Any:
        self.calls.append((name, params))
        if name in self.before:
            self.before[name](params)
        return getattr(self._client, name)(**params)

    def list_shards(self, **params: Any) -> Any:
        return self._call("list_shards", params)

    def get_shard_iterator(self, **params: Any) -> Any:
        response = self._call("get_shard_iterator", params)
        self.shard_of_iterator[response["ShardIterator"]] = params["ShardId"]
        return response

    def get_records(self, **params: Any) -> Any:
        shard = self.shard_of_iterator[params["ShardIterator"]]
        self.reads.append(shard)
        response = self._call("get_records", params)
        if response.get("NextShardIterator"):
            self.shard_of_iterator[response["NextShardIterator"]] = shard
        return response


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} from test"}}, operation)


def cohort_messages(count: int, seed: int = 1) -> list[CohortMessage]:
    return random_messages(count, seed, cohort_name="Power users", user_pool=12, time_spread=count)


def put(kinesis: Any, payloads: list[bytes], keys: list[str] | None = None) -> list[str]:
    """Put records in order; return the shard id each one landed on."""
    shards: list[str] = []
    for start in range(0, len(payloads), 500):
        chunk = payloads[start : start + 500]
        response = kinesis.put_records(
            StreamName=STREAM,
            Records=[
                {"Data": data, "PartitionKey": keys[start + i] if keys else f"k{start + i}"}
                for i, data in enumerate(chunk)
            ],
        )
        shards.extend(r["ShardId"] for r in response["Records"])
    return shards


@pytest.fixture
def kinesis() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("kinesis", region_name=REGION)
        client.create_stream(StreamName=STREAM, ShardCount=3)
        yield client


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MembershipStore]:
    with MembershipStore(tmp_path / "state.db") as opened:
        yield opened


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def consumer(kinesis: Any, store: MembershipStore, time_: FakeTime, **kwargs: Any) -> Consumer:
    kwargs.setdefault("from_start", True)
    return Consumer(kinesis, STREAM, store, sleep=time_.sleep, clock=time_.clock, **kwargs)


def test_consume_reads_every_shard_into_membership(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN 40 messages spread over 3 shards
    messages = cohort_messages(40)
    put(kinesis, [encode(m) for m in messages])
    # WHEN consumed until idle
    report = consumer(kinesis, store, time_).consume()
    # THEN membership is what in-order application gives, and every record is accounted for
    assert store.states() == expected_states(messages)
    assert report.records == 40 == report.applied + report.stale
    assert (report.duplicates, report.quarantined, report.shards, report.throttles) == (0, 0, 3, 0)
    current = {u for (c, u), s in expected_states(messages).items() if c == "c1" and s.in_cohort}
    assert [m.user_id for m in members(store, "c1")] == sorted(current)


def test_shuffled_and_duplicated_delivery_gives_the_same_membership(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN every message twice, in a random order
    messages = cohort_messages(30, seed=7)
    delivered = messages + messages
    random.Random(3).shuffle(delivered)
    put(kinesis, [encode(m) for m in delivered])
    # WHEN consumed
    report = consumer(kinesis, store, time_).consume()
    # THEN the result equals applying each message once, in order; the copies count as duplicates
    assert store.states() == expected_states(messages)
    assert (report.records, report.duplicates) == (60, 30)


class Crash(Exception):
    """Stands in for the process dying."""


def test_restart_mid_consumption_applies_each_message_exactly_once(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN 50 messages, and a client that returns 4 records a call and dies on its 7th call
    messages = cohort_messages(50, seed=11)
    put(kinesis, [encode(m) for m in messages])
    dying = Wrapped(kinesis)
    calls = 0

    def limit_then_die(params: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        params["Limit"] = 4
        if calls == 7:
            raise Crash

    dying.before["get_records"] = limit_then_die
    with pytest.raises(Crash):
        consumer(dying, store, time_).consume()
    # WHEN a new consumer resumes with the same store
    report = consumer(kinesis, store, time_).consume()
    # THEN the first run's 6 pages (24 records) are not re-read, and nothing was skipped
    assert (report.records, report.duplicates) == (26, 0)
    assert store.states() == expected_states(messages)
    assert all(store.has_seen(m.message_id) for m in messages)


def test_invalid_records_are_quarantined_while_valid_ones_apply(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN poison records between valid ones, all on one shard
    messages = cohort_messages(4, seed=5)
    payloads = [
        encode(messages[0]),
        b"\xff\xfe not json",
        encode(messages[1]),
        b'{"cohort_id": "c1"}',
        encode(messages[2]),
        encode(messages[3]),
    ]
    put(kinesis, payloads, keys=["same"] * len(payloads))
    # WHEN consumed
    report = consumer(kinesis, store, time_).consume()
    # THEN the valid ones apply and each poison record is kept with its reason
    assert store.states() == expected_states(messages)
    assert report.quarantined == 2
    first, second = store.quarantined()
    assert (first.sequence_number, second.sequence_number) == ("2", "4")
    assert first.reason.startswith("record data: not UTF-8 JSON")
    assert second.reason.startswith("record breaks the payload contract: cohort_name: missing")
    assert second.data_prefix == b'{"cohort_id": "c1"}'


@pytest.fixture
def aws_like_resharding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto reshard like Kinesis: parents keep their records, writes go to open shards."""

    # moto routes writes to the first shard whose range matches, closed parents included.
    def open_shard_for_key(self: Stream, partition_key: str, explicit_hash_key: str) -> Any:
        key = int(explicit_hash_key) if explicit_hash_key else _md5(partition_key)
        return next(
            s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash
        )

    original_split = Stream.split_shard

    # moto moves a parent's records into its children on a split; Kinesis leaves them in place.
    def split_keeping_records(
        self: Stream, shard_to_split: str, new_starting_hash_key: str
    ) -> None:
        parent = self.shards[shard_to_split]
        kept = OrderedDict(parent.records)
        before = set(self.shards)
        original_split(self, shard_to_split, new_starting_hash_key)
        parent.records = kept
        for shard_id in set(self.shards) - before:
            self.shards[shard_id].records = OrderedDict()

    monkeypatch.setattr(Stream, "get_shard_for_key", open_shard_for_key)
    monkeypatch.setattr(Stream, "split_shard", split_keeping_records)


def _md5(key: str) -> int:
    return int(hashlib.md5(key.encode()).hexdigest(), 16)


@pytest.mark.usefixtures("aws_like_resharding")
def test_resharding_while_consuming_misses_nothing_and_reads_parents_first(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN a stream consumed in part (two pages of 3 per shard)
    messages = cohort_messages(60, seed=21)
    put(kinesis, [encode(m) for m in messages[:30]])
    partial = Wrapped(kinesis)
    partial.before["get_records"] = lambda params: params.update(Limit=3)
    first = consumer(partial, store, time_).consume(max_seconds=0.3)
    assert first.records == sum(store.has_seen(m.message_id) for m in messages) == 18
    # WHEN every shard is split and more is written
    kinesis.update_shard_count(StreamName=STREAM, TargetShardCount=6, ScalingType="UNIFORM_SCALING")
    put(kinesis, [encode(m) for m in messages[30:]])
    watched = Wrapped(kinesis)
    report = consumer(watched, store, time_).consume()
    # THEN every message is applied once overall, and no child is read before its parent is done
    assert store.states() == expected_states(messages)
    assert report.duplicates == 0
    assert all(store.has_seen(m.message_id) for m in messages)
    shards = kinesis.list_shards(StreamName=STREAM)["Shards"]
    children = [s for s in shards if "ParentShardId" in s]
    assert len(children) == 6
    for child in children:
        parent_reads = [i for i, s in enumerate(watched.reads) if s == child["ParentShardId"]]
        child_reads = [i for i, s in enumerate(watched.reads) if s == child["ShardId"]]
        assert child_reads and max(parent_reads) < min(child_reads)
    assert all(
        cp.shard_closed
        for sid, cp in store.checkpoints(_arn(kinesis)).items()
        if sid in {c["ParentShardId"] for c in children}
    )


def _arn(kinesis: Any) -> str:
    return str(
        kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    )


def test_throttling_backs_off_exponentially_then_succeeds(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN GetRecords refuses the first 4 calls with ProvisionedThroughputExceeded
    messages = cohort_messages(10)
    put(kinesis, [encode(m) for m in messages])
    throttled = Wrapped(kinesis)
    refusals = iter(range(4))

    def throttle(params: dict[str, Any]) -> None:
        if next(refusals, None) is not None:
            raise client_error("ProvisionedThroughputExceededException", "GetRecords")

    throttled.before["get_records"] = throttle
    # WHEN consumed
    report = consumer(throttled, store, time_).consume()
    # THEN it waited 0.5, 1, 2, 4 s (capped exponential) and then read everything
    assert time_.sleeps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert report.throttles == 4
    assert store.states() == expected_states(messages)


def test_get_records_calls_are_paced_per_shard(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN one record per call, so each shard takes several calls
    put(kinesis, [encode(m) for m in cohort_messages(12)])
    paced = Wrapped(kinesis)
    stamps: dict[str, list[float]] = {}

    def stamp(params: dict[str, Any]) -> None:
        params["Limit"] = 1
        shard = paced.shard_of_iterator[params["ShardIterator"]]
        stamps.setdefault(shard, []).append(time_.now)

    paced.before["get_records"] = stamp
    consumer(paced, store, time_).consume()
    # THEN no shard is called more than 5 times a second
    for times in stamps.values():
        assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(times))


def test_expired_iterator_is_reacquired_from_the_checkpoint(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN the third GetRecords call on the shard holding the records finds its iterator expired
    messages = cohort_messages(12)
    [shard] = set(put(kinesis, [encode(m) for m in messages], keys=["one"] * 12))
    expiring = Wrapped(kinesis)
    calls = 0

    def expire_third(params: dict[str, Any]) -> None:
        nonlocal calls
        params["Limit"] = 5
        if expiring.shard_of_iterator[params["ShardIterator"]] == shard:
            calls += 1
            if calls == 3:
                raise client_error("ExpiredIteratorException", "GetRecords")

    expiring.before["get_records"] = expire_third
    report = consumer(expiring, store, time_).consume()
    # THEN a new iterator starts after the committed sequence number, and nothing repeats
    reacquired = [p for name, p in expiring.calls if name == "get_shard_iterator"][-1]
    assert reacquired["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert reacquired["StartingSequenceNumber"] == "10"
    assert (report.records, report.duplicates) == (12, 0)
    assert store.states() == expected_states(messages)


def test_list_shards_pagination_is_followed(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    put(kinesis, [encode(m) for m in cohort_messages(20)])
    paged = Wrapped(kinesis)
    paged.before["list_shards"] = lambda params: params.update(MaxResults=1)
    report = consumer(paged, store, time_).consume()
    assert report.shards == 3
    assert report.records == 20
    first, second = [p for name, p in paged.calls if name == "list_shards"][:2]
    assert "NextToken" not in first and set(second) == {"StreamARN", "NextToken", "MaxResults"}


def test_without_from_start_a_start_time_is_fixed_and_nothing_between_runs_is_lost(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    # GIVEN a first run on an empty stream without from_start
    watched = Wrapped(kinesis)
    assert consumer(watched, store, time_, from_start=False).consume().records == 0
    iterator_params = [p for name, p in watched.calls if name == "get_shard_iterator"]
    assert {p["ShardIteratorType"] for p in iterator_params} == {"AT_TIMESTAMP"}
    # WHEN records arrive between runs
    messages = cohort_messages(9)
    put(kinesis, [encode(m) for m in messages])
    # THEN the second run reads them (it did not restart at a new "latest")
    assert consumer(kinesis, store, time_, from_start=False).consume().records == 9
    assert store.states() == expected_states(messages)


def test_max_seconds_stops_a_consumer_that_does_not_stop_at_idle(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    put(kinesis, [encode(m) for m in cohort_messages(5)])
    progress: list[ConsumeReport] = []
    report = consumer(kinesis, store, time_, on_progress=progress.append).consume(
        until_idle=False, max_seconds=5
    )
    assert report.records == 5
    assert 4.0 <= report.seconds <= 5
    assert progress and progress[-1].records == 5


def test_missing_stream_is_a_consumer_error_naming_stream_and_fix(
    kinesis: Any, store: MembershipStore, time_: FakeTime
) -> None:
    with pytest.raises(ConsumerError) as caught:
        Consumer(kinesis, "nope", store, from_start=True).consume()
    assert str(caught.value) == (
        "stream 'nope': not found in region us-east-1 (DescribeStreamSummary); check the stream"
        " name and region, or provision the destination first"
    )


@pytest.mark.parametrize("operation", ["describe_stream_summary", "list_shards", "get_records"])
def test_access_denied_is_a_consumer_error_naming_the_permissions(
    kinesis: Any, store: MembershipStore, time_: FakeTime, operation: str
) -> None:
    put(kinesis, [encode(m) for m in cohort_messages(3)])
    denied = Wrapped(kinesis)

    def deny(params: dict[str, Any]) -> None:
        raise client_error("AccessDeniedException", operation)

    denied.before[operation] = deny
    if operation == "describe_stream_summary":
        denied.describe_stream_summary = lambda **p: denied._call(operation, p)  # type: ignore[method-assign]
    with pytest.raises(
        ConsumerError,
        match=r"^stream 'cohorts'.*: access denied on \w+; grant"
        r" the reading identity kinesis:DescribeStreamSummary, kinesis:ListShards,"
        r" kinesis:GetShardIterator and kinesis:GetRecords on the stream ARN",
    ):
        consumer(denied, store, time_).consume()
