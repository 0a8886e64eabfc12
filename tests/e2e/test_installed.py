"""Installed from the wheel, not cloned: the fixtures and `local up` work on a customer's project.

The `installed` fixture (tests/installed.py) builds one venv per session in the background, shared
by xdist workers (from the local pip cache, about a minute of CPU): the built wheel with its
sandbox extra, and pytest.
Nothing from this checkout is importable there.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.installed import ROOT, run

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


def test_a_customers_own_program_with_the_lambda_consumer(installed: Path, tmp_path: Path) -> None:
    # GIVEN a customer's repository holding copies of Pulumi.yaml and __main__.py, and the
    # README's requirements.txt pointing at the wheel built from this checkout
    readme = (ROOT / "README.md").read_text()
    requirements = next(
        block
        for block in re.findall(r"```text\n(.*?)```", readme, flags=re.S)
        if block.startswith("# requirements.txt")
    )
    (wheel,) = (installed.parent.parent / "dist").glob("amplitude_kinesis_cohort-*.whl")
    project = tmp_path / "customer"
    project.mkdir()
    (project / "requirements.txt").write_text(
        re.sub(r"file:///\S+\.whl", wheel.as_uri(), requirements)
    )
    for name in ("Pulumi.yaml", "__main__.py"):  # copied from the clone, as the README says
        (project / name).write_text((ROOT / name).read_text())
    (project / "Pulumi.prod.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  amplitude-kinesis-cohort:consumer: lambda\n"
    )
    pip = [installed / "python", "-m", "pip", "install", "-q", "--no-compile"]
    done = run(*pip, "-r", "requirements.txt", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    up = [installed / "cohort-sync", "local", "up", "--project-dir", project, "--stack", "prod"]

    # WHEN the stack runs before the archive exists, THEN the error names the console command
    refused = run(*up, cwd=tmp_path)
    assert refused.returncode != 0
    assert "build it with `cohort-lambda-archive --arch x86_64`" in refused.stdout + refused.stderr

    # WHEN the installed command builds the archive in the project (dependencies given, so no
    # PyPI here; `--deps` skips only the pip step)
    deps = tmp_path / "deps"
    (deps / "aws_lambda_powertools").mkdir(parents=True)
    (deps / "aws_lambda_powertools" / "__init__.py").write_text("")
    built = run(
        installed / "cohort-lambda-archive", "--arch", "x86_64", "--deps", deps, cwd=project
    )
    assert built.returncode == 0, built.stdout + built.stderr

    # THEN the archive holds the installed package's handler, and the stack applies with it
    installed_handler = run(
        installed / "python",
        "-c",
        "import importlib.util as u; print(u.find_spec('sync.lambda_handler').origin)",
        cwd=tmp_path,
    )
    with zipfile.ZipFile(project / "dist" / "lambda-x86_64.zip") as archive:
        packed = archive.read("sync/lambda_handler.py")
    assert packed == Path(installed_handler.stdout.strip()).read_bytes()
    out = tmp_path / "destination.json"
    applied = run(*up, "--out", out, cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs = json.loads(out.read_text())
    assert outputs["membershipTable"] == "amplitude-cohorts-consumer-membership"
    assert outputs["consumerFunctionArn"].endswith(":function:amplitude-cohorts-consumer")


def test_demo_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    # WHEN `cohort-sync demo` runs from the wheel, nowhere near a checkout
    demo = run(installed / "cohort-sync", "demo", "--workdir", tmp_path / "demo", cwd=tmp_path)

    # THEN it finds the program, the examples and the product's code it archives, and succeeds
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "FileNotFoundError" not in demo.stderr
    assert (tmp_path / "demo" / "lambda-demo.zip").exists()
