"""The Lambda code archive: reproducible bytes, and enough of this project for the handler."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from provisioning.archive import (
    ARCHIVE_COMMAND,
    FIXED_TIME,
    archive_problem,
    default_archive,
    project_entries,
    tree_entries,
    write_archive,
)
from provisioning.archive_build import runtime_requirements
from sandbox.engine.runner import PROGRAM_DIR

SCRIPT = PROGRAM_DIR / "scripts" / "lambda_archive.py"


def test_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    entries = project_entries(PROGRAM_DIR)

    digest = write_archive(entries, first)

    assert write_archive(list(reversed(entries)), second) == digest
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {FIXED_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o644}


def test_a_changed_file_changes_the_hash(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("x = 1\n")
    before = write_archive([("m.py", source)], tmp_path / "1.zip")
    source.write_text("x = 2\n")

    assert write_archive([("m.py", source)], tmp_path / "2.zip") != before


def test_installed_dependencies_are_packed_without_byte_code(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    (deps / "pkg" / "__pycache__").mkdir(parents=True)
    (deps / "pkg" / "__init__.py").write_text("")
    (deps / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (deps / "pkg-1.0.dist-info").mkdir()
    (deps / "pkg-1.0.dist-info" / "RECORD").write_text("")

    assert sorted(name for name, _ in tree_entries(deps)) == [
        "pkg-1.0.dist-info/RECORD",
        "pkg/__init__.py",
    ]


@pytest.mark.integration  # runs a subprocess
def test_the_handler_imports_from_the_archive_alone(tmp_path: Path) -> None:
    # GIVEN an archive of this project's code (its dependencies come from the venv here)
    archive = tmp_path / "code.zip"
    write_archive(project_entries(PROGRAM_DIR), archive)
    # WHEN Python imports the handler with the archive first on its path, outside the checkout
    probe = (
        f"import sys; sys.path.insert(0, {str(archive)!r}); import sync.lambda_handler as h; "
        "import provisioning.constants as c; print(h.__file__); print(c.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    # THEN the handler and the constants it needs both came from the archive
    assert done.stdout.splitlines() == [
        f"{archive}/sync/lambda_handler.py",
        f"{archive}/provisioning/constants.py",
    ]


@pytest.mark.integration  # runs a subprocess
def test_the_script_packs_given_dependencies_without_network(tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    (deps / "jmespath").mkdir(parents=True)
    (deps / "jmespath" / "__init__.py").write_text("")
    out = tmp_path / "lambda.zip"

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--arch", "arm64", "--deps", str(deps), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.startswith(f"{out}  sha256 ")
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert "jmespath/__init__.py" in names and "sync/lambda_handler.py" in names


def test_the_console_command_writes_the_default_archive_where_the_program_looks(
    tmp_path: Path,
) -> None:
    # GIVEN a customer's project directory (no checkout, no Makefile) and installed dependencies
    deps = tmp_path / "deps"
    (deps / "aws_lambda_powertools").mkdir(parents=True)
    (deps / "aws_lambda_powertools" / "__init__.py").write_text("")
    project = tmp_path / "project"
    project.mkdir()

    # WHEN the console command runs there
    command = Path(sys.executable).with_name(ARCHIVE_COMMAND)
    done = subprocess.run(
        [str(command), "--arch", "arm64", "--deps", str(deps)],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )

    # THEN the archive is where `consumerArchive` "" points for that architecture, and it passes
    # the program's own archive check
    out = project / default_archive("arm64")
    assert done.stdout.startswith(f"{out}  sha256 ")
    assert archive_problem(out, "arm64") is None


def test_the_runtime_requirements_are_the_lambda_extras_pins() -> None:
    pyproject = tomllib.loads((PROGRAM_DIR / "pyproject.toml").read_text())

    assert runtime_requirements() == pyproject["project"]["optional-dependencies"]["lambda"]
    scripts = pyproject["project"]["scripts"]
    assert scripts[ARCHIVE_COMMAND] == "provisioning.archive_build:main"
