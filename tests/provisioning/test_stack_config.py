"""The program reads every key of its stack: typos refused in its namespace and in `aws:`."""

from pathlib import Path

import pulumi
import pytest

from provisioning import constants as c
from provisioning.errors import ConfigError
from provisioning.stack_config import namespace, provider_keys, read_stack_config
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import run_program
from sandbox.engine.stack import load_stack_config, preview

pytestmark = pytest.mark.unit
REGION = "us-east-1"


def refused(config: dict[str, str], secret_keys: tuple[str, ...] = ()) -> list[str]:
    """The problems the unmodified program reports, having declared nothing."""
    declared: list[str] = []

    class Recording(PlanMocks):
        def new_resource(self, args):  # type: ignore[no-untyped-def]
            declared.append(args.typ)
            return super().new_resource(args)

    with pytest.raises(ConfigError) as caught:
        run_program(Recording(REGION), stack="prod", config=config, secret_keys=secret_keys)
    assert declared == []
    return caught.value.problems


def test_a_misspelt_secret_is_refused_by_the_program_without_echoing_it() -> None:
    # GIVEN the stack: the external ID under `externalID`, as `pulumi config set --secret`
    problems = refused({"externalID": "s3cr3t-value"}, secret_keys=("externalID",))

    assert problems == ["externalID: unknown key; did you mean externalId?"]
    assert "s3cr3t-value" not in "".join(problems)


def test_misspelt_project_and_provider_keys_are_refused_together() -> None:
    problems = refused({"streamNmae": "cohorts-prod", "aws:regoin": "eu-west-1"})

    assert problems == [
        "aws:regoin: unknown key; did you mean region?",
        "streamNmae: unknown key; did you mean streamName?",
    ]


def test_a_malformed_region_is_refused_before_any_call() -> None:
    # (moto answered `us-east1` with a 500 page; AWS has no endpoint for it)
    assert refused({"aws:region": "us-east1"}) == [
        "aws:region 'us-east1': not an AWS region name (like us-east-1: two letters, words, a "
        "number); did you mean us-east-1?"
    ]


def test_a_kms_key_of_another_region_is_refused_by_the_program() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/12345678-1234-1234-1234-123456789012"

    (problem,) = refused({"aws:region": REGION, "encryption": "KMS", "kmsKeyArn": key})

    assert problem.startswith(f"kmsKeyArn '{key}': the key is in eu-west-1, the stack in us-east-1")


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-southeast-9"])
def test_known_and_well_formed_regions_and_provider_keys_are_accepted(region: str) -> None:
    run = run_program(
        PlanMocks(region),
        stack="prod",
        config={"aws:region": region, "aws:defaultTags": '{"tags": {}}', "aws:profile": "p"},
    )

    assert run.outputs[c.OUTPUT_STREAM_NAME] == c.DEFAULT_STREAM_NAME


def test_provider_keys_come_from_pulumi_aws_itself() -> None:
    keys = provider_keys()

    assert {"region", "profile", "defaultTags", "assumeRoles", "skipCredentialsValidation"} <= set(
        keys
    )
    assert "regoin" not in keys


def test_the_runtime_config_is_read_from_the_language_hosts_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `pulumi up` hands a Python program its config as PULUMI_CONFIG; a typo there is refused too
    everything = {"amplitude-kinesis-cohort:externalID": "x", "aws:region": "eu-west-1"}

    assert namespace(everything, "aws") == {"region": "eu-west-1"}
    monkeypatch.setenv("PULUMI_CONFIG", '{"amplitude-kinesis-cohort:externalID": "x"}')
    monkeypatch.setattr("pulumi.get_project", lambda: c.PROJECT_NAME)
    monkeypatch.setattr("pulumi.get_stack", lambda: "prod")
    with pytest.raises(ConfigError) as caught:
        read_stack_config(Path("."))
    assert caught.value.problems == ["externalID: unknown key; did you mean externalId?"]


def test_a_typo_in_a_stack_file_is_refused_by_local_preview(tmp_path: Path) -> None:
    # GIVEN a customer's project whose stack file misspells a key (the `--config` path refuses
    # it too, in the sandbox, before the program runs)
    (tmp_path / "Pulumi.yaml").symlink_to(Path(__file__).resolve().parents[2] / "Pulumi.yaml")
    (tmp_path / "__main__.py").symlink_to(Path(__file__).resolve().parents[2] / "__main__.py")
    (tmp_path / "Pulumi.prod.yaml").write_text(
        "config:\n  amplitude-kinesis-cohort:externalID: s3cr3t\n  aws:region: eu-west-1\n"
    )
    stack = load_stack_config("prod", project_dir=tmp_path)

    with pytest.raises(ConfigError) as caught:
        preview(stack, region="eu-west-1")

    assert caught.value.problems == ["externalID: unknown key; did you mean externalId?"]


class _Account(PlanMocks):
    """Plan mocks whose credentials belong to one account, as a real preview's would."""

    def call(self, args):  # type: ignore[no-untyped-def]
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": "210987654321", "accountId": "210987654321"}, []
        return super().call(args)


KEY = "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"


def test_a_kms_key_of_another_account_is_refused_unless_stated() -> None:
    config = {"aws:region": REGION, "encryption": "KMS", "kmsKeyArn": KEY}

    with pytest.raises(ConfigError) as caught:
        run_program(_Account(REGION), stack="prod", config=config)

    assert caught.value.problems == [
        f"kmsKeyArn '{KEY}': the key belongs to account 123456789012, the stack deploys to "
        "210987654321; set kmsKeyCrossAccount true if that is intended (the key's policy must "
        "then grant this account), or use a key of this account"
    ]
    stated = run_program(
        _Account(REGION), stack="prod", config={**config, "kmsKeyCrossAccount": "true"}
    )
    (stream,) = stated.of_type("aws:kinesis/stream:Stream")
    assert stream.inputs["kmsKeyId"] == KEY


def test_config_errors_print_without_a_traceback_under_pulumi_up() -> None:
    # Pulumi's language host prints a RunError's message alone, not the program's stack trace
    assert isinstance(ConfigError(["x: y"]), pulumi.RunError)


def test_a_kms_key_of_another_region_than_the_providers_is_refused_without_aws_region() -> None:
    # GIVEN no aws:region in the stack: the provider's region comes from its environment
    key = KEY.replace("us-east-1", "eu-west-1")

    with pytest.raises(ConfigError) as caught:
        run_program(_Account(REGION), stack="prod", config={"encryption": "KMS", "kmsKeyArn": key})

    # THEN the provider's region is asked, and both the region and the account are named
    assert [p.split(";")[0] for p in caught.value.problems] == [
        f"kmsKeyArn '{key}': the key is in eu-west-1, the stack in us-east-1",
        f"kmsKeyArn '{key}': the key belongs to account 123456789012, the stack deploys to "
        "210987654321",
    ]
