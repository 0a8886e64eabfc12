"""The IAM gaps patched into moto: AssumeRole trust, SimulatePrincipalPolicy, resource scoping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.responses import IamResponse
from moto.kinesis.responses import KinesisResponse
from moto.kms.responses import KmsResponse

from provisioning import constants as c
from provisioning.policies import trust_policy, write_policy
from sandbox import iam_gaps
from sandbox.server import start_server
from sandbox.world import Credentials, MotoWorld, moto_world

pytestmark = pytest.mark.integration

STREAM = "amplitude-cohorts"
OTHER_STREAM = "someone-elses-stream"
ROLE = "amplitude-kinesis-cohort"
STRANGER_ACCOUNT = "210987654321"
ASSUME_ANY_ROLE = {
    "Version": c.POLICY_VERSION,
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
}


@dataclass(frozen=True)
class Destination:
    """What `pulumi up` leaves in the customer's account, as the tests need it."""

    world: MotoWorld
    stream_arn: str
    other_stream_arn: str
    role_arn: str

    def assume(self, credentials: Credentials, external_id: str | None = None) -> Credentials:
        """Assume the destination role as the given principal."""
        extra = {} if external_id is None else {"ExternalId": external_id}
        sts = self.world.client("sts", credentials)
        response = sts.assume_role(RoleArn=self.role_arn, RoleSessionName="amplitude", **extra)
        return Credentials.from_assume_role(response)

    def as_amplitude(self) -> Credentials:
        """The role session Amplitude delivers with."""
        return self.assume(self.world.amplitude)


def _provision(
    world: MotoWorld,
    external_id: str | None = None,
    kms_key_arn: str | None = None,
    role_name: str = ROLE,
) -> Destination:
    admin = world.customer_admin
    kinesis = world.client("kinesis", admin)
    iam = world.client("iam", admin)
    arns = []
    for name in (STREAM, OTHER_STREAM):
        kinesis.create_stream(StreamName=name, ShardCount=1)
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        arns.append(summary["StreamARN"])
    trust = trust_policy(world.amplitude_account_id, external_id)
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    document = write_policy(arns[0], role_arn, kms_key_arn)
    iam.put_role_policy(RoleName=role_name, PolicyName="write", PolicyDocument=json.dumps(document))
    return Destination(world, arns[0], arns[1], role_arn)


@pytest.fixture
def world() -> Iterator[MotoWorld]:
    with moto_world() as w:
        yield w


@pytest.fixture(params=["in-process", "server"])
def any_world(request: pytest.FixtureRequest) -> Iterator[MotoWorld]:
    """The same checks in-process (mock_aws) and over HTTP (start_server)."""
    if request.param == "in-process":
        with moto_world() as w:
            yield w
    else:
        with start_server() as served:
            yield served.world


@pytest.fixture
def destination(world: MotoWorld) -> Destination:
    return _provision(world)


def _error(exc_info: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = exc_info.value.response["Error"]
    return error["Code"], error["Message"]


def _denied_assume(caller_arn: str, role_arn: str) -> tuple[str, str]:
    message = (
        f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )
    return "AccessDenied", message


# --- sts:AssumeRole -----------------------------------------------------------------------


def test_core_checks(any_world: MotoWorld) -> None:
    """Trust, stream scoping and simulation, in-process and over HTTP."""
    # GIVEN the destination, provisioned by the customer's admin
    dest = _provision(any_world)
    stranger = any_world.new_principal(STRANGER_ACCOUNT, "mallory", ASSUME_ANY_ROLE)

    # WHEN Amplitude assumes the role THEN it is in, as the role
    session = dest.as_amplitude()
    identity = any_world.client("sts", session).get_caller_identity()
    assert (
        identity["Arn"]
        == f"arn:aws:sts::{any_world.customer_account_id}:assumed-role/{ROLE}/amplitude"
    )

    # AND a stranger with its own grant is not trusted
    with pytest.raises(ClientError) as denied:
        dest.assume(stranger)
    assert _error(denied) == _denied_assume(
        f"arn:aws:iam::{STRANGER_ACCOUNT}:user/mallory", dest.role_arn
    )

    # AND the session writes to its stream only
    kinesis = any_world.client("kinesis", session)
    kinesis.put_record(StreamName=STREAM, Data=b"{}", PartitionKey="u1")
    with pytest.raises(ClientError) as other:
        kinesis.put_record(StreamName=OTHER_STREAM, Data=b"{}", PartitionKey="u1")
    assert _error(other)[0] == "AccessDeniedException"

    # AND simulation agrees, on its own role only
    iam = any_world.client("iam", session)
    results = iam.simulate_principal_policy(
        PolicySourceArn=dest.role_arn,
        ActionNames=["kinesis:PutRecords", "kinesis:DeleteStream"],
        ResourceArns=[dest.stream_arn],
    )["EvaluationResults"]
    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]
    with pytest.raises(ClientError) as foreign:
        iam.simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{any_world.customer_account_id}:role/other",
            ActionNames=["kinesis:PutRecord"],
        )
    assert _error(foreign)[0] == "AccessDenied"


