"""Day 2 of a destination: every config key changed on an applied stack, as the provider decides."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from provisioning.keys import DESTINATION_KEY_NAMES
from sandbox.engine import deploy
from sandbox.engine.handler import AwsContext
from sandbox.engine.registry import handler_for
from sandbox.engine.schema import ROLE as ROLE_TYPE
from sandbox.engine.stack import load_stack_config
from sandbox.engine.state import ResourceState, StackState, load_state, save_state
from sandbox.lifecycle import RefusedPlan, StackPlace, account_of, preview, up
from sandbox.world import MotoWorld

pytestmark = pytest.mark.integration
REGION = "us-east-1"
STREAM, ROLE, POLICY, ATTACH = "cohort-stream", "cohort-role", "cohort-write", "cohort-attach"
BOUNDARY_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": "*"}],
}
# Base config of every case: unprotected, so cases that replace the stream may (with --yes).
BASE = {c.CONFIG_PROTECT_STREAM: "false"}


class Stack:
    """One stack in one moto world, applied with `local up`'s library calls."""

    def __init__(self, world: MotoWorld, tmp_path: Path, base: dict[str, str]) -> None:
        self.world = world
        self.base = base
        self.ctx = AwsContext(world.customer_admin.session(REGION), REGION)
        self.place = StackPlace(tmp_path / "stacks" / "dev.json")

    def config(self, overrides: dict[str, str]) -> Any:
        return load_stack_config("dev", overrides={**self.base, **overrides})

    def up(self, overrides: dict[str, str] | None = None, *, yes: bool = True) -> deploy.Outcome:
        return up(
            self.config(overrides or {}), self.ctx, self.place, yes=yes, on_plan=lambda _: None
        )

    def preview(self, overrides: dict[str, str] | None = None) -> deploy.Outcome:
        return preview(self.config(overrides or {}), self.ctx, self.place)

    def client(self, service: str) -> Any:
        return self.world.client(service, self.world.customer_admin)


def ops(outcome: deploy.Outcome) -> dict[str, str]:
    """Each custom resource's headline op: replace wins over its create/delete halves."""
    result: dict[str, str] = {}
    for step in outcome.steps:
        name = step.urn.rsplit("::", 1)[-1]
        if name == "cohort":
            continue
        if step.op in (deploy.CREATE_REPLACEMENT, deploy.DELETE_REPLACED):
            result.setdefault(name, deploy.REPLACE)
        elif result.get(name) != deploy.REPLACE:
            result[name] = step.op
    return result


@pytest.fixture
def boundary_arn(moto_world: MotoWorld) -> str:
    iam = moto_world.client("iam", moto_world.customer_admin)
    created = iam.create_policy(PolicyName="boundary", PolicyDocument=json.dumps(BOUNDARY_DOC))
    return str(created["Policy"]["Arn"])


@pytest.fixture
def kms_key_arn(moto_world: MotoWorld) -> str:
    return str(
        moto_world.client("kms", moto_world.customer_admin).create_key()["KeyMetadata"]["Arn"]
    )


