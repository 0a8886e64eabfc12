"""The local apply engine creates what the program declares, as the AWS provider would."""

import json
import re
import shutil
from pathlib import Path

import pytest

from provisioning.errors import ConfigError
from sandbox.engine.runner import PROGRAM_DIR
from sandbox.engine.stack import StackConfig, apply, load_stack_config, parse_overrides
from sandbox.errors import ApplyError, UnsupportedResourceError
from sandbox.streams import read_records
from sandbox.world import MotoWorld

pytestmark = pytest.mark.integration
BOUNDARY_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": "*"}],
}


def test_apply_creates_every_resource_with_its_properties(moto_world: MotoWorld) -> None:
    # GIVEN a boundary policy and a stack using most knobs
    iam = moto_world.client("iam", moto_world.customer_admin)
    boundary = iam.create_policy(PolicyName="boundary", PolicyDocument=json.dumps(BOUNDARY_DOC))
    config = StackConfig(
        stack="dev",
        values={
            "streamName": "cohorts-dev",
            "streamMode": "PROVISIONED",
            "shardCount": "2",
            "retentionHours": "72",
            "rolePath": "/amplitude/",
            "maxSessionSeconds": "7200",
            "permissionsBoundaryArn": boundary["Policy"]["Arn"],
            "tags": {"team": "growth"},
        },
    )

    # WHEN the program is applied
    run = apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    # THEN AWS holds what the program declared
    kinesis = moto_world.client("kinesis", moto_world.customer_admin)
    summary = kinesis.describe_stream_summary(StreamName="cohorts-dev")["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert summary["OpenShardCount"] == 2
    assert summary["RetentionPeriodHours"] == 72
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/aws/kinesis")
    tags = kinesis.list_tags_for_stream(StreamName="cohorts-dev")["Tags"]
    assert tags == [{"Key": "team", "Value": "growth"}]

    role = iam.get_role(RoleName="amplitude-kinesis-cohort")["Role"]
    assert role["Path"] == "/amplitude/"
    assert role["MaxSessionDuration"] == 7200
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary["Policy"]["Arn"]
    assert role["Tags"] == [{"Key": "team", "Value": "growth"}]
    attached = iam.list_attached_role_policies(RoleName="amplitude-kinesis-cohort")
    (policy,) = attached["AttachedPolicies"]
    assert re.fullmatch(r"cohort-write-[0-9a-f]{7}", policy["PolicyName"])  # auto-named
    assert policy["PolicyArn"] == run.outputs["policyArn"]
    assert run.outputs["streamArn"] == summary["StreamARN"]
    assert run.outputs["roleArn"] == role["Arn"]


def test_encryption_none_leaves_the_stream_unencrypted(moto_world: MotoWorld) -> None:
    config = StackConfig(stack="dev", values={"encryption": "NONE"})

    apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    kinesis = moto_world.client("kinesis", moto_world.customer_admin)
    summary = kinesis.describe_stream_summary(StreamName="amplitude-cohorts")
    assert summary["StreamDescriptionSummary"]["EncryptionType"] == "NONE"


def test_unsupported_resource_type_is_named(moto_world: MotoWorld, tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi_aws as aws\n"
        "aws.kinesis.Stream('s', name='s', shard_count=1)\n"
        "aws.s3.BucketV2('b')\n"
    )
    config = StackConfig(stack="dev", program=program)

    with pytest.raises(UnsupportedResourceError) as caught:
        apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    assert str(caught.value).startswith("resource type 'aws:s3/bucketV2:BucketV2' (resource 'b'):")
    assert "aws:kinesis/stream:Stream" in str(caught.value)


def test_aws_refusal_names_the_resource(moto_world: MotoWorld) -> None:
    # GIVEN the role already exists
    moto_world.client("iam", moto_world.customer_admin).create_role(
        RoleName="amplitude-kinesis-cohort", AssumeRolePolicyDocument="{}"
    )

    with pytest.raises(ApplyError) as caught:
        apply(
            StackConfig(stack="dev"),
            session=moto_world.customer_admin.session("us-east-1"),
            region="us-east-1",
        )

    assert str(caught.value).startswith(
        "creating aws:iam/role:Role 'cohort-role' failed: EntityAlreadyExists:"
    )


STACK_FILE = """
config:
  aws:region: eu-west-1
  amplitude-kinesis-cohort:streamName: from-file
  amplitude-kinesis-cohort:tags:
    team: data
  amplitude-kinesis-cohort:externalId:
    secure: v1:AAAABBBBCCCC
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(PROGRAM_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(PROGRAM_DIR / "__main__.py", tmp_path / "__main__.py")
    (tmp_path / "Pulumi.prod.yaml").write_text(STACK_FILE)
    return tmp_path


def test_stack_file_secret_must_be_supplied(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("prod", project_dir=project, environ={})

    assert caught.value.problems == [
        "externalId (secret in Pulumi.prod.yaml): the file holds it encrypted and only the "
        "Pulumi CLI can decrypt it; supply it with --config externalId=... or "
        "$COHORT_SECRET_externalId"
    ]


@pytest.mark.parametrize(
    ("overrides", "environ"),
    [({"externalId": "from-flag"}, {}), ({}, {"COHORT_SECRET_externalId": "from-flag"})],
)
def test_stack_file_plus_supplied_secret(
    project: Path, overrides: dict[str, str], environ: dict[str, str]
) -> None:
    config = load_stack_config("prod", project_dir=project, overrides=overrides, environ=environ)

    assert config.region == "eu-west-1"
    assert config.values["streamName"] == "from-file"
    assert config.values["tags"] == {"team": "data"}
    assert config.values["externalId"] == "from-flag"
    assert config.secret_keys == {"externalId"}


def test_overrides_must_be_key_value() -> None:
    assert parse_overrides(["streamName=a", "tags={}"]) == {"streamName": "a", "tags": "{}"}
    with pytest.raises(ConfigError) as caught:
        parse_overrides(["streamName"])
    assert caught.value.problems == ["--config 'streamName': must be key=value"]


def test_project_defaults_are_what_the_cli_passes_and_they_validate(moto_world: MotoWorld) -> None:
    # The Pulumi CLI hands Pulumi.yaml's declared defaults to the program; they must be valid
    # together (shardCount's declared 0 means "not set", so ON_DEMAND stacks stay valid).
    config = load_stack_config("dev", project_dir=PROGRAM_DIR, environ={})

    assert config.values["streamMode"] == "ON_DEMAND"
    assert (config.values["shardCount"], config.values["tags"]) == ("0", "{}")
    run = apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")
    assert run.outputs["streamName"] == "amplitude-cohorts"


def test_a_declared_key_without_default_must_be_set_as_pulumi_requires(tmp_path: Path) -> None:
    # GIVEN a project declaring keys without a default, and a stack file setting only one of them
    (tmp_path / "Pulumi.yaml").write_text(
        "name: amplitude-kinesis-cohort\nruntime: python\nconfig:\n"
        "  streamName:\n    type: string\n  roleName:\n    type: string\n"
        "  retentionHours:\n    type: integer\n    default: 48\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  amplitude-kinesis-cohort:roleName: r\n")
    (tmp_path / "__main__.py").write_text("")

    # WHEN the stack config is loaded, THEN it is refused as `pulumi up` refuses it
    with pytest.raises(ConfigError) as caught:
        load_stack_config("dev", project_dir=tmp_path, environ={})
    assert caught.value.problems == [
        "streamName: Pulumi.yaml declares it without a default, so stack 'dev' must set it "
        "(the Pulumi CLI refuses to run without it)"
    ]
    # and a value supplied by override satisfies it
    config = load_stack_config(
        "dev", project_dir=tmp_path, overrides={"streamName": "s"}, environ={}
    )
    assert config.values == {"streamName": "s", "roleName": "r", "retentionHours": "48"}


def test_a_failed_run_leaves_nothing_behind_for_the_next() -> None:
    # Regression: a failed run's pending Outputs stayed in Pulumi's shared set, and the next run
    # (in another world) re-raised the first run's error.
    from sandbox.world import moto_world

    with moto_world() as first:
        iam = first.client("iam", first.customer_admin)
        iam.create_role(RoleName="amplitude-kinesis-cohort", AssumeRolePolicyDocument="{}")
        with pytest.raises(ApplyError):
            apply(
                StackConfig(stack="a"),
                session=first.customer_admin.session("us-east-1"),
                region="us-east-1",
            )

    with moto_world() as second:
        run = apply(
            StackConfig(stack="b"),
            session=second.customer_admin.session("us-east-1"),
            region="us-east-1",
        )

    assert run.outputs["roleName"] == "amplitude-kinesis-cohort"


def test_override_keys_must_be_declared_and_their_values_stay_unprinted(project: Path) -> None:
    # GIVEN a typo in an override's key (Pulumi would silently ignore an undeclared key, and
    # the role would have no external ID)
    overrides = {"externalId": "ext-1", "externalID": "s3cret-value", "aws:region": "eu-west-1"}

    # WHEN the stack config is loaded THEN the typo is refused, naming the key but not its value
    with pytest.raises(ConfigError) as caught:
        load_stack_config("prod", project_dir=project, overrides=overrides, environ={})
    (problem,) = caught.value.problems
    assert problem.startswith(
        "--config externalID: Pulumi.yaml declares no such key (Pulumi would ignore it); "
        "known keys are "
    )
    assert "displayName, encryption, externalId," in problem
    assert "s3cret-value" not in str(caught.value)


def test_a_stack_without_its_file_is_refused_naming_the_file_and_the_fix(project: Path) -> None:
    # Pulumi refuses a stack that does not exist; silently using the defaults would test a
    # stack nobody deploys.
    with pytest.raises(ConfigError) as caught:
        load_stack_config("prdo", project_dir=project, environ={})

    assert caught.value.problems == [
        f"--stack prdo: {project / 'Pulumi.prdo.yaml'} does not exist (Pulumi refuses a stack "
        "it does not know); create it with `pulumi stack init prdo` and `pulumi config set "
        "...`, or write it by hand, or pick an existing stack (prod)"
    ]


def test_a_project_dir_without_a_program_is_refused(project: Path) -> None:
    (project / "__main__.py").unlink()

    with pytest.raises(ConfigError, match=r"__main__.py: no program; Pulumi runs the project's"):
        load_stack_config("prod", project_dir=project, environ={})


def test_a_renamed_project_namespaces_its_keys_by_its_own_name(
    project: Path, moto_world: MotoWorld
) -> None:
    # GIVEN a customer's copy of the project under another name, its stack file in that namespace
    pulumi_yaml = project / "Pulumi.yaml"
    pulumi_yaml.write_text(
        pulumi_yaml.read_text().replace("name: amplitude-kinesis-cohort", "name: acme-cohorts")
    )
    (project / "Pulumi.acme.yaml").write_text("config:\n  acme-cohorts:streamName: acme-stream\n")

    # WHEN it is loaded and applied, THEN the program reads the key from that namespace
    config = load_stack_config("acme", project_dir=project, environ={})
    run = apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    assert (config.project, config.values["streamName"]) == ("acme-cohorts", "acme-stream")
    assert run.outputs["streamName"] == "acme-stream"


def test_apply_honours_import_as_local_up_does(moto_world: MotoWorld) -> None:
    # GIVEN a stream made by hand, holding a record
    kinesis = moto_world.client("kinesis", moto_world.customer_admin)
    kinesis.create_stream(StreamName="cohorts", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    kinesis.put_record(StreamName="cohorts", Data=b"kept", PartitionKey="k")
    arn = kinesis.describe_stream_summary(StreamName="cohorts")["StreamDescriptionSummary"][
        "StreamARN"
    ]
    config = StackConfig(
        stack="dev",
        values={"streamName": "cohorts", "encryption": "NONE", "importStream": "cohorts"},
    )

    # WHEN the fixtures' apply runs with importStream (the create-only engine failed here)
    run = apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    # THEN the stream is adopted, not re-created: same ARN, the record still in it
    assert run.outputs["streamArn"] == arn
    records = list(read_records(kinesis, arn))
    assert [r["Data"] for r in records] == [b"kept"]