def test_amplitude_assumes_the_role(destination: Destination) -> None:
    session = destination.as_amplitude()

    identity = destination.world.client("sts", session).get_caller_identity()

    assert identity["Account"] == destination.world.customer_account_id
    assert identity["Arn"].endswith(f":assumed-role/{ROLE}/amplitude")


@pytest.mark.parametrize(
    ("account", "name", "policy"),
    [
        (STRANGER_ACCOUNT, "mallory", ASSUME_ANY_ROLE),  # a third account, with its own grant
        ("123456789012", "unrelated", ASSUME_ANY_ROLE),  # the customer's own user: not trusted
        (c.AMPLITUDE_ACCOUNT_ID, "intern", None),  # trusted account, but no identity grant
    ],
)
def test_others_are_denied(
    destination: Destination, account: str, name: str, policy: dict[str, Any] | None
) -> None:
    caller = destination.world.new_principal(account, name, policy)

    with pytest.raises(ClientError) as exc_info:
        destination.assume(caller)

    code, message = _error(exc_info)
    assert code == "AccessDenied"
    assert message.startswith(_denied_assume(f"arn:aws:iam::{account}:user/{name}", "")[1])
    assert destination.role_arn in message


def test_customer_admin_is_not_trusted_either(destination: Destination) -> None:
    # GIVEN the admin may do anything in its account
    # THEN it still may not assume a role that trusts Amplitude
    with pytest.raises(ClientError) as exc_info:
        destination.assume(destination.world.customer_admin)

    assert _error(exc_info) == _denied_assume(
        "arn:aws:iam::123456789012:user/customer-admin", destination.role_arn
    )


def test_identity_deny_wins_over_trust(destination: Destination) -> None:
    policy = {
        "Version": c.POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
            {"Effect": "Deny", "Action": "sts:*", "Resource": destination.role_arn},
        ],
    }
    caller = destination.world.new_principal(c.AMPLITUDE_ACCOUNT_ID, "blocked", policy)

    with pytest.raises(ClientError) as exc_info:
        destination.assume(caller)

    assert _error(exc_info)[1].endswith("with an explicit deny in an identity-based policy")


def test_missing_role_is_access_denied(world: MotoWorld) -> None:
    missing = f"arn:aws:iam::{world.customer_account_id}:role/nope"

    with pytest.raises(ClientError) as exc_info:
        world.client("sts", world.amplitude).assume_role(RoleArn=missing, RoleSessionName="amp")

    assert _error(exc_info) == _denied_assume(
        f"arn:aws:iam::{c.AMPLITUDE_ACCOUNT_ID}:user/amplitude-exporter", missing
    )


@pytest.mark.parametrize(
    ("external_id", "allowed"),
    [(None, False), ("wrong-external-id", False), ("right-external-id", True)],
)
def test_external_id(world: MotoWorld, external_id: str | None, allowed: bool) -> None:
    dest = _provision(world, external_id="right-external-id")

    if allowed:
        assert dest.assume(world.amplitude, external_id).access_key_id
        return
    with pytest.raises(ClientError) as exc_info:
        dest.assume(world.amplitude, external_id)
    assert _error(exc_info)[0] == "AccessDenied"


