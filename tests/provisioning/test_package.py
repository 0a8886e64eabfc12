"""CohortDestination as a component package: the schema other languages get, and what constructing
the component through the provider declares (under Pulumi's mocks: no CLI, no plugin, no AWS)."""

import dataclasses
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from provisioning import constants as c
from provisioning.component import CohortDestinationArgs, config_key
from provisioning.config import DestinationConfig
from provisioning.consumer import checked_stream_arn
from provisioning.errors import ConfigError
from provisioning.keys import CONSUMER_SETTING_NAMES, DESTINATION_KEY_NAMES
from provisioning.package import provider
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import PROGRAM_DIR, ProgramRun, run_program
from sandbox.engine.secrets import unwrap_secrets

ROOT = Path(__file__).resolve().parents[2]
PROJECT = yaml.safe_load((PROGRAM_DIR / "Pulumi.yaml").read_text())
REGION = "eu-central-1"
CMK = "arn:aws:kms:eu-central-1:123456789012:key/12345678-1234-1234-1234-123456789012"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return dict(json.loads(provider().schema or "{}"))


def component(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(schema["resources"][c.COMPONENT_TYPE])


def test_the_args_are_the_config_fields_under_their_config_keys() -> None:
    fields = list(CohortDestinationArgs.__annotations__)

    # (the Lambda consumer is a component of its own, CohortConsumer)
    destination_fields = {f.name for f in dataclasses.fields(DestinationConfig)} - {"consumer"}
    assert set(fields) == destination_fields
    assert [config_key(f) for f in fields] == list(DESTINATION_KEY_NAMES)


def test_every_input_is_a_config_key_with_pulumi_yamls_type_description_and_default(
    schema: dict[str, Any],
) -> None:
    # GIVEN the schema a TypeScript, Go, C# or YAML program's SDK is generated from
    inputs = component(schema)["inputProperties"]

    # THEN its inputs are the stack config keys, typed, worded and defaulted as Pulumi.yaml does
    assert list(inputs) == list(DESTINATION_KEY_NAMES)
    for key in DESTINATION_KEY_NAMES:
        declared = PROJECT["config"][key]
        assert inputs[key]["type"] == declared["type"], key
        assert inputs[key]["description"] == declared["description"], key
        if declared["type"] != "object":  # the metaschema allows primitive defaults only
            assert inputs[key]["default"] == declared["default"], key
    assert inputs[c.CONFIG_TAGS]["additionalProperties"]["type"] == "string"
    # no input is required: each has the default Pulumi.yaml declares
    assert component(schema)["requiredInputs"] == []


def test_the_consumer_is_in_the_schema_with_its_keys_defaults_and_outputs(
    schema: dict[str, Any],
) -> None:
    consumer = schema["resources"][c.CONSUMER_COMPONENT_TYPE]
    inputs = consumer["inputProperties"]

    # THEN every consumer key is an input, with Pulumi.yaml's type, description and default
    settings = CONSUMER_SETTING_NAMES
    assert set(settings) <= set(inputs)
    for key in settings:
        declared = PROJECT["config"][key]
        assert (inputs[key]["type"], inputs[key]["description"], inputs[key]["default"]) == (
            declared["type"],
            declared["description"],
            declared["default"],
        ), key
    # AND what it reads: the stream (an Output from CohortDestination), required
    assert consumer["requiredInputs"] == ["streamArn", "streamName"]
    assert "plain" not in inputs["streamArn"]
    # AND its outputs are its resources, each described
    aws = "/aws/v7.51.1/schema.json#/resources/"
    outputs = consumer["properties"]
    assert outputs["membershipTable"]["$ref"] == f"{aws}aws:dynamodb%2Ftable:Table"
    assert outputs["function"]["$ref"] == f"{aws}aws:lambda%2Ffunction:Function"
    assert outputs["failureQueue"]["$ref"] == f"{aws}aws:sqs%2Fqueue:Queue"
    assert outputs["alarms"]["items"]["$ref"] == f"{aws}aws:cloudwatch%2FmetricAlarm:MetricAlarm"
    assert set(outputs) == {
        "membershipTable", "idempotencyTable", "failureQueue", "logGroup", "role", "rolePolicy",
        "function", "mapping", "alarms",
    }  # fmt: skip
    assert all(spec["description"] for spec in outputs.values())


METASCHEMA = Path(__file__).with_name("pulumi-package-metaschema.json")


def metaschema() -> dict[str, Any]:
    """Pulumi's metaschema, its ECMA-262 named groups `(?<name>` read as Python's `(?P<name>`."""
    return dict(json.loads(METASCHEMA.read_text().replace("(?<", "(?P<")))


def test_the_served_schema_is_valid_by_pulumis_metaschema(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        metaschema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(schema)]

    assert errors == []


def test_the_metaschema_check_catches_a_broken_schema(schema: dict[str, Any]) -> None:
    # GIVEN the schema with an object default (the metaschema allows primitive defaults only)
    broken = json.loads(json.dumps(schema))
    component(broken)["inputProperties"][c.CONFIG_TAGS]["default"] = {}
    validator = jsonschema.Draft202012Validator(metaschema())

    # THEN the validation that passes the served schema fails this one
    assert not validator.is_valid(broken)


def test_external_id_is_secret_and_the_only_input_that_may_be_an_output(
    schema: dict[str, Any],
) -> None:
    inputs = component(schema)["inputProperties"]

    assert [key for key, spec in inputs.items() if spec.get("secret")] == [c.CONFIG_EXTERNAL_ID]
    # plain inputs: every other key is validated before the component declares anything
    assert [key for key, spec in inputs.items() if not spec.get("plain")] == [c.CONFIG_EXTERNAL_ID]


def test_outputs_are_the_four_resources_region_and_the_form(schema: dict[str, Any]) -> None:
    outputs = component(schema)["properties"]
    aws = "/aws/v7.51.1/schema.json#/resources/"

    assert {key: spec.get("$ref", spec.get("type")) for key, spec in outputs.items()} == {
        "stream": f"{aws}aws:kinesis%2Fstream:Stream",
        "role": f"{aws}aws:iam%2Frole:Role",
        "policy": f"{aws}aws:iam%2Fpolicy:Policy",
        "attachment": f"{aws}aws:iam%2FrolePolicyAttachment:RolePolicyAttachment",
        "region": "string",
        "destination": "object",
    }
    assert all(spec["description"] for spec in outputs.values())
    assert schema["name"] == c.PROJECT_NAME
    assert schema["dependencies"] == [{"name": "aws", "version": "7.51.1"}]


CONFIG = {
    "streamName": "cohorts-ts",
    "streamMode": "PROVISIONED",
    "shardCount": "3",
    "retentionHours": "48",
    "encryption": "KMS",
    "kmsKeyArn": CMK,
    "roleName": "amp-writer",
    "rolePath": "/amplitude/",
    "maxSessionSeconds": "7200",
    "displayName": "From TypeScript",
    "tags": {"team": "growth"},
    "externalId": "ext-0042",
}
# What a TypeScript program sends for the same values: numbers travel as floats, the external ID
# as a secret (which the provider host hands the component as a secret Output).
INPUTS = {
    **CONFIG,
    "shardCount": 3.0,
    "retentionHours": 48.0,
    "maxSessionSeconds": 7200.0,
}


def constructed(tmp_path: Path, inputs: dict[str, Any]) -> ProgramRun:
    """Run a program that constructs CohortDestination through the provider, as the engine would."""
    program = tmp_path / "__main__.py"
    plain = {k: v for k, v in inputs.items() if k != c.CONFIG_EXTERNAL_ID}
    secret = inputs.get(c.CONFIG_EXTERNAL_ID)
    program.write_text(
        "import pulumi\n"
        "from provisioning.package import provider\n"
        f"inputs = {plain!r}\n"
        + (f"inputs['externalId'] = pulumi.Output.secret({secret!r})\n" if secret else "")
        + f"result = provider().construct('cohort', {c.COMPONENT_TYPE!r}, inputs, None)\n"
        "pulumi.export('urn', result.urn)\n"
    )
    return run_program(PlanMocks(REGION), stack="ts", program=program)


def declared(run: ProgramRun) -> list[tuple[str, str, str | None, Any]]:
    return [(r.type, r.name, r.parent_type, unwrap_secrets(dict(r.inputs))) for r in run.resources]


def test_constructing_through_the_provider_declares_what_the_python_program_declares(
    tmp_path: Path,
) -> None:
    # GIVEN the same destination from the Python program (stack config) and through the provider
    python = run_program(
        PlanMocks(REGION), stack="ts", config=CONFIG, secret_keys=(c.CONFIG_EXTERNAL_ID,)
    )
    other_language = constructed(tmp_path, INPUTS)

    # THEN both declare the component and the same four resources, input for input, secrets alike
    assert declared(other_language) == declared(python)
    assert [r.type for r in other_language.resources] == [
        c.COMPONENT_TYPE,
        "aws:iam/role:Role",
        "aws:kinesis/stream:Stream",
        "aws:iam/policy:Policy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    ]
    (role,) = other_language.of_type("aws:iam/role:Role")
    trust, secret_paths = unwrap_secrets(dict(role.inputs))
    assert "assumeRolePolicy" in secret_paths
    assert "ext-0042" in trust["assumeRolePolicy"]


def test_the_provider_applies_the_programs_validation_before_declaring_anything(
    tmp_path: Path,
) -> None:
    with pytest.raises(Exception) as caught:  # the SDK wraps it: ComponentInitError
        inputs = {"retentionHours": 1.0, "streamName": "no spaces", "maxSessionSeconds": 3600.5}
        constructed(tmp_path, inputs)

    message = str(caught.value)
    assert "invalid stack configuration (3 problems)" in message
    assert "maxSessionSeconds 3600.5: must be a whole number" in message
    assert "retentionHours 1: must be between 24 and 8760" in message
    assert "streamName 'no spaces': 1-128 characters, only [a-zA-Z0-9_.-] allowed" in message


def test_a_secret_external_id_is_validated_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(Exception) as caught:  # raised inside the trust policy
        constructed(tmp_path, {c.CONFIG_EXTERNAL_ID: "bad id with spaces"})

    assert "externalId (secret, 18 characters): 2-1224 characters" in str(caught.value)
    assert "bad id with spaces" not in str(caught.value)


def test_the_plugin_directory_serves_this_component_with_the_programs_dependencies() -> None:
    plugin = ROOT / "component"

    assert yaml.safe_load((plugin / "PulumiPlugin.yaml").read_text())["runtime"]["name"] == "python"
    assert (plugin / "provisioning").resolve() == (ROOT / "provisioning").resolve()
    assert "-r ../requirements.txt" in (plugin / "requirements.txt").read_text().splitlines()
    assert "from provisioning.package import serve" in (plugin / "__main__.py").read_text()


def test_the_readme_yaml_example_uses_the_schemas_token_inputs_and_outputs(
    schema: dict[str, Any],
) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)]
    (example,) = [b for b in blocks if isinstance(b, dict) and "packages" in b]
    (resource,) = example["resources"].values()

    assert resource["type"] in schema["resources"]
    assert set(resource["properties"]) <= set(component(schema)["inputProperties"])
    for reference in example["outputs"].values():
        assert reference.split(".")[1].rstrip("}") in component(schema)["properties"]


