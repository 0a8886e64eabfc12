"""README and --help stay honest: every documented command parses, every command is documented."""

import argparse
import io
import json
import re
import shlex
import shutil
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
    for step in ("ruff check .", "ruff format --check .", "scripts/typecheck.py"):
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


def served_world_block() -> list[str]:
    """The README's block that acts in a served world, one command per line, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    (block,) = [b for b in blocks if "local serve" in b]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(line.removeprefix(".venv/bin/cohort-sync "))
    return commands


@pytest.mark.integration
def test_the_served_world_block_runs_in_the_order_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the README's served-world block, its `local serve` (terminal 1) stood in for by a
    # server in this process, run from a fresh directory holding the examples
    from sandbox.server import start_server

    commands = served_world_block()
    assert commands[0].startswith("local serve") and len(commands) >= 5
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    with start_server() as served:
        world_file = tmp_path / ".cohort-sync" / "world.json"
        world_file.parent.mkdir()
        world_file.write_text(json.dumps(served.world.to_json()))
        # "with the environment `local up` prints for Amplitude's principal"
        amplitude = served.world.amplitude
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", amplitude.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", amplitude.secret_access_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

        # WHEN each command runs in the order written THEN each one succeeds (before: `push`
        # after `local destroy` failed with AccessDenied)
        for command in commands[1:]:
            argv = shlex.split(command.replace("http://127.0.0.1:5000", served.url))
            code = main(argv)
            out, err = capsys.readouterr()
            assert code == 0, f"{command}\n{out}\n{err}"