@pytest.mark.parametrize(
    ("principal", "identity_grant", "allowed"),
    [
        # moto alone denies all of these: it compares ":root" by exact ARN.
        ("root", True, True),
        ("root", False, False),  # an account principal delegates to the identity policy
        ("user", False, True),  # a named principal in the same account needs no identity grant
    ],
)
def test_same_account_semantics(
    world: MotoWorld, principal: str, identity_grant: bool, allowed: bool
) -> None:
    account = world.customer_account_id
    user = world.new_principal(account, "operator", ASSUME_ANY_ROLE if identity_grant else None)
    trusted = (
        f"arn:aws:iam::{account}:root"
        if principal == "root"
        else f"arn:aws:iam::{account}:user/operator"
    )
    trust = {
        "Version": c.POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}
        ],
    }
    iam = world.client("iam", world.customer_admin)
    role_arn = iam.create_role(RoleName="ops", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    sts = world.client("sts", user)

    if allowed:
        assert sts.assume_role(RoleArn=role_arn, RoleSessionName="ops")["AssumedRoleUser"]
        return
    with pytest.raises(ClientError) as exc_info:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="ops")
    assert _error(exc_info)[1].endswith(
        "because no identity-based policy allows the sts:AssumeRole action"
    )


def test_without_the_patch_moto_lets_a_stranger_in(destination: Destination) -> None:
    """Guards the patch's reason to exist: moto never reads a cross-account trust policy."""
    stranger = destination.world.new_principal(STRANGER_ACCOUNT, "mallory", ASSUME_ANY_ROLE)
    iam_gaps.uninstall()
    try:
        assert destination.assume(stranger).access_key_id
    finally:
        iam_gaps.install()
    with pytest.raises(ClientError):
        destination.assume(stranger)


# --- Kinesis calls are authorized on the stream ARN ---------------------------------------


def test_without_the_patch_moto_denies_writes_to_the_granted_stream(
    destination: Destination,
) -> None:
    """Guards the patch's reason to exist: moto authorizes Kinesis calls on "*", not the ARN."""
    kinesis = destination.world.client("kinesis", destination.as_amplitude())
    iam_gaps.uninstall()
    try:
        with pytest.raises(ClientError) as exc_info:
            kinesis.put_record(StreamName=STREAM, Data=b"{}", PartitionKey="u1")
    finally:
        iam_gaps.install()
    # moto's XML AccessDenied body is unreadable to botocore's JSON parser: only the status shows.
    assert _error(exc_info)[0] == "403"


def test_session_writes_to_its_stream(destination: Destination) -> None:
    kinesis = destination.world.client("kinesis", destination.as_amplitude())

    kinesis.put_record(StreamName=STREAM, Data=b"{}", PartitionKey="u1")
    kinesis.put_record(StreamARN=destination.stream_arn, Data=b"{}", PartitionKey="u1")
    response = kinesis.put_records(
        StreamName=STREAM, Records=[{"Data": b"{}", "PartitionKey": "u2"}] * 3
    )

    assert response["FailedRecordCount"] == 0