def test_constructing_the_consumer_through_the_provider_declares_what_the_program_declares(
    tmp_path: Path,
) -> None:
    # GIVEN a code archive, and the consumer from the Python program (stack config) ...
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr(c.LAMBDA_HANDLER_FILE, "")
    config = {"consumer": "lambda", "consumerArchive": str(code), "consumerBatchSize": "200"}
    python = run_program(PlanMocks(REGION), stack="ts", config=config)
    (stream,) = python.of_type("aws:kinesis/stream:Stream")
    # ... and through the provider, as a TypeScript program passes it (numbers as floats)
    program = tmp_path / "__main__.py"
    inputs = {
        "streamArn": stream.state["arn"],
        "streamName": c.DEFAULT_STREAM_NAME,
        "consumerArchive": str(code),
        "consumerBatchSize": 200.0,
    }
    program.write_text(
        "import pulumi\n"
        "from provisioning.package import provider\n"
        f"result = provider().construct('consumer', {c.CONSUMER_COMPONENT_TYPE!r}, {inputs!r}, "
        "None)\n"
    )
    other_language = run_program(PlanMocks(REGION), stack="ts", program=program)

    # THEN both declare the same consumer resources, input for input
    def consumer_resources(run: ProgramRun) -> list[tuple[str, str, Any]]:
        def plain(value: Any) -> Any:  # a FileArchive compares by identity: compare its path
            return getattr(value, "path", value)

        return [
            (r.type, r.name, unwrap_secrets({k: plain(v) for k, v in r.inputs.items()}))
            for r in run.resources
            if r.name.startswith("consumer")
        ]

    assert consumer_resources(other_language) == consumer_resources(python)
    (mapping,) = other_language.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["batchSize"] == 200


