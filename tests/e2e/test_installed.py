"""Installed from the wheel, not cloned: the fixtures and `local up` work on a customer's project.

One venv is built (from the local pip cache, about a minute): the built wheel with its sandbox
extra, and pytest. Nothing from this checkout is importable there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run(*command: str | Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # Nothing of this checkout's environment: no PYTHONPATH, no venv, no AWS credentials.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("AWS_")
    }
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel and its sandbox extra; its bin directory."""
    tmp = tmp_path_factory.mktemp("installed")
    built = run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", ROOT, cwd=tmp
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("amplitude_kinesis_cohort-*.whl")
    venv = tmp / "venv"
    created = run(sys.executable, "-m", "venv", venv, cwd=tmp)
    assert created.returncode == 0, created.stderr
    # --no-compile: byte-compiling pulumi-aws's thousands of modules would double the install.
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile"]
    pip += ["-c", ROOT / "constraints.txt"]
    done = run(*pip, f"{wheel}[sandbox]", "pytest", cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


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


def test_demo_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    # WHEN `cohort-sync demo` runs from the wheel, nowhere near a checkout
    demo = run(installed / "cohort-sync", "demo", "--workdir", tmp_path / "demo", cwd=tmp_path)

    # THEN it finds the program, the examples and the product's code it archives, and succeeds
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "FileNotFoundError" not in demo.stderr
    assert (tmp_path / "demo" / "lambda-demo.zip").exists()
