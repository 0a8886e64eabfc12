"""README and --help stay honest: every documented command parses, every command is documented."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from sync.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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


def test_the_two_doors_are_documented() -> None:
    assert "make demo" in README
    assert "make test" in README


@pytest.mark.parametrize("command", documented_commands())
def test_every_documented_command_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command))

    assert callable(args.handler)


def test_readme_shows_several_commands() -> None:
    assert len(documented_commands()) >= 4


@pytest.mark.parametrize("command", subcommands(build_parser()))
def test_every_command_is_documented_and_has_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"`{command.split()[-1]}" in README or f"local {command.split()[-1]}" in README

    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args([*command.split(), "--help"])

    assert caught.value.code == 0
    assert "usage: cohort-sync " + command in capsys.readouterr().out


def test_readme_fixture_example_runs_as_a_customer_would(pytester: pytest.Pytester) -> None:
    # GIVEN the README's conftest line and example test, verbatim, in a fresh project
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    conftest = next(b for b in blocks if "pytest_plugins" in b)
    example = next(b for b in blocks if "def test_" in b)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_example=example)

    # WHEN pytest runs them
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    # THEN the example passes against the harness
    result.assert_outcomes(passed=1)
