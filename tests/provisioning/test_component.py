"""The resource graph the unmodified program declares, under Pulumi's mocks (no CLI, no AWS)."""

import json
from typing import Any

import pytest

from provisioning import constants as c
from provisioning.errors import ConfigError
from sandbox.engine import schema as local
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import ProgramRun, RegistrationOptions, run_program
from sandbox.engine.secrets import unwrap_secrets

REGION = "eu-central-1"
CMK = "arn:aws:kms:eu-central-1:123456789012:key/12345678-1234-1234-1234-123456789012"
# Dependencies first (the policy needs both ARNs, the attachment the policy), ties by name.
CUSTOM_TYPES = [local.ROLE, local.STREAM, local.POLICY, local.ATTACHMENT]


def run(config: dict[str, Any] | None = None, secret_keys: tuple[str, ...] = ()) -> ProgramRun:
    return run_program(PlanMocks(REGION), stack="test", config=config, secret_keys=secret_keys)


def inputs_of(program: ProgramRun, type_: str) -> dict[str, Any]:
    (registration,) = program.of_type(type_)
    plain, _ = unwrap_secrets(dict(registration.inputs))
    return plain


@pytest.mark.parametrize("mode", ["ON_DEMAND", "PROVISIONED"])
@pytest.mark.parametrize("encryption", ["NONE", "AWS_MANAGED", "KMS"])
def test_graph_is_four_resources_under_the_component(mode: str, encryption: str) -> None:
    config: dict[str, Any] = {"streamMode": mode, "encryption": encryption}
    if mode == "PROVISIONED":
        config["shardCount"] = "2"
    if encryption == "KMS":
        config["kmsKeyArn"] = CMK

    program = run(config)

    component, *children = program.resources
    assert (component.type, component.name) == (c.COMPONENT_TYPE, "cohort")
    assert [r.type for r in children] == CUSTOM_TYPES
    assert {r.parent_type for r in children} == {c.COMPONENT_TYPE}
    assert [r.name for r in children] == [
        "cohort-role",
        "cohort-stream",
        "cohort-write",
        "cohort-attach",
    ]

    stream = inputs_of(program, local.STREAM)
    assert stream["name"] == "amplitude-cohorts"
    assert stream["streamModeDetails"] == {"streamMode": mode}
    assert stream.get("shardCount") == (2 if mode == "PROVISIONED" else None)
    assert stream["retentionPeriod"] == 24
    expected_key = {"NONE": None, "AWS_MANAGED": "alias/aws/kinesis", "KMS": CMK}[encryption]
    assert stream["encryptionType"] == ("NONE" if encryption == "NONE" else "KMS")
    assert stream.get("kmsKeyId") == expected_key

    policy = json.loads(inputs_of(program, local.POLICY)["policy"])
    kms_statements = [s for s in policy["Statement"] if s["Action"] == "kms:GenerateDataKey"]
    assert [s["Resource"] for s in kms_statements] == ([CMK] if encryption == "KMS" else [])


def test_role_inputs_carry_trust_session_path_boundary_and_tags() -> None:
    boundary = "arn:aws:iam::123456789012:policy/boundaries/data"
    program = run(
        {
            "roleName": "amp-writer",
            "rolePath": "/amplitude/",
            "maxSessionSeconds": "7200",
            "permissionsBoundaryArn": boundary,
            "tags": {"team": "growth"},
        }
    )

    role = inputs_of(program, local.ROLE)
    assert role["name"] == "amp-writer"
    assert role["path"] == "/amplitude/"
    assert role["maxSessionDuration"] == 7200
    assert role["permissionsBoundary"] == boundary
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "AWS": "arn:aws:iam::358203115967:root"
    }
    for type_ in (local.STREAM, local.ROLE, local.POLICY):
        assert inputs_of(program, type_)["tags"] == {"team": "growth"}
    assert "tags" not in inputs_of(program, local.ATTACHMENT)


