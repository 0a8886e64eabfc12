"""The stack state file: round trip, secrets never written, and files that are not ours."""

import json
import stat
from pathlib import Path

import pytest

from sandbox.engine.state import (
    ResourceState,
    StackState,
    StateError,
    is_sealed,
    load_state,
    save_state,
    seal_paths,
)

PROJECT = "amplitude-kinesis-cohort"


def test_a_saved_state_loads_back_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "stacks" / "dev.json"
    state = StackState(PROJECT, "dev")
    resource = ResourceState(
        "urn:a", "aws:iam/role:Role", "cohort-role", True, "r", {"name": "r"}, {"arn": "x"}, True
    )
    state.resources[resource.urn] = resource

    save_state(path, state)

    loaded = load_state(path, project=PROJECT, stack="dev")
    assert loaded.resources == state.resources and loaded.salt == state.salt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_secret_is_written_only_as_a_salted_digest(tmp_path: Path) -> None:
    state = StackState(PROJECT, "dev")
    sealed = seal_paths(
        state, {"assumeRolePolicy": "ext-0042 inside", "name": "r"}, {"assumeRolePolicy"}
    )
    state.resources["urn:a"] = ResourceState("urn:a", "t", "n", True, "i", sealed, {})
    path = tmp_path / "dev.json"

    save_state(path, state)

    assert "ext-0042" not in path.read_text()
    assert is_sealed(sealed["assumeRolePolicy"]) and sealed["name"] == "r"
    assert state.seal("ext-0042 inside") == sealed["assumeRolePolicy"]
    assert StackState(PROJECT, "dev").seal("ext-0042 inside") != sealed["assumeRolePolicy"]


def test_no_file_is_an_empty_stack(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json", project=PROJECT, stack="dev").resources == {}


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        ("[]", "not a version-1 state file"),
        (
            json.dumps({"version": 1, "project": PROJECT, "stack": "prod"}),
            "stack 'prod', not project",
        ),
        (
            json.dumps({"version": 1, "project": PROJECT, "stack": "dev", "salt": "s"}),
            "malformed entry",
        ),
        ("\x00\xff", "not a readable JSON state file"),
    ],
)
def test_a_file_that_is_not_this_stacks_is_refused(
    tmp_path: Path, document: str, rule: str
) -> None:
    path = tmp_path / "dev.json"
    path.write_text(document)

    with pytest.raises(StateError) as caught:
        load_state(path, project=PROJECT, stack="dev")

    assert str(caught.value).startswith(f"stack state {path}: ")
    assert rule in str(caught.value)
