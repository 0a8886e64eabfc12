"""Installed from the wheel, not cloned: the fixtures and `local up` work on a customer's project.

The `installed` fixture (tests/installed.py) builds one venv per session in the background, shared
by xdist workers (from the local pip cache, about a minute of CPU): the built wheel with its
sandbox extra, and pytest.
Nothing from this checkout is importable there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.installed import run

pytestmark = pytest.mark.e2e


def test_the_installed_sandbox_runs_the_program_the_wheel_ships(installed: Path) -> None:
    where = run(
        installed / "python",
        "-c",
        "from sandbox.engine.runner import PROGRAM_DIR; print(PROGRAM_DIR)",
        cwd=installed,
    )
    program_dir = Path(where.stdout.strip())

    assert program_dir.is_relative_to(installed.parent), where
    assert {p.name for p in program_dir.iterdir()} >= {
        "Pulumi.yaml",
        "__main__.py",
        "Pulumi.dev.yaml",
    }
    up = run(installed / "cohort-sync", "local", "up", cwd=installed)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Previewing stack 'dev' in us-east-1" in up.stdout


def test_fixtures_and_local_up_on_a_customers_project(
    installed: Path, tmp_path: Path, readme_customer_project: Callable[[Path, Path], None]
) -> None:
    # GIVEN a customer's project built from the README: this program, their stack file and test
    where = run(
        installed / "python",
        "-c",
        "from sandbox.engine.runner import PROGRAM_DIR; print(PROGRAM_DIR)",
        cwd=tmp_path,
    )
    project = tmp_path / "customer"
    project.mkdir()
    readme_customer_project(project, Path(where.stdout.strip()))

    # WHEN their pytest runs the README's fixture test, THEN it passes
    tested = run(
        installed / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=project
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout

    # AND `local up --project-dir` applies their stack
    out = tmp_path / "destination.json"
    up = run(
        installed / "cohort-sync",
        *("local", "up", "--project-dir", project, "--stack", "prod", "--out", out),
        cwd=tmp_path,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    outputs = json.loads(out.read_text())
    assert (outputs["streamName"], outputs["region"]) == ("cohorts-prod", "eu-west-1")
