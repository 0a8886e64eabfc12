"""Pulumi.yaml: the runtime the customer's CLI uses, and the schema `pulumi config` shows."""

import yaml

from provisioning import constants as c
from sandbox.engine.runner import PROGRAM_DIR

PROJECT = yaml.safe_load((PROGRAM_DIR / "Pulumi.yaml").read_text())


def test_project_name_and_runtime() -> None:
    assert PROJECT["name"] == c.PROJECT_NAME == "amplitude-kinesis-cohort"
    assert PROJECT["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }


def test_every_config_key_is_declared_with_a_description() -> None:
    declared = PROJECT["config"]

    assert set(declared) == set(c.PROGRAM_CONFIG_KEYS)
    for key, entry in declared.items():
        assert entry["description"], key


def test_declared_defaults_match_the_programs_defaults() -> None:
    declared = {k: v.get("default") for k, v in PROJECT["config"].items()}

    assert declared["streamName"] == c.DEFAULT_STREAM_NAME
    assert declared["roleName"] == c.DEFAULT_ROLE_NAME
    assert declared["trustedAccountId"] == c.AMPLITUDE_ACCOUNT_ID
    assert (declared["retentionHours"], declared["maxSessionSeconds"]) == (24, 3600)
    assert (declared["streamMode"], declared["encryption"]) == ("ON_DEMAND", "AWS_MANAGED")


# The types Pulumi's project schema accepts for a declared key, and the Python type of a default.
PULUMI_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}


def test_no_declared_key_is_required_of_every_stack() -> None:
    # Pulumi refuses to run a stack that lacks a value for a key the project declares with neither
    # `default` nor `value` ("Stack 'prod' is missing configuration value 'shardCount'"); every
    # key here is optional, so each needs a declared default.
    required = [
        key
        for key, entry in PROJECT["config"].items()
        if "default" not in entry and "value" not in entry
    ]

    assert required == []


def test_declared_types_are_pulumis_and_defaults_have_them() -> None:
    for key, entry in PROJECT["config"].items():
        if "type" not in entry:
            continue
        assert entry["type"] in PULUMI_TYPES, key
        assert type(entry["default"]) is PULUMI_TYPES[entry["type"]], key
