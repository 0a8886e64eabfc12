"""Pulumi.yaml: the runtime the customer's CLI uses, and the schema `pulumi config` shows."""

import dataclasses
import json
from typing import Any

import pytest
import yaml

from provisioning import constants as c
from provisioning.config import DestinationConfig, parse_config
from provisioning.keys import KEYS
from sandbox.engine.runner import PROGRAM_DIR

PROJECT = yaml.safe_load((PROGRAM_DIR / "Pulumi.yaml").read_text())


def project_config() -> dict[str, dict[str, Any]]:
    """The `config:` block Pulumi.yaml must hold: each key's type, description and default."""
    return {
        key.name: {"type": key.type, "description": key.description, "default": key.default}
        for key in KEYS
    }


def readme_table() -> list[str]:
    """The README's key table, header included, one line per key."""
    rows = ["| key | default | rule |", "|---|---|---|"]
    rows += [f"| `{key.name}` | {key.readme_default} | {key.readme_rule} |" for key in KEYS]
    return rows


def test_project_name_and_runtime() -> None:
    assert PROJECT["name"] == c.PROJECT_NAME == "amplitude-kinesis-cohort"
    assert PROJECT["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }


def test_the_config_block_is_the_key_tables() -> None:
    # Pulumi.yaml's `config:` block is written from provisioning/keys.py: same keys, same order,
    # same types, descriptions and defaults.
    assert list(PROJECT["config"].items()) == list(project_config().items())
    for key, entry in PROJECT["config"].items():
        assert entry["description"], key


def test_the_readmes_key_table_is_the_key_tables() -> None:
    readme = (PROGRAM_DIR / "README.md").read_text().splitlines()
    start = readme.index("| key | default | rule |")
    end = start + next(i for i, line in enumerate(readme[start:]) if not line.startswith("|"))

    assert readme[start:end] == readme_table()


# The types Pulumi's project schema accepts for a declared key (`object` since Pulumi 3.186), and
# the Python type a default of each has.
PULUMI_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}


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


def test_every_key_declares_a_pulumi_type_and_a_default_of_that_type() -> None:
    for key, entry in PROJECT["config"].items():
        assert entry.get("type") in PULUMI_TYPES, key
        assert type(entry["default"]) is PULUMI_TYPES[entry["type"]], key


def test_tags_is_an_object() -> None:
    assert PROJECT["config"][c.CONFIG_TAGS] == {
        "type": "object",
        "description": PROJECT["config"][c.CONFIG_TAGS]["description"],
        "default": {},
    }


def test_each_declared_default_means_what_an_unset_key_means() -> None:
    # GIVEN every default as the Pulumi CLI passes it (text, objects as JSON)
    passed = {
        key: entry["default"] if isinstance(entry["default"], str) else json.dumps(entry["default"])
        for key, entry in PROJECT["config"].items()
    }

    # WHEN the program parses them, THEN it gets the config of a stack that sets nothing, key by key
    declared = parse_config(passed, stack="dev")
    unset = parse_config({}, stack="dev")
    assert unset.display_name == c.DEFAULT_DISPLAY_NAME_TEMPLATE.format(stack="dev")
    for field in dataclasses.fields(DestinationConfig):
        assert getattr(declared, field.name) == getattr(unset, field.name), field.name


@pytest.mark.parametrize(
    ("key", "bounds"),
    [
        (c.CONFIG_RETENTION_HOURS, c.RETENTION_HOURS_RANGE),
        (c.CONFIG_MAX_SESSION_SECONDS, c.MAX_SESSION_SECONDS_RANGE),
    ],
)
def test_descriptions_state_the_rules_the_program_enforces(
    key: str, bounds: tuple[int, int]
) -> None:
    assert f"{bounds[0]}-{bounds[1]}" in PROJECT["config"][key]["description"]