def _summary(stack: Stack, name: str) -> dict[str, Any]:
    kinesis = stack.client("kinesis")
    return dict(kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"])


def _role(stack: Stack, name: str = c.DEFAULT_ROLE_NAME) -> dict[str, Any]:
    return dict(stack.client("iam").get_role(RoleName=name)["Role"])


def _policy_document(stack: Stack, arn: str) -> dict[str, Any]:
    iam = stack.client("iam")
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return dict(
        iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    )


Check = Callable[[Stack, dict[str, Any]], None]
SAME_ALL = {STREAM: "same", ROLE: "same", POLICY: "same", ATTACH: "same"}

# key -> (base overrides, changed overrides, expected op per resource, what AWS holds after)
CASES: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str], Check]] = {
    c.CONFIG_STREAM_NAME: (
        {},
        {c.CONFIG_STREAM_NAME: "cohorts-renamed"},
        # name is ForceNew; the policy's description names the stream (ForceNew too), and the
        # new policy's ARN replaces the attachment.
        {STREAM: "replace", ROLE: "same", POLICY: "replace", ATTACH: "replace"},
        lambda s, out: _expect(
            _summary(s, "cohorts-renamed")["StreamStatus"] == "ACTIVE"
            and c.DEFAULT_STREAM_NAME not in s.client("kinesis").list_streams()["StreamNames"]
        ),
    ),
    c.CONFIG_STREAM_MODE: (
        {},
        {c.CONFIG_STREAM_MODE: "PROVISIONED"},
        {**SAME_ALL, STREAM: "update"},
        lambda s, out: _expect(
            _summary(s, c.DEFAULT_STREAM_NAME)["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
        ),
    ),
    c.CONFIG_SHARD_COUNT: (
        {c.CONFIG_STREAM_MODE: "PROVISIONED", c.CONFIG_SHARD_COUNT: "1"},
        {c.CONFIG_STREAM_MODE: "PROVISIONED", c.CONFIG_SHARD_COUNT: "2"},
        {**SAME_ALL, STREAM: "update"},
        lambda s, out: _expect(_summary(s, c.DEFAULT_STREAM_NAME)["OpenShardCount"] == 2),
    ),
    c.CONFIG_RETENTION_HOURS: (
        {c.CONFIG_RETENTION_HOURS: "72"},
        {c.CONFIG_RETENTION_HOURS: "48"},
        {**SAME_ALL, STREAM: "update"},
        lambda s, out: _expect(_summary(s, c.DEFAULT_STREAM_NAME)["RetentionPeriodHours"] == 48),
    ),
    c.CONFIG_ENCRYPTION: (
        {},
        {c.CONFIG_ENCRYPTION: "NONE"},
        {**SAME_ALL, STREAM: "update"},
        lambda s, out: _expect(_summary(s, c.DEFAULT_STREAM_NAME)["EncryptionType"] == "NONE"),
    ),
    c.CONFIG_KMS_KEY_ARN: (
        {},
        {c.CONFIG_ENCRYPTION: "KMS", c.CONFIG_KMS_KEY_ARN: "<kms>"},
        # a customer key also adds kms:GenerateDataKey to the policy (in place)
        {**SAME_ALL, STREAM: "update", POLICY: "update"},
        lambda s, out: _expect(
            _summary(s, c.DEFAULT_STREAM_NAME)["KeyId"] == out["kms"]
            and any(
                c.KMS_WRITE_ACTION in json.dumps(st)
                for st in _policy_document(s, out[c.OUTPUT_POLICY_ARN])["Statement"]
            )
        ),
    ),
    c.CONFIG_ROLE_NAME: (
        {},
        {c.CONFIG_ROLE_NAME: "cohort-writer"},
        # name is ForceNew (a fixed name: delete first, the attachment with it); the policy's
        # document names the role's ARN, which it updates in place.
        {STREAM: "same", ROLE: "replace", POLICY: "update", ATTACH: "replace"},
        lambda s, out: _expect(
            _role(s, "cohort-writer")["Arn"] == out[c.OUTPUT_ROLE_ARN]
            and s.client("iam").list_attached_role_policies(RoleName="cohort-writer")[
                "AttachedPolicies"
            ][0]["PolicyArn"]
            == out[c.OUTPUT_POLICY_ARN]
        ),
    ),
    c.CONFIG_ROLE_PATH: (
        {},
        {c.CONFIG_ROLE_PATH: "/amplitude/"},
        # path is ForceNew on both the role and the policy
        {STREAM: "same", ROLE: "replace", POLICY: "replace", ATTACH: "replace"},
        lambda s, out: _expect(_role(s)["Path"] == "/amplitude/"),
    ),
    c.CONFIG_MAX_SESSION_SECONDS: (
        {},
        {c.CONFIG_MAX_SESSION_SECONDS: "7200"},
        {**SAME_ALL, ROLE: "update"},
        lambda s, out: _expect(_role(s)["MaxSessionDuration"] == 7200),
    ),
    c.CONFIG_PERMISSIONS_BOUNDARY_ARN: (
        {},
        {c.CONFIG_PERMISSIONS_BOUNDARY_ARN: "<boundary>"},
        {**SAME_ALL, ROLE: "update"},
        lambda s, out: _expect(
            _role(s)["PermissionsBoundary"]["PermissionsBoundaryArn"] == out["boundary"]
        ),
    ),
    c.CONFIG_TRUSTED_ACCOUNT_ID: (
        {},
        {c.CONFIG_TRUSTED_ACCOUNT_ID: "210987654321"},
        {**SAME_ALL, ROLE: "update"},
        lambda s, out: _expect("210987654321" in json.dumps(_role(s)["AssumeRolePolicyDocument"])),
    ),
    c.CONFIG_EXTERNAL_ID: (
        {},
        {c.CONFIG_EXTERNAL_ID: "ext-0042"},
        {**SAME_ALL, ROLE: "update"},
        lambda s, out: _expect("ext-0042" in json.dumps(_role(s)["AssumeRolePolicyDocument"])),
    ),
    c.CONFIG_DISPLAY_NAME: (
        {},
        {c.CONFIG_DISPLAY_NAME: "Growth cohorts"},
        SAME_ALL,  # only the exported form changes
        lambda s, out: _expect(out[c.OUTPUT_DESTINATION][c.FORM_DISPLAY_NAME] == "Growth cohorts"),
    ),
    c.CONFIG_TAGS: (
        {c.CONFIG_TAGS: '{"team": "growth", "old": "x"}'},
        {c.CONFIG_TAGS: '{"team": "data"}'},
        {**SAME_ALL, STREAM: "update", ROLE: "update", POLICY: "update"},
        lambda s, out: _expect(
            s.client("kinesis").list_tags_for_stream(StreamName=c.DEFAULT_STREAM_NAME)["Tags"]
            == [{"Key": "team", "Value": "data"}]
            and _role(s)["Tags"] == [{"Key": "team", "Value": "data"}]
        ),
    ),
    c.CONFIG_KMS_KEY_CROSS_ACCOUNT: (
        {c.CONFIG_ENCRYPTION: "KMS", c.CONFIG_KMS_KEY_ARN: "<kms>"},
        {
            c.CONFIG_ENCRYPTION: "KMS",
            c.CONFIG_KMS_KEY_ARN: "<kms>",
            c.CONFIG_KMS_KEY_CROSS_ACCOUNT: "true",
        },
        SAME_ALL,  # it lifts the program's account check; no resource input changes
        lambda s, out: _expect(_summary(s, c.DEFAULT_STREAM_NAME)["KeyId"] == out["kms"]),
    ),
    c.CONFIG_PROTECT_STREAM: (
        {},
        {c.CONFIG_PROTECT_STREAM: "true"},
        SAME_ALL,  # protection is the engine's, not AWS's
        lambda s, out: _expect(_protected(s) == [STREAM]),
    ),
    c.CONFIG_POLICY_NAME: (
        {},
        {c.CONFIG_POLICY_NAME: "amplitude-kinesis-write"},
        {STREAM: "same", ROLE: "same", POLICY: "replace", ATTACH: "replace"},
        lambda s, out: _expect(
            out[c.OUTPUT_POLICY_ARN].endswith(":policy/amplitude-kinesis-write")
        ),
    ),
}


def _protected(stack: Stack) -> list[str]:
    assert stack.place.path is not None
    state = load_state(stack.place.path, project=c.PROJECT_NAME, stack="dev")
    return [r.name for r in state.resources.values() if r.protect]


def _expect(condition: bool) -> None:
    assert condition


def _resolve(overrides: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    return {k: extra.get(v, v) for k, v in overrides.items()}


def _put_record(stack: Stack, stream: str) -> str:
    kinesis = stack.client("kinesis")
    return str(
        kinesis.put_record(StreamName=stream, Data=b'{"day": 1}', PartitionKey="k")[
            "SequenceNumber"
        ]
    )


def _records(stack: Stack, stream: str) -> list[bytes]:
    kinesis = stack.client("kinesis")
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found.extend(r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"])
    return found


@pytest.mark.parametrize("key", sorted(CASES))
def test_changing_a_config_key_on_an_applied_stack(
    key: str, moto_world: MotoWorld, tmp_path: Path, boundary_arn: str, kms_key_arn: str
) -> None:
    base, changed, expected, check = CASES[key]
    extra = {"<boundary>": boundary_arn, "<kms>": kms_key_arn}
    # GIVEN a stack applied with the base config, and a record written to its stream
    stack = Stack(moto_world, tmp_path, {**BASE, **_resolve(base, extra)})
    stack.up()
    _put_record(stack, c.DEFAULT_STREAM_NAME)

    # WHEN the key changes and `up` runs again
    planned = stack.preview(_resolve(changed, extra))
    applied = stack.up(_resolve(changed, extra))

    # THEN each resource gets the op the provider's schema decides, in the preview and the apply
    assert ops(planned) == expected
    assert ops(applied) == expected
    assert applied.run is not None
    check(stack, {**applied.run.outputs, "boundary": boundary_arn, "kms": kms_key_arn})
    # and data written before an in-place update of the stream is still there
    if expected[STREAM] == "update":
        # (moto copies records into the child shards a resharding opens: read, not counted)
        assert b'{"day": 1}' in _records(stack, c.DEFAULT_STREAM_NAME)
    # and a further up with the same config changes nothing
    assert set(ops(stack.preview(_resolve(changed, extra))).values()) == {"same"}


def test_the_table_covers_every_config_key_of_the_readme() -> None:
    documented = {"streamName", "streamMode", "shardCount", "retentionHours", "encryption"}
    assert documented <= set(CASES)
    assert set(CASES) | {
        c.CONFIG_IMPORT_STREAM,
        c.CONFIG_IMPORT_ROLE,
        c.CONFIG_IMPORT_POLICY,
    } == set(DESTINATION_KEY_NAMES)


def test_up_twice_with_the_same_config_makes_no_aws_write_call(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    # GIVEN an applied stack
    stack = Stack(moto_world, tmp_path, {})
    stack.up()
    calls: list[str] = []
    stack.ctx.session.events.register(
        "before-call.*.*", lambda model, **_: calls.append(model.name)
    )
    stack.ctx = AwsContext(stack.ctx.session, REGION)  # a new command's clients see the spy

    # WHEN up runs again with the same config
    again = stack.up()

    # THEN every step is `same` and AWS was only read
    assert {s.op for s in again.steps} == {"same"}
    assert calls, "the spy saw no calls at all"
    writes = [name for name in calls if not name.startswith(("Describe", "Get", "List"))]
    assert writes == []


def test_a_policy_update_prunes_the_oldest_version_at_five(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    # GIVEN a policy whose document has changed five times
    stack = Stack(moto_world, tmp_path, {})
    for account in ("210987654321", "210987654322", "210987654323", "210987654324", "210987654325"):
        stack.up({c.CONFIG_ROLE_NAME: f"r{account}"})
    applied = stack.up({c.CONFIG_ROLE_NAME: "final"})

    # THEN AWS keeps at most five versions, the newest the default
    assert applied.run is not None
    iam = stack.client("iam")
    versions = iam.list_policy_versions(PolicyArn=applied.run.outputs[c.OUTPUT_POLICY_ARN])[
        "Versions"
    ]
    assert len(versions) == 5
    default = [v for v in versions if v["IsDefaultVersion"]]
    assert (
        "role/final"
        in json.dumps(_policy_document(stack, applied.run.outputs[c.OUTPUT_POLICY_ARN]))
        and len(default) == 1
    )


def test_a_protected_stream_refuses_replacement_and_says_how_to_unprotect(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    stack = Stack(moto_world, tmp_path, {})  # protectStream defaults to true
    stack.up()

    with pytest.raises(RefusedPlan) as refused:
        stack.up({c.CONFIG_STREAM_NAME: "renamed"})

    message = str(refused.value)
    assert message.startswith('unable to replace resource "urn:pulumi:dev::')
    assert "as it is currently marked for protection" in message
    assert "`pulumi config set protectStream false`" in message
    assert _summary(stack, c.DEFAULT_STREAM_NAME)["StreamStatus"] == "ACTIVE"
    with pytest.raises(Exception):  # noqa: B017 - nothing was created
        _summary(stack, "renamed")


def test_replacing_the_stream_needs_yes(moto_world: MotoWorld, tmp_path: Path) -> None:
    stack = Stack(moto_world, tmp_path, BASE)
    stack.up()

    with pytest.raises(RefusedPlan, match=r"would replace the Kinesis stream .*--yes"):
        stack.up({c.CONFIG_STREAM_NAME: "renamed"}, yes=False)

    assert _summary(stack, c.DEFAULT_STREAM_NAME)["StreamStatus"] == "ACTIVE"


def test_renaming_the_role_gives_a_form_notice(moto_world: MotoWorld, tmp_path: Path) -> None:
    stack = Stack(moto_world, tmp_path, {})
    stack.up()

    planned = stack.preview({c.CONFIG_ROLE_NAME: "cohort-writer", c.CONFIG_EXTERNAL_ID: "ext-1"})

    rendered = [n.render() for n in planned.notices]
    assert any(
        "Role ARN changes from 'arn:aws:iam::123456789012:role/amplitude-kinesis-cohort' to "
        "'arn:aws:iam::123456789012:role/cohort-writer'"
        in line
        and "deliveries fail" in line
        for line in rendered
    )
    assert any("external ID changes from (not set) to (set" in line for line in rendered)
    assert all("ext-1" not in line for line in rendered)
    assert planned.notices[0].to_json()["field"] == "Role ARN"


def test_a_resource_the_program_dropped_is_deleted_unless_retained(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    # GIVEN a state that also records two streams the program no longer declares, one retained
    stack = Stack(moto_world, tmp_path, {})
    stack.up()
    kinesis = stack.client("kinesis")
    assert stack.place.path is not None
    state = load_state(stack.place.path, project=c.PROJECT_NAME, stack="dev")
    for name, retain in (("dropped", False), ("kept", True)):
        kinesis.create_stream(StreamName=name, ShardCount=1)
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        urn = f"urn:pulumi:dev::{c.PROJECT_NAME}::{deploy.STREAM}::{name}"
        state.resources[urn] = ResourceState(
            urn,
            deploy.STREAM,
            name,
            True,
            arn["StreamARN"],
            {"name": name},
            {"name": name, "arn": arn["StreamARN"]},
            retain_on_delete=retain,
        )
    save_state(stack.place.path, state)

    # WHEN up runs
    applied = stack.up()

    # THEN both are deleted from the stack, but only the unretained one from AWS
    assert ops(applied)["dropped"] == ops(applied)["kept"] == "delete"
    assert sorted(kinesis.list_streams()["StreamNames"]) == [c.DEFAULT_STREAM_NAME, "kept"]
    assert [u for u in applied.state.resources if u.endswith(("::dropped", "::kept"))] == []


def test_replaced_resources_are_deleted_dependents_first(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    # GIVEN an applied stack WHEN the stream's rename replaces the policy and its attachment
    stack = Stack(moto_world, tmp_path, BASE)
    stack.up()
    applied = stack.up({c.CONFIG_STREAM_NAME: "renamed"})

    # THEN the old attachment is detached before the old policy is deleted (AWS refuses the
    # reverse order with DeleteConflict), and the new ones exist before the old ones go
    order = [(s.op, s.urn.rsplit("::", 1)[-1]) for s in applied.steps]
    assert order.index(("delete-replaced", ATTACH)) < order.index(("delete-replaced", POLICY))
    assert order.index(("create-replacement", POLICY)) < order.index(("delete-replaced", POLICY))
    assert order.index(("delete-replaced", STREAM)) < order.index(("create-replacement", STREAM))


# A program of one role that leaves `path` (provider default "/") unset; this project's program
# sets every defaulted input, so only a customer's own program shows what the engine fills in.
BARE_ROLE_PROGRAM = """
import json
import pulumi
import pulumi_aws as aws

trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}
aws.iam.Role("bare", name="bare-role", assume_role_policy=json.dumps(trust),
             description=pulumi.Config().get("description") or "first")
"""


def test_an_update_hands_the_handler_both_sides_with_the_providers_defaults(
    moto_world: MotoWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a role applied from a program that leaves its `path` unset
    program = tmp_path / "__main__.py"
    program.write_text(BARE_ROLE_PROGRAM)
    ctx = AwsContext(moto_world.customer_admin.session(REGION), REGION)
    account = account_of(ctx)

    def apply(state: Any, description: str) -> deploy.Outcome:
        args = {"stack": "dev", "program": program, "config": {"description": description}}
        outcome, refusals = deploy.plan(args, ctx=ctx, state=state, account=account, execute=True)
        assert refusals == []
        return outcome

    first = apply(StackState(c.PROJECT_NAME, "dev"), "first")
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    role_class = type(handler_for(ROLE_TYPE, "bare"))
    update = role_class.update

    def recording(self: Any, ctx: Any, rid: str, outputs: Any, old: Any, new: Any) -> Any:
        seen.append((dict(old), dict(new)))
        return update(self, ctx, rid, outputs, old, new)

    monkeypatch.setattr(role_class, "update", recording)

    # WHEN its description changes (an in-place update)
    second = apply(first.state, "second")

    # THEN the handler saw `path` filled with the provider's default on both sides, as the
    # provider's Check fills it, and AWS holds the new description on the same path
    assert ops(second)["bare"] == "update"
    ((old, new),) = seen
    assert old["path"] == new["path"] == "/"
    role = moto_world.client("iam", moto_world.customer_admin).get_role(RoleName="bare-role")
    assert (role["Role"]["Path"], role["Role"]["Description"]) == ("/", "second")
