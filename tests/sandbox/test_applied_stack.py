"""The real program applied to moto with IAM enforced: the role writes its stream, nothing else."""

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from provisioning import constants as c
from sandbox.proof import assume_as
from sandbox.pytest_plugin import AppliedDestination

pytestmark = pytest.mark.integration
CMK_ALIAS = "alias/cohorts"


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def simulate(session: boto3.Session, role_arn: str, actions: list[str], resource: str) -> list[str]:
    results = session.client("iam").simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=actions, ResourceArns=[resource]
    )["EvaluationResults"]
    return [r["EvalDecision"] for r in results]


def test_assumed_role_writes_its_stream(
    cohort_destination: AppliedDestination, amplitude_session: boto3.Session
) -> None:
    kinesis = amplitude_session.client("kinesis")
    stream = cohort_destination.destination.stream_arn

    one = kinesis.put_record(StreamARN=stream, Data=b"{}", PartitionKey="a")
    many = kinesis.put_records(
        StreamARN=stream, Records=[{"Data": b"{}", "PartitionKey": str(n)} for n in range(3)]
    )

    assert one["SequenceNumber"]
    assert many["FailedRecordCount"] == 0


def test_assumed_role_can_do_nothing_else(
    cohort_destination: AppliedDestination, amplitude_session: boto3.Session
) -> None:
    # GIVEN another stream in the same account
    admin = cohort_destination.world.client("kinesis", cohort_destination.world.customer_admin)
    admin.create_stream(StreamName="other", ShardCount=1)
    name = cohort_destination.destination.stream_name
    kinesis = amplitude_session.client("kinesis")
    iam = amplitude_session.client("iam")
    records = [{"Data": b"{}", "PartitionKey": "a"}]

    # THEN everything but writing its own stream is refused
    assert error_code(lambda: kinesis.put_records(StreamName="other", Records=records)) == (
        "AccessDeniedException"
    )
    assert error_code(lambda: kinesis.describe_stream(StreamName=name)) == "AccessDeniedException"
    assert error_code(lambda: kinesis.delete_stream(StreamName=name)) == "AccessDeniedException"
    shard = admin.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = admin.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert error_code(lambda: kinesis.get_records(ShardIterator=iterator)) == (
        "AccessDeniedException"
    )
    assert error_code(lambda: iam.list_roles()) == "AccessDenied"
    assert error_code(lambda: iam.get_role(RoleName=c.DEFAULT_ROLE_NAME)) == "AccessDenied"
    admin_role = cohort_destination.world.client("iam", cohort_destination.world.customer_admin)
    admin_role.create_role(RoleName="another", AssumeRolePolicyDocument='{"Statement": []}')
    another = "arn:aws:iam::123456789012:role/another"
    assert error_code(lambda: simulate(amplitude_session, another, ["s3:GetObject"], "*")) == (
        "AccessDenied"
    )


def test_strangers_and_insiders_cannot_assume(cohort_destination: AppliedDestination) -> None:
    world = cohort_destination.world
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": cohort_destination.destination.role_arn,
            }
        ],
    }
    stranger = world.new_principal("111122223333", "stranger", grant)
    insider = world.new_principal(world.customer_account_id, "analyst", grant)

    assert error_code(lambda: cohort_destination.assume(stranger)) == "AccessDenied"
    assert error_code(lambda: cohort_destination.assume(insider)) == "AccessDenied"


@pytest.mark.cohort_config(externalId="ext-amplitude-0042")
def test_external_id_must_match(cohort_destination: AppliedDestination) -> None:
    assert cohort_destination.external_id == "ext-amplitude-0042"
    assert cohort_destination.run.secret_outputs == {c.OUTPUT_EXTERNAL_ID}

    world, role = cohort_destination.world, cohort_destination.destination.role_arn
    assert error_code(lambda: assume_as(world, world.amplitude, role)) == "AccessDenied"
    assert error_code(lambda: cohort_destination.assume(external_id="wrong-id")) == "AccessDenied"
    assert cohort_destination.assume().session_token


def test_simulation_answers_as_amplitude_expects(
    cohort_destination: AppliedDestination, amplitude_session: boto3.Session
) -> None:
    role = cohort_destination.destination.role_arn
    stream = cohort_destination.destination.stream_arn
    other = stream.replace("amplitude-cohorts", "other")

    assert simulate(amplitude_session, role, list(c.KINESIS_WRITE_ACTIONS), stream) == [
        "allowed",
        "allowed",
    ]
    assert simulate(amplitude_session, role, ["kinesis:GetRecords"], stream) == ["implicitDeny"]
    assert simulate(amplitude_session, role, ["kinesis:PutRecords"], other) == ["implicitDeny"]


@pytest.fixture
def cmk(moto_world: Any) -> str:
    kms = moto_world.client("kms", moto_world.customer_admin)
    return str(kms.create_key(Description="cohort stream key")["KeyMetadata"]["Arn"])


@pytest.fixture
def cohort_config(request: pytest.FixtureRequest) -> dict[str, str]:
    if "cmk" not in request.fixturenames:
        return {}
    return {"encryption": "KMS", "kmsKeyArn": request.getfixturevalue("cmk")}


def test_cmk_stack_may_generate_data_keys_on_its_key_only(
    cmk: str, cohort_destination: AppliedDestination, amplitude_session: boto3.Session
) -> None:
    role = cohort_destination.destination.role_arn
    admin = cohort_destination.world.client("kinesis", cohort_destination.world.customer_admin)
    summary = admin.describe_stream_summary(StreamName="amplitude-cohorts")
    other_key = cohort_destination.world.client(
        "kms", cohort_destination.world.customer_admin
    ).create_key()["KeyMetadata"]["Arn"]

    assert summary["StreamDescriptionSummary"]["KeyId"] == cmk
    assert simulate(amplitude_session, role, ["kms:GenerateDataKey"], cmk) == ["allowed"]
    assert simulate(amplitude_session, role, ["kms:GenerateDataKey"], other_key) == ["implicitDeny"]
    kms = amplitude_session.client("kms")
    assert kms.generate_data_key(KeyId=cmk, KeySpec="AES_256")["KeyId"]
