"""moto fixes: concurrent puts to one shard all land, body-less calls pass the signature check."""

import contextlib
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import table as moto_table
from moto.kinesis.models import Shard

from provisioning import constants as c
from sandbox import moto_fixes
from sandbox.server import ServedWorld, start_server
from sandbox.world import clean_aws_env


@contextlib.contextmanager
def _first_call_held(owner: object, name: str, hold: float) -> Iterator[threading.Event]:
    """Hold the first call of ``owner.name`` after it returns, until the yielded event is set or
    ``hold`` seconds pass: the step between a read and the write that depends on it, made as wide
    as a scheduler could ever make it, so a race is a fixed interleaving rather than luck."""
    original = getattr(owner, name)
    reached = threading.Event()
    released = threading.Event()

    def holding(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not reached.is_set():
            reached.set()
            released.wait(timeout=hold)
        return result

    setattr(owner, name, holding)
    try:
        yield reached
        released.set()
    finally:
        setattr(owner, name, original)


def _race(
    owner: object, name: str, hold: float, first: Callable[[], None], second: Callable[[], None]
) -> None:
    """Run ``first`` until it is held after ``owner.name``, then ``second`` to its end, then let
    ``first`` go. With a lock around the whole write, ``second`` waits out the hold instead."""
    with ThreadPoolExecutor(1) as pool, _first_call_held(owner, name, hold) as reached:
        running = pool.submit(first)
        assert reached.wait(timeout=30), f"{name} was never called: the interleaving was not forced"
        second()
    running.result()


def _shard_records_after_racing_puts(hold: float) -> int:
    """Two puts to one shard, the first held between reading the highest sequence number and
    writing its record; how many records the shard keeps (3 when nothing is lost)."""
    with mock_aws():
        kinesis = boto3.client(
            "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        kinesis.create_stream(StreamName="one", ShardCount=1)

        def put(data: bytes) -> None:
            kinesis.put_records(StreamName="one", Records=[{"Data": data, "PartitionKey": "k"}])

        put(b"before")
        _race(Shard, "get_max_sequence_number", hold, lambda: put(b"first"), lambda: put(b"second"))
        iterator = kinesis.get_shard_iterator(
            StreamName="one", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return len(kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"])


def test_a_put_racing_another_on_one_shard_keeps_both_while_installed() -> None:
    with moto_fixes.moto_fixes_installed():
        assert _shard_records_after_racing_puts(hold=1.0) == 3


def test_uninstall_restores_moto() -> None:
    original = Shard.__dict__["put_record"]

    with moto_fixes.moto_fixes_installed():
        assert Shard.__dict__["put_record"] is not original
        assert moto_fixes.is_installed()

    assert Shard.__dict__["put_record"] is original
    assert not moto_fixes.is_installed()


def test_without_the_fix_moto_loses_a_record_that_races_for_a_sequence_number() -> None:
    # The reason the fix exists: plain moto numbers a record "highest so far + 1" with no lock,
    # so the second put takes the number the first one read, and the first then overwrites it.
    assert not moto_fixes.is_installed()
    assert _shard_records_after_racing_puts(hold=30.0) == 2


def _version_left_after_racing_writes(hold: float) -> str:
    """Newest-wins conditional writes of one item, version 1 checked first and held between its
    check and its write while version 2 is written; the version the item is left with."""
    with mock_aws():
        dynamodb = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

        def write(version: int) -> None:
            with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
                dynamodb.put_item(
                    TableName="t",
                    Item={"k": {"S": "user"}, "v": {"N": str(version)}},
                    ConditionExpression="attribute_not_exists(k) OR v < :v",
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )

        # moto's Table.put_item reads the current item, builds the condition, checks, writes.
        _race(moto_table, "get_filter_expression", hold, lambda: write(1), lambda: write(2))
        item = dynamodb.get_item(TableName="t", Key={"k": {"S": "user"}})["Item"]
        return str(item["v"]["N"])


def test_conditional_writes_are_atomic_while_installed() -> None:
    with moto_fixes.moto_fixes_installed():
        assert _version_left_after_racing_writes(hold=1.0) == "2"


def test_without_the_fix_moto_lets_an_older_conditional_write_land_last() -> None:
    # The reason the fix exists: plain moto checks a condition and writes without a lock.
    assert not moto_fixes.is_installed()
    assert _version_left_after_racing_writes(hold=30.0) == "1"


def _lambda_get_calls(served: ServedWorld) -> list[str]:
    """Create a function in a served world; the names of the body-less calls that succeeded."""
    world = served.world
    iam = world.client("iam", world.customer_admin)
    role_arn = iam.create_role(
        RoleName="fn-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": c.POLICY_VERSION,
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": c.LAMBDA_SERVICE_PRINCIPAL},
                        "Action": c.ASSUME_ROLE_ACTION,
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    lambda_ = world.client("lambda", world.customer_admin)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("handler.py", "def handle(event, context):\n    return None\n")
    arn = lambda_.create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role_arn,
        Handler="handler.handle",
        Code={"ZipFile": archive.getvalue()},
    )["FunctionArn"]
    calls: dict[str, Callable[[], Any]] = {
        "GetFunction": lambda: lambda_.get_function(FunctionName=arn),
        "GetFunctionConfiguration": lambda: lambda_.get_function_configuration(FunctionName="fn"),
        "ListEventSourceMappings": lambda: lambda_.list_event_source_mappings(FunctionName="fn"),
        "DeleteFunction": lambda: lambda_.delete_function(FunctionName="fn"),
    }
    succeeded = []
    for name, call in calls.items():
        try:
            call()
        except ClientError as exc:
            assert "SignatureDoesNotMatch" in str(exc), exc
        else:
            succeeded.append(name)
    return succeeded


def test_body_less_calls_pass_the_signature_check_of_a_served_world() -> None:
    # GIVEN a moto server with IAM enforced, as `local serve` runs it
    with clean_aws_env(), start_server() as served:
        # THEN Lambda's GET and DELETE calls are authorized like any other call
        assert _lambda_get_calls(served) == [
            "GetFunction",
            "GetFunctionConfiguration",
            "ListEventSourceMappings",
            "DeleteFunction",
        ]


def test_without_the_fix_moto_refuses_body_less_calls_of_a_served_world() -> None:
    # The reason the fix exists: moto signs a body-less request over its headers.
    with clean_aws_env(), start_server() as served:
        moto_fixes.uninstall()
        try:
            assert _lambda_get_calls(served) == []
        finally:
            moto_fixes.install()


def _role_after_update(**update: Any) -> dict[str, Any]:
    with mock_aws():
        iam = boto3.client(
            "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        iam.create_role(
            RoleName="r",
            AssumeRolePolicyDocument="{}",
            Description="kept",
            MaxSessionDuration=7200,
        )
        iam.update_role(RoleName="r", **update)
        role: dict[str, Any] = iam.get_role(RoleName="r")["Role"]
        return role


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ({"MaxSessionDuration": 10800}, ("kept", 10800)),
        ({"Description": "new"}, ("new", 7200)),
    ],
)
def test_update_role_changes_only_what_it_names(
    update: dict[str, Any], expected: tuple[str, int]
) -> None:
    with moto_fixes.moto_fixes_installed():
        role = _role_after_update(**update)

    assert (role.get("Description"), role["MaxSessionDuration"]) == expected


def test_without_the_fix_update_role_forgets_what_it_does_not_name() -> None:
    role = _role_after_update(MaxSessionDuration=10800)

    assert role.get("Description") is None
