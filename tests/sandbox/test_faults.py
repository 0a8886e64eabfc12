"""sandbox.faults: the faults a plan injects into moto's Kinesis, in-process and served."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.kinesis.responses import KinesisResponse
from moto.server import ThreadedMotoServer

from sandbox.fault_plan import FaultKind, FaultPlan
from sandbox.faults import FaultController, faults_installed
from sandbox.throughput import FakeClock, partition_hash
from sync.limits import SHARD_READ_CALLS_PER_SECOND, SHARD_WRITE_BYTES_PER_SECOND

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STREAM = "cohorts"
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def kinesis(aws: None) -> Any:
    client = boto3.client("kinesis", region_name=REGION, config=ONE_ATTEMPT)
    client.create_stream(StreamName=STREAM, ShardCount=2)
    return client


def keys_by_shard(client: Any, stream: str = STREAM) -> dict[str, str]:
    """Find one partition key per shard from MD5 and the shards' HashKeyRange, as Kinesis routes."""
    shards = client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    keys: dict[str, str] = {}
    for n in range(1000):
        key = f"user-{n}"
        for shard in shards:
            low = int(shard["HashKeyRange"]["StartingHashKey"])
            high = int(shard["HashKeyRange"]["EndingHashKey"])
            if low <= partition_hash(key) <= high:
                keys.setdefault(shard["ShardId"], key)
        if len(keys) == len(shards):
            return keys
    raise AssertionError("no key found for some shard")


def stored(client: Any, stream: str = STREAM) -> dict[str, list[bytes]]:
    """Read every shard from the start; call outside faults_installed (reads are budgeted)."""
    contents: dict[str, list[bytes]] = {}
    for shard in client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = client.get_records(ShardIterator=iterator)["Records"]
        contents[shard["ShardId"]] = [record["Data"] for record in records]
    return contents


def all_stored(client: Any) -> list[bytes]:
    return sorted(data for records in stored(client).values() for data in records)


def put(client: Any, *payloads: bytes, key: str = "k") -> dict[str, Any]:
    records = [{"Data": payload, "PartitionKey": key} for payload in payloads]
    response: dict[str, Any] = client.put_records(StreamName=STREAM, Records=records)
    return response


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = exc.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


# Throughput.


@pytest.mark.integration
def test_only_the_hot_shard_throttles_and_only_its_excess(kinesis: Any) -> None:
    # GIVEN two shards, a key routed to each, and 100 kB records: 10 fill a shard's second
    keys = keys_by_shard(kinesis)
    hot, cold = sorted(keys)
    records = [
        {"Data": f"{shard}-{n}".encode().ljust(100_000, b"."), "PartitionKey": keys[shard]}
        for n in range(8)
        for shard in (hot, hot, cold)
    ]

    # WHEN all go in one PutRecords under the throughput model
    with faults_installed(FaultPlan(throughput=True), clock=FakeClock()) as faults:
        response = kinesis.put_records(StreamName=STREAM, Records=records)

    # THEN the hot shard's records beyond its 1 MiB fail individually, in place, and cold ones pass
    failed = [i for i, entry in enumerate(response["Records"]) if "ErrorCode" in entry]
    hot_positions = [i for i, record in enumerate(records) if record["PartitionKey"] == keys[hot]]
    fits = SHARD_WRITE_BYTES_PER_SECOND // (100_000 + len(keys[hot]))
    assert failed == hot_positions[fits:]
    assert response["FailedRecordCount"] == len(failed) == faults.records_throttled
    for i, entry in enumerate(response["Records"]):
        if i in failed:
            assert entry == {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": f"Rate exceeded for shard {hot} in stream {STREAM} "
                f"under account {ACCOUNT}.",
            }
        else:
            assert set(entry) == {"SequenceNumber", "ShardId"}
            assert entry["ShardId"] == (hot if i in hot_positions else cold)
    # AND the stored records are exactly the ones acknowledged, on the shards MD5 routes them to
    contents = stored(kinesis)
    assert contents[hot] == [records[i]["Data"] for i in hot_positions[:fits]]
    assert contents[cold] == [r["Data"] for r in records if r["PartitionKey"] == keys[cold]]
    assert faults.records_written == len(records) - len(failed)


@pytest.mark.integration
def test_shard_budget_refills_with_model_time(kinesis: Any) -> None:
    clock = FakeClock()
    big = b"x" * 600_000
    with faults_installed(FaultPlan(throughput=True), clock=clock):
        first = put(kinesis, big, big)
        clock.advance(0.6)
        second = put(kinesis, big)

    assert first["FailedRecordCount"] == 1
    assert second["FailedRecordCount"] == 0