def _shard_iterator(world: MotoWorld, stream: str) -> str:
    kinesis = world.client("kinesis", world.customer_admin)
    shard_id = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    return str(
        kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (
            "PutRecord",
            lambda k, _: k.put_record(StreamName=OTHER_STREAM, Data=b"x", PartitionKey="p"),
        ),
        (
            "PutRecords",
            lambda k, _: k.put_records(
                StreamName=OTHER_STREAM, Records=[{"Data": b"x", "PartitionKey": "p"}]
            ),
        ),
        ("DescribeStream", lambda k, _: k.describe_stream(StreamName=STREAM)),
        ("GetRecords", lambda k, it: k.get_records(ShardIterator=it)),
        ("DeleteStream", lambda k, _: k.delete_stream(StreamName=STREAM)),
        ("ListStreams", lambda k, _: k.list_streams()),
    ],
)
def test_session_is_denied_everything_else(
    destination: Destination, action: str, call: Any
) -> None:
    kinesis = destination.world.client("kinesis", destination.as_amplitude())
    iterator = _shard_iterator(destination.world, STREAM)

    with pytest.raises(ClientError) as exc_info:
        call(kinesis, iterator)

    code, message = _error(exc_info)
    assert code == "AccessDeniedException"
    assert f"is not authorized to perform: kinesis:{action} on resource: " in message
    assert exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_reader_scoped_to_one_stream_reads_it_only(destination: Destination) -> None:
    # GIVEN a consumer allowed to read the destination stream only
    world = destination.world
    read = {
        "Version": c.POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"],
                "Resource": destination.stream_arn,
            }
        ],
    }
    reader = world.client("kinesis", world.new_principal(world.customer_account_id, "reader", read))
    world.client("kinesis", world.customer_admin).put_record(
        StreamName=STREAM, Data=b"hello", PartitionKey="p"
    )

    # WHEN it reads, through a shard iterator (GetRecords names no stream)
    records = reader.get_records(ShardIterator=_shard_iterator(world, STREAM))["Records"]

    # THEN it gets the record, and the other stream's iterator is refused
    assert [r["Data"] for r in records] == [b"hello"]
    with pytest.raises(ClientError) as exc_info:
        reader.get_records(ShardIterator=_shard_iterator(world, OTHER_STREAM))
    assert _error(exc_info)[0] == "AccessDeniedException"


def test_admin_with_wildcards_still_does_everything(destination: Destination) -> None:
    kinesis = destination.world.client("kinesis", destination.world.customer_admin)

    names = kinesis.list_streams()["StreamNames"]
    kinesis.delete_stream(StreamName=OTHER_STREAM)

    assert sorted(names) == sorted([STREAM, OTHER_STREAM])


# --- iam:SimulatePrincipalPolicy ----------------------------------------------------------


def _simulate(
    iam: Any, source_arn: str, actions: list[str], resources: list[str] | None = None
) -> list[dict[str, Any]]:
    extra = {} if resources is None else {"ResourceArns": resources}
    response = iam.simulate_principal_policy(
        PolicySourceArn=source_arn, ActionNames=actions, **extra
    )
    assert response["IsTruncated"] is False
    return list(response["EvaluationResults"])


def test_simulation_allows_the_two_writes_on_the_stream(destination: Destination) -> None:
    iam = destination.world.client("iam", destination.as_amplitude())

    results = _simulate(
        iam, destination.role_arn, list(c.KINESIS_WRITE_ACTIONS), [destination.stream_arn]
    )

    assert results == [
        {
            "EvalActionName": action,
            "EvalResourceName": destination.stream_arn,
            "EvalDecision": "allowed",
            "MatchedStatements": [{"SourcePolicyId": "write", "SourcePolicyType": "role"}],
            "MissingContextValues": [],
        }
        for action in c.KINESIS_WRITE_ACTIONS
    ]


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("kinesis:PutRecord", "other"),
        ("kinesis:PutRecords", "other"),
        ("kinesis:PutRecord", "*"),  # the default resource is not the stream
        ("kinesis:DeleteStream", "stream"),
        ("kinesis:GetRecords", "stream"),
        ("iam:SimulatePrincipalPolicy", "stream"),
        ("sts:AssumeRole", "role"),
    ],
)
def test_simulation_denies_implicitly_what_is_not_granted(
    destination: Destination, action: str, resource: str
) -> None:
    arn = {
        "other": destination.other_stream_arn,
        "stream": destination.stream_arn,
        "role": destination.role_arn,
        "*": "*",
    }[resource]
    iam = destination.world.client("iam", destination.as_amplitude())

    (result,) = _simulate(iam, destination.role_arn, [action], [arn])

    assert result["EvalDecision"] == "implicitDeny"
    assert result["MatchedStatements"] == []


def test_simulation_default_resource_is_star(destination: Destination) -> None:
    iam = destination.world.client("iam", destination.as_amplitude())

    (result,) = _simulate(iam, destination.role_arn, ["kinesis:PutRecord"])

    assert result["EvalResourceName"] == "*"


