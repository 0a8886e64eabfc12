"""README and --help stay honest: every documented command parses, every command is documented."""

import argparse
import io
import json
import re
import shlex
import subprocess
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from sync.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def documented_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        for prefix in (".venv/bin/cohort-sync ", "cohort-sync "):
            if line.startswith(prefix):
                commands.append(line[len(prefix) :])
    return commands


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = subcommands(sub, f"{prefix}{name} ")
                names.extend(nested or [f"{prefix}{name}"])
    return names


@pytest.mark.integration  # runs a subprocess
def test_the_two_doors_do_what_the_readme_says() -> None:
    # GIVEN the README's two commands, WHEN make spells out what they run (without running it)
    assert "make demo" in README and "make test" in README

    def dry_run(target: str) -> list[str]:
        return subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()

    # THEN `make demo` is `cohort-sync demo`, `make test` lints, types and runs the whole suite,
    # and `make check` the same with the unit tests that are not slow
    assert ".venv/bin/python -m sync demo" in dry_run("demo")
    test, check = dry_run("test"), dry_run("check")
    for step in ("ruff check .", "ruff format --check .", "mypy"):
        assert any(step in line for line in test) and any(step in line for line in check), step
    (suite,) = [line for line in test if "python -m pytest" in line]
    assert " -m " not in suite.split("pytest", 1)[1]  # no marker expression: everything
    assert any('python -m pytest -n 2 -q -m "unit and not slow"' in line for line in check)


LOCAL_UP = [c for c in documented_commands() if c.startswith("local up") and "--endpoint" not in c]


@pytest.mark.integration
@pytest.mark.parametrize("command", LOCAL_UP)
def test_documented_local_up_commands_succeed(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a documented `local up` (embedded moto), run from the project directory
    monkeypatch.chdir(ROOT)
    out = io.StringIO()

    # WHEN cohort-sync runs it
    with redirect_stdout(out):
        code = main([*shlex.split(command), "--out", str(tmp_path / "destination.json")])

    # THEN every proof step passed (Amplitude's account assumes the role, another is refused)
    # and the outputs file holds the destination form
    assert code == 0, out.getvalue()
    assert "FAIL" not in out.getvalue()
    assert "PASS  Amplitude assumes the role" in out.getvalue()
    assert "PASS  a principal of account 111122223333 is refused" in out.getvalue()
    outputs = json.loads((tmp_path / "destination.json").read_text())
    assert set(outputs["destination"]) == {"display_name", "stream_name", "aws_region", "role_arn"}


@pytest.mark.parametrize("command", documented_commands())
def test_every_documented_command_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command))

    assert callable(args.handler)


@pytest.mark.parametrize("command", subcommands(build_parser()))
def test_every_command_is_documented_and_has_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"`{command.split()[-1]}" in README or f"local {command.split()[-1]}" in README

    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args([*command.split(), "--help"])

    assert caught.value.code == 0
    assert "usage: cohort-sync " + command in capsys.readouterr().out


@pytest.mark.integration  # the example applies the program to moto
def test_readme_fixture_example_runs_as_a_customer_would(
    pytester: pytest.Pytester, readme_customer_project: Callable[[Path, Path], None]
) -> None:
    # GIVEN the README's stack file, conftest line and example test, verbatim, in a fresh project
    from sandbox.engine.runner import PROGRAM_DIR

    readme_customer_project(pytester.path, PROGRAM_DIR)

    # WHEN pytest runs them
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "tests")

    # THEN the example passes against the sandbox
    result.assert_outcomes(passed=1)


@pytest.mark.integration  # the example applies the program to moto
def test_readme_fixture_example_fails_without_its_stack_file(
    pytester: pytest.Pytester, readme_customer_project: Callable[[Path, Path], None]
) -> None:
    # The example cannot pass on the defaults: without Pulumi.prod.yaml it is an error.
    from sandbox.engine.runner import PROGRAM_DIR

    readme_customer_project(pytester.path, PROGRAM_DIR)
    (pytester.path / "Pulumi.prod.yaml").unlink()

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "tests")

    result.assert_outcomes(errors=1)
    assert "Pulumi.prod.yaml does not exist" in result.stdout.str()
