"""The fixtures honour a customer's own project directory: its stack files and its program."""

import shutil
from pathlib import Path

import pytest

from sandbox.engine.runner import PROGRAM_DIR
from sandbox.pytest_plugin import AppliedDestination

pytestmark = pytest.mark.integration


@pytest.fixture
def cohort_project_dir(tmp_path: Path) -> Path:
    # A customer's copy of the project: their stack file and a program that exports one more key.
    shutil.copy(PROGRAM_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    program = (PROGRAM_DIR / "__main__.py").read_text()
    (tmp_path / "__main__.py").write_text(program + '\npulumi.export("owner", "customer")\n')
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  amplitude-kinesis-cohort:streamName: customer-stream\n"
    )
    return tmp_path


def test_cohort_destination_runs_the_project_dirs_program(
    cohort_destination: AppliedDestination,
) -> None:
    assert cohort_destination.outputs["streamName"] == "customer-stream"
    assert cohort_destination.outputs["owner"] == "customer"