def test_simulation_reports_explicit_deny(destination: Destination) -> None:
    world = destination.world
    deny = {
        "Version": c.POLICY_VERSION,
        "Statement": [{"Effect": "Deny", "Action": "kinesis:PutRecords", "Resource": "*"}],
    }
    world.client("iam", world.customer_admin).put_role_policy(
        RoleName=ROLE, PolicyName="no-batches", PolicyDocument=json.dumps(deny)
    )
    iam = world.client("iam", destination.as_amplitude())

    results = _simulate(
        iam, destination.role_arn, list(c.KINESIS_WRITE_ACTIONS), [destination.stream_arn]
    )

    assert [r["EvalDecision"] for r in results] == ["allowed", "explicitDeny"]
    assert results[1]["MatchedStatements"] == [
        {"SourcePolicyId": "no-batches", "SourcePolicyType": "role"}
    ]


def test_simulating_another_role_is_access_denied(destination: Destination) -> None:
    # GIVEN a second role in the same account
    world = destination.world
    other = _provision_role_only(world, "other-role")
    iam = world.client("iam", destination.as_amplitude())

    # WHEN the session simulates it THEN IAM authorizes on PolicySourceArn and refuses
    with pytest.raises(ClientError) as exc_info:
        _simulate(iam, other, ["kinesis:PutRecord"])

    session = f"arn:aws:sts::{world.customer_account_id}:assumed-role/{ROLE}/amplitude"
    assert _error(exc_info) == (
        "AccessDenied",
        f"User: {session} is not authorized to perform: iam:SimulatePrincipalPolicy"
        f" on resource: {other}"
        " because no identity-based policy allows the iam:SimulatePrincipalPolicy action",
    )


def _provision_role_only(world: MotoWorld, name: str) -> str:
    trust = trust_policy(world.amplitude_account_id)
    iam = world.client("iam", world.customer_admin)
    return str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    )


def test_simulation_of_missing_principal_is_no_such_entity(world: MotoWorld) -> None:
    iam = world.client("iam", world.customer_admin)

    with pytest.raises(ClientError) as exc_info:
        _simulate(
            iam, f"arn:aws:iam::{world.customer_account_id}:role/ghost", ["kinesis:PutRecord"]
        )

    assert _error(exc_info) == ("NoSuchEntity", "The role with name ghost cannot be found.")


def test_simulation_honours_managed_policies_and_boundary(world: MotoWorld) -> None:
    # GIVEN a role whose attached policy allows writes but whose boundary allows only PutRecord
    iam = world.client("iam", world.customer_admin)
    stream_arn = f"arn:aws:kinesis:us-east-1:{world.customer_account_id}:stream/s"

    def managed(name: str, actions: list[str]) -> str:
        document = {
            "Version": c.POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": stream_arn}],
        }
        policy = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
        return str(policy["Policy"]["Arn"])

    writes = managed("writes", list(c.KINESIS_WRITE_ACTIONS))
    boundary = managed("boundary", ["kinesis:PutRecord"])
    role_arn = _provision_role_only(world, "bounded")
    iam.attach_role_policy(RoleName="bounded", PolicyArn=writes)
    iam.put_role_permissions_boundary(RoleName="bounded", PermissionsBoundary=boundary)

    # WHEN simulated
    results = _simulate(iam, role_arn, list(c.KINESIS_WRITE_ACTIONS), [stream_arn])

    # THEN the boundary caps what the attached policy allows
    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]
    assert results[0]["MatchedStatements"] == [
        {"SourcePolicyId": writes, "SourcePolicyType": "user-managed"}
    ]
    assert [r["PermissionsBoundaryDecisionDetail"] for r in results] == [
        {"AllowedByPermissionsBoundary": True},
        {"AllowedByPermissionsBoundary": False},
    ]


def test_simulation_understands_not_resource(world: MotoWorld) -> None:
    iam = world.client("iam", world.customer_admin)
    secret = f"arn:aws:kinesis:us-east-1:{world.customer_account_id}:stream/secret"
    public = f"arn:aws:kinesis:us-east-1:{world.customer_account_id}:stream/public"
    document = {
        "Version": c.POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecord", "NotResource": secret}],
    }
    role_arn = _provision_role_only(world, "not-secret")
    iam.put_role_policy(RoleName="not-secret", PolicyName="nr", PolicyDocument=json.dumps(document))

    results = _simulate(iam, role_arn, ["kinesis:PutRecord"], [public, secret])

    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]