@pytest.mark.integration
def test_scale_makes_real_time_refill_faster(kinesis: Any) -> None:
    # A scale of 1e6 turns a few real milliseconds into many model seconds.
    big = b"x" * 900_000
    with faults_installed(FaultPlan.parse("throughput=on,scale=1000000")):
        results = [put(kinesis, big)["FailedRecordCount"] for _ in range(5)]

    assert results == [0] * 5


@pytest.mark.integration
def test_put_record_over_budget_fails_the_whole_call(kinesis: Any) -> None:
    big = b"x" * 600_000
    with faults_installed(FaultPlan(throughput=True), clock=FakeClock()) as faults:
        shard = kinesis.put_record(StreamName=STREAM, Data=big, PartitionKey="k")["ShardId"]
        with pytest.raises(ClientError) as exc:
            kinesis.put_record(StreamName=STREAM, Data=big, PartitionKey="k")

    assert error_of(exc) == (
        "ProvisionedThroughputExceededException",
        f"Rate exceeded for shard {shard} in stream {STREAM} under account {ACCOUNT}.",
        400,
    )
    assert faults.records_throttled == 1
    assert all_stored(kinesis) == [big]


@pytest.mark.integration
def test_get_records_beyond_five_calls_per_second_throttles(kinesis: Any) -> None:
    shard = "shardId-000000000000"
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    clock = FakeClock()
    with faults_installed(FaultPlan(throughput=True), clock=clock) as faults:
        for _ in range(SHARD_READ_CALLS_PER_SECOND):
            kinesis.get_records(ShardIterator=iterator)
        with pytest.raises(ClientError) as exc:
            kinesis.get_records(ShardIterator=iterator)
        clock.advance(1 / SHARD_READ_CALLS_PER_SECOND)
        kinesis.get_records(ShardIterator=iterator)

    code, message, status = error_of(exc)
    assert (code, status) == ("ProvisionedThroughputExceededException", 400)
    assert (
        message == f"Rate exceeded for Shard - {shard} in stream {STREAM} under account {ACCOUNT}."
    )
    assert faults.reads_throttled == 1


# Whole-request faults.


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("throttle", "ProvisionedThroughputExceededException", 400),
        ("kms-throttle", "KMSThrottlingException", 400),
        ("unavailable", "ServiceUnavailable", 503),
        ("internal", "InternalFailure", 500),
    ],
)
def test_whole_request_fault_fires_on_its_schedule(
    kinesis: Any, kind: str, code: str, status: int
) -> None:
    outcomes = []
    with faults_installed(FaultPlan.parse(f"{kind}=@2+4")) as faults:
        for n in range(1, 6):
            try:
                put(kinesis, f"call-{n}".encode())
                outcomes.append("ok")
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == status
                outcomes.append(exc.response["Error"]["Code"])

    assert outcomes == ["ok", code, "ok", code, "ok"]
    assert faults.faults[FaultKind(kind)] == 2
    assert faults.calls_seen["PutRecords"] == 5
    assert all_stored(kinesis) == [b"call-1", b"call-3", b"call-5"]


@pytest.mark.integration
def test_rate_is_seeded_and_deterministic(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("throttle=0.3,seed=7")) as faults:
        failed = []
        for _ in range(40):
            try:
                put(kinesis, b"x")
                failed.append(False)
            except ClientError:
                failed.append(True)

    # One trigger means one draw per targeted call from random.Random(seed).
    rng = random.Random(7)
    assert failed == [rng.random() < 0.3 for _ in range(40)]
    assert faults.faults[FaultKind.THROTTLE] == sum(failed) > 0


@pytest.mark.integration
def test_faults_only_hit_targeted_operations(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("targets=GetShardIterator,internal=@1")) as faults:
        put(kinesis, b"x")
        with pytest.raises(ClientError, match="InternalFailure"):
            kinesis.get_shard_iterator(
                StreamName=STREAM, ShardId="shardId-000000000000", ShardIteratorType="LATEST"
            )

    assert faults.targeted_calls == 1
    assert faults.calls_seen == {"PutRecords": 1, "GetShardIterator": 1}


# Per-record faults.