def test_policy_is_scoped_to_the_stream_and_role_it_is_attached_to() -> None:
    program = run()

    policy = json.loads(inputs_of(program, local.POLICY)["policy"])
    attachment = inputs_of(program, local.ATTACHMENT)
    stream_arn = "arn:aws:kinesis:eu-central-1:<account>:stream/amplitude-cohorts"
    role_arn = "arn:aws:iam::<account>:role/amplitude-kinesis-cohort"
    assert [(s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        (["kinesis:PutRecord", "kinesis:PutRecords"], stream_arn),
        ("iam:SimulatePrincipalPolicy", role_arn),
    ]
    assert attachment == {"role": "amplitude-kinesis-cohort", "policyArn": policy_arn(program)}


def policy_arn(program: ProgramRun) -> str:
    (policy,) = program.of_type(local.POLICY)
    return str(policy.state["arn"])


def test_external_id_makes_the_trust_policy_secret_and_conditional() -> None:
    program = run({"externalId": "ext-0042"}, secret_keys=("externalId",))

    (role,) = program.of_type(local.ROLE)
    plain, secret_paths = unwrap_secrets(dict(role.inputs))
    assert "assumeRolePolicy" in secret_paths
    statement = json.loads(plain["assumeRolePolicy"])["Statement"][0]
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-0042"}}


def test_invalid_config_declares_nothing() -> None:
    with pytest.raises(ConfigError) as caught:
        run({"streamName": "no spaces allowed", "shardCount": "3"})

    assert len(caught.value.problems) == 2
    # No resource reached the engine: the program failed before declaring any.


def test_invalid_config_reaches_no_engine() -> None:
    seen: list[str] = []

    class Recording(PlanMocks):
        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            seen.append(args.typ)
            return super().new_resource(args)

    with pytest.raises(ConfigError):
        run_program(Recording(REGION), stack="t", config={"retentionHours": "1"})

    assert seen == []


class _OptionsSeen(PlanMocks):
    """PlanMocks that also keeps each registration's resource options."""

    def __init__(self) -> None:
        super().__init__(REGION)
        self.options: dict[str, RegistrationOptions] = {}

    def new_resource_with_options(
        self, args: Any, opts: RegistrationOptions
    ) -> tuple[str, dict[str, Any]]:
        self.options[args.name] = opts
        return self.new_resource(args)


def _options(config: dict[str, Any]) -> dict[str, RegistrationOptions]:
    seen = _OptionsSeen()
    run_program(seen, stack="test", config=config)
    return seen.options


def test_only_the_stream_is_protected_and_only_while_protect_stream_is_true() -> None:
    protected = _options({})
    unprotected = _options({c.CONFIG_PROTECT_STREAM: "false"})

    assert [name for name, o in protected.items() if o.protect] == ["cohort-stream"]
    assert not any(o.protect for o in unprotected.values())
    assert not any(o.retain_on_delete for o in protected.values())


def test_import_keys_set_pulumis_import_option_and_the_policy_keeps_its_description() -> None:
    arn = "arn:aws:iam::123456789012:policy/hand-made"
    config = {
        c.CONFIG_IMPORT_STREAM: c.DEFAULT_STREAM_NAME,
        c.CONFIG_IMPORT_ROLE: c.DEFAULT_ROLE_NAME,
        c.CONFIG_IMPORT_POLICY: arn,
        c.CONFIG_POLICY_NAME: "hand-made",
    }

    options = _options(config)
    program = run(config)

    assert {name: o.import_id for name, o in options.items() if name != "cohort"} == {
        "cohort-stream": c.DEFAULT_STREAM_NAME,
        "cohort-role": c.DEFAULT_ROLE_NAME,
        "cohort-write": arn,
        "cohort-attach": f"{c.DEFAULT_ROLE_NAME}/{arn}",
    }
    policy = inputs_of(program, local.POLICY)
    assert policy["name"] == "hand-made" and "description" not in policy
    assert all(o.import_id is None for o in _options({}).values())