def test_simulation_of_a_user_includes_group_policies(world: MotoWorld) -> None:
    iam = world.client("iam", world.customer_admin)
    stream_arn = f"arn:aws:kinesis:us-east-1:{world.customer_account_id}:stream/s"
    group_policy = {
        "Version": c.POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": "kinesis:Get*", "Resource": stream_arn}],
    }
    world.new_principal(world.customer_account_id, "analyst")
    iam.create_group(GroupName="readers")
    iam.put_group_policy(
        GroupName="readers", PolicyName="read", PolicyDocument=json.dumps(group_policy)
    )
    iam.add_user_to_group(GroupName="readers", UserName="analyst")
    user_arn = f"arn:aws:iam::{world.customer_account_id}:user/analyst"

    results = _simulate(iam, user_arn, ["kinesis:GetRecords", "kinesis:PutRecord"], [stream_arn])

    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]
    assert results[0]["MatchedStatements"] == [
        {"SourcePolicyId": "read", "SourcePolicyType": "group"}
    ]


def test_simulation_reports_missing_context_for_conditions(world: MotoWorld) -> None:
    iam = world.client("iam", world.customer_admin)
    conditional = {
        "Version": c.POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "kinesis:PutRecord",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            }
        ],
    }
    role_arn = _provision_role_only(world, "conditional")
    iam.put_role_policy(
        RoleName="conditional", PolicyName="ip", PolicyDocument=json.dumps(conditional)
    )

    put, delete = _simulate(iam, role_arn, ["kinesis:PutRecord", "kinesis:DeleteStream"])

    assert put["EvalDecision"] == "implicitDeny"
    assert put["MissingContextValues"] == ["aws:SourceIp"]
    assert delete["MissingContextValues"] == []  # the conditioned statement is not about it


# --- KMS ----------------------------------------------------------------------------------


def test_cmk_grant_covers_its_key_only(world: MotoWorld) -> None:
    # GIVEN a destination whose write policy names a customer-managed key
    kms_admin = world.client("kms", world.customer_admin)
    key_arn = kms_admin.create_key()["KeyMetadata"]["Arn"]
    other_key_arn = kms_admin.create_key()["KeyMetadata"]["Arn"]
    dest = _provision(world, kms_key_arn=key_arn)
    session = dest.as_amplitude()

    # WHEN simulated and called for real
    results = _simulate(
        world.client("iam", session), dest.role_arn, [c.KMS_WRITE_ACTION], [key_arn, other_key_arn]
    )
    kms = world.client("kms", session)
    data_key = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")

    # THEN its key is allowed and the other is not
    assert [r["EvalDecision"] for r in results] == ["allowed", "implicitDeny"]
    assert data_key["KeyId"] == key_arn
    with pytest.raises(ClientError) as exc_info:
        kms.generate_data_key(KeyId=other_key_arn, KeySpec="AES_256")
    assert _error(exc_info)[0] == "AccessDeniedException"


# --- install / uninstall ------------------------------------------------------------------


def test_install_and_uninstall_are_idempotent_and_restore_moto() -> None:
    original_iam_resource = IamResponse.__dict__["_determine_resource"]
    assert not iam_gaps.is_installed()

    iam_gaps.install()
    iam_gaps.install()
    assert "_determine_resource" in KinesisResponse.__dict__
    assert "_determine_resource" in KmsResponse.__dict__
    assert "simulate_principal_policy" in IamResponse.__dict__

    iam_gaps.uninstall()
    iam_gaps.uninstall()
    assert "_determine_resource" not in KinesisResponse.__dict__
    assert "_determine_resource" not in KmsResponse.__dict__
    assert "simulate_principal_policy" not in IamResponse.__dict__
    assert IamResponse.__dict__["_determine_resource"] is original_iam_resource


def test_context_manager_nests() -> None:
    with iam_gaps.iam_gaps_installed():
        with iam_gaps.iam_gaps_installed():
            pass
        assert iam_gaps.is_installed()  # the inner block did not undo the outer one
    assert not iam_gaps.is_installed()