@pytest.mark.integration
def test_record_internal_fails_scheduled_records_only(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("record-internal=@2+5")) as faults:
        first = put(kinesis, b"1", b"2", b"3")
        second = put(kinesis, b"4", b"5", b"6")

    assert [e.get("ErrorCode") for e in first["Records"] + second["Records"]] == [
        None,
        "InternalFailure",
        None,
        None,
        "InternalFailure",
        None,
    ]
    assert first["Records"][1]["ErrorMessage"] == "Internal service failure."
    assert (first["FailedRecordCount"], second["FailedRecordCount"]) == (1, 1)
    assert faults.faults[FaultKind.RECORD_INTERNAL] == 2
    assert all_stored(kinesis) == [b"1", b"3", b"4", b"6"]


@pytest.mark.integration
def test_record_internal_rate_is_seeded(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("record-internal=0.1,seed=3")) as faults:
        response = put(kinesis, *[str(n).encode() for n in range(300)])

    rng = random.Random(3)
    expected = [rng.random() < 0.1 for _ in range(300)]
    assert ["ErrorCode" in entry for entry in response["Records"]] == expected
    assert (
        response["FailedRecordCount"] == faults.faults[FaultKind.RECORD_INTERNAL] == sum(expected)
    )


# Lost responses.


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "error"),
    [("timeout-landed", ReadTimeoutError), ("reset-landed", ConnectionClosedError)],
)
def test_landed_then_lost_records_are_stored_though_the_client_failed(
    kinesis: Any, kind: str, error: type[Exception]
) -> None:
    with faults_installed(FaultPlan.parse(f"{kind}=@1")) as faults, pytest.raises(error):
        put(kinesis, b"a", b"b")

    assert all_stored(kinesis) == [b"a", b"b"]
    assert sorted(faults.landed_data) == [b"a", b"b"]
    assert faults.records_written == 2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "error"), [("timeout", ReadTimeoutError), ("reset", ConnectionClosedError)]
)
def test_lost_before_landing_stores_nothing(
    kinesis: Any, kind: str, error: type[Exception]
) -> None:
    with faults_installed(FaultPlan.parse(f"{kind}=@1")) as faults, pytest.raises(error):
        put(kinesis, b"a")

    assert all_stored(kinesis) == []
    assert faults.landed == []


@pytest.mark.integration
def test_botocore_retry_after_a_landed_timeout_duplicates_records(aws: None) -> None:
    # GIVEN botocore's own retries, as a sender would run them
    client = boto3.client(
        "kinesis", region_name=REGION, config=Config(retries={"total_max_attempts": 3})
    )
    client.create_stream(StreamName=STREAM, ShardCount=1)

    # WHEN the first attempt lands but its response is lost
    with faults_installed(FaultPlan.parse("timeout-landed=@1")) as faults:
        response = put(client, b"once")

    # THEN the retry succeeds and the stream holds the record twice: consumers must dedupe
    assert response["FailedRecordCount"] == 0
    assert faults.calls_seen["PutRecords"] == 2
    assert all_stored(client) == [b"once", b"once"]


@pytest.mark.integration
def test_landed_reset_in_server_mode_drops_the_connection() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "kinesis",
            region_name=REGION,
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="secret",
            config=ONE_ATTEMPT,
        )
        client.create_stream(StreamName=STREAM, ShardCount=1)
        with faults_installed(FaultPlan.parse("reset-landed=@1")) as faults:
            with pytest.raises(ConnectionClosedError):
                put(client, b"landed")
            put(client, b"after")  # the server still serves new connections

        assert all_stored(client) == [b"after", b"landed"]
        assert faults.landed_data == [b"landed"]
    finally:
        server.stop()


# Credentials, deletion and detachment.


def assumed_role_client(aws: None, policy: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Create a role with a managed and an inline policy, assume it, return a Kinesis client."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="writer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    document = json.dumps(
        policy
        or {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": "*"}],
        }
    )
    arn = iam.create_policy(PolicyName="put", PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="writer", PolicyArn=arn)
    iam.put_role_policy(RoleName="writer", PolicyName="inline", PolicyDocument=document)
    creds = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=role["Arn"], RoleSessionName="sync"
    )["Credentials"]
    client = boto3.client(
        "kinesis",
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=ONE_ATTEMPT,
    )
    return client, role["Arn"]


@pytest.mark.integration
def test_expired_token_hits_assumed_role_calls_only(kinesis: Any, aws: None) -> None:
    assumed, _ = assumed_role_client(aws)
    with faults_installed(FaultPlan.parse("expired-token=@1-")) as faults:
        put(kinesis, b"user-keys")
        with pytest.raises(ClientError) as exc:
            put(assumed, b"role-keys")

    assert error_of(exc) == (
        "ExpiredTokenException",
        "The security token included in the request is expired",
        400,
    )
    assert faults.faults[FaultKind.EXPIRED_TOKEN] == 1
    assert all_stored(kinesis) == [b"user-keys"]