def test_the_consumer_through_the_provider_applies_the_programs_rules(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    inputs = {"streamArn": "arn", "streamName": "s", "consumerBatchSize": 0.0, "tags": {"a{": "b"}}
    program.write_text(
        "from provisioning.package import provider\n"
        f"provider().construct('consumer', {c.CONSUMER_COMPONENT_TYPE!r}, {inputs!r}, None)\n"
    )

    with pytest.raises(Exception) as caught:  # the SDK wraps it: ComponentInitError
        run_program(PlanMocks(REGION), stack="ts", program=program)

    message = str(caught.value)
    assert "consumerBatchSize 0: must be between 1 and 10000" in message
    assert "tags key 'a{': IAM allows only letters" in message


@pytest.mark.parametrize(
    "arn",
    [
        "*",
        "arn:aws:kinesis:eu-central-1:123456789012:stream/*",
        "arn:aws:kinesis:eu-central-1:123456789012:stream/other-stream",
        "arn:aws:dynamodb:eu-central-1:123456789012:table/amplitude-cohorts",
    ],
)
def test_a_stream_arn_that_is_not_the_streams_is_refused(arn: str) -> None:
    # The ARN becomes the Resource of the role's read grant: a wildcard would widen it
    with pytest.raises(ConfigError) as caught:
        checked_stream_arn(arn, c.DEFAULT_STREAM_NAME)

    assert caught.value.problems == [
        f"streamArn {arn!r}: must be the ARN of stream 'amplitude-cohorts', "
        "arn:aws:kinesis:<region>:<account>:stream/amplitude-cohorts, without wildcards (the "
        "consumer's role is granted reads on exactly this ARN)"
    ]
    good = "arn:aws:kinesis:eu-central-1:123456789012:stream/amplitude-cohorts"
    assert checked_stream_arn(good, c.DEFAULT_STREAM_NAME) == good


def test_the_consumer_through_the_provider_refuses_a_wildcard_stream_arn(tmp_path: Path) -> None:
    code = tmp_path / "code.zip"
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr(c.LAMBDA_HANDLER_FILE, "")
    program = tmp_path / "__main__.py"
    inputs = {"streamArn": "*", "streamName": c.DEFAULT_STREAM_NAME, "consumerArchive": str(code)}
    program.write_text(
        "from provisioning.package import provider\n"
        f"provider().construct('consumer', {c.CONSUMER_COMPONENT_TYPE!r}, {inputs!r}, None)\n"
    )

    with pytest.raises(Exception) as caught:  # raised once the Output is known
        run_program(PlanMocks(REGION), stack="ts", program=program)

    assert "streamArn '*': must be the ARN of stream 'amplitude-cohorts'" in str(caught.value)