@pytest.mark.integration
def test_assumed_role_keys_expire_after_model_time(kinesis: Any, aws: None) -> None:
    assumed, _ = assumed_role_client(aws)
    clock = FakeClock()
    with faults_installed(FaultPlan.parse("expire-after-s=3600"), clock=clock):
        put(assumed, b"before")
        clock.advance(3600)
        with pytest.raises(ClientError, match="ExpiredTokenException"):
            put(assumed, b"after")
        put(kinesis, b"user-keys-never-expire")

    assert all_stored(kinesis) == [b"before", b"user-keys-never-expire"]


@pytest.mark.integration
def test_stream_deleted_at_its_scheduled_call(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("delete-stream=@2")) as faults:
        put(kinesis, b"x")
        with pytest.raises(ClientError) as exc:
            put(kinesis, b"y")

    code, message, _ = error_of(exc)
    assert code == "ResourceNotFoundException"
    assert message == f"Stream {STREAM} under account {ACCOUNT} not found."
    assert [(a.kind, a.call_number, a.outcome) for a in faults.actions] == [
        (FaultKind.DELETE_STREAM, 2, "deleted")
    ]
    assert kinesis.list_streams()["StreamNames"] == []


@pytest.mark.integration
def test_role_policies_detached_at_their_scheduled_call(kinesis: Any, aws: None) -> None:
    assumed, role_arn = assumed_role_client(aws)
    iam = boto3.client("iam", region_name=REGION)
    with faults_installed(FaultPlan.parse("detach-policy=@2")) as faults:
        put(assumed, b"x")
        assert iam.list_attached_role_policies(RoleName="writer")["AttachedPolicies"]
        put(assumed, b"y")  # moto without IAM enforcement still accepts it

    assert iam.list_attached_role_policies(RoleName="writer")["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName="writer")["PolicyNames"] == []
    (event,) = faults.actions
    assert (event.kind, event.call_number, event.target) == (FaultKind.DETACH_POLICY, 2, role_arn)
    assert re.fullmatch(r"detached: arn:aws:iam::\d+:policy/put, inline", event.outcome)


@pytest.mark.integration
def test_a_fault_moto_never_reached_is_not_counted(kinesis: Any, aws: None) -> None:
    # GIVEN IAM enforced after the five setup calls, and a role that may only call PutRecord
    only_put_record = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*"}],
    }

    @set_initial_no_auth_action_count(5)
    def denied_put() -> tuple[FaultController, pytest.ExceptionInfo[ClientError]]:
        assumed, _ = assumed_role_client(aws, only_put_record)
        with (
            faults_installed(FaultPlan.parse("throttle=@1")) as faults,
            pytest.raises(ClientError) as exc,
        ):
            put(assumed, b"x")
        return faults, exc

    # WHEN the throttled call is denied before the operation runs
    faults, exc = denied_put()

    # THEN the client sees AccessDenied and the report does not claim a throttle
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403  # moto: AccessDenied
    assert faults.faults[FaultKind.THROTTLE] == 0


@pytest.mark.integration
def test_detach_is_skipped_for_a_caller_without_a_role(kinesis: Any) -> None:
    with faults_installed(FaultPlan.parse("detach-policy=@1")) as faults:
        put(kinesis, b"x")

    assert faults.actions[0].outcome == "skipped: caller is not an assumed role"
    assert faults.faults[FaultKind.DETACH_POLICY] == 0


# Install and uninstall.


@pytest.mark.integration
def test_uninstall_restores_moto_exactly(kinesis: Any) -> None:
    before = dict(KinesisResponse.__dict__)
    plan = FaultPlan.parse("targets=all,throughput=on,internal=1")

    with faults_installed(plan, clock=FakeClock()):
        assert KinesisResponse.__dict__["call_action"] is not None
        with pytest.raises(ClientError):
            put(kinesis, b"x")

    assert dict(KinesisResponse.__dict__) == before
    big = b"x" * 900_000
    assert [put(kinesis, big)["FailedRecordCount"] for _ in range(3)] == [0, 0, 0]


@pytest.mark.unit
def test_a_second_install_is_refused() -> None:
    with (
        faults_installed(FaultPlan()),
        pytest.raises(RuntimeError, match="already installed"),
        faults_installed(FaultPlan()),
    ):
        pass
