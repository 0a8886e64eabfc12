"""What `cohort-sync` says: a description per command, a fix per refusal, quiet broken pipes."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync import commands
from sync.cli import build_parser, main
from sync.state import StateStore


def subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield f"{parser.prog} {name}".removeprefix("cohort-sync "), child
                yield from subcommands(child)


def test_every_subcommand_has_a_description_in_its_help() -> None:
    found = dict(subcommands(build_parser()))

    assert {"push", "preflight", "replay", "members", "demo", "local up"} <= set(found)
    assert [name for name, parser in found.items() if not parser.description] == []


def test_a_usage_error_names_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["members", "--format", "xml", "--cohort-id", "gs72ns"])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "cohort-sync members: error: argument --format: invalid choice: 'xml'" in err
    assert err.endswith("cohort-sync members: fix: see `cohort-sync members --help`\n")


def test_a_refusal_names_its_fix_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "--state", str(tmp_path / "none.sqlite"), "--cohort-id", "x"]) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"cohort-sync: error: --state {tmp_path / 'none.sqlite'}: no such consumer state file; "
        "run `consume` first",
        "cohort-sync: fix: run `consume` first, or pass the --state file it wrote (default "
        ".cohort-sync/consumer.sqlite)",
    ]


@pytest.mark.integration  # runs the CLI in a subprocess
def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path: Path) -> None:
    # GIVEN `cohort-sync state … | head -c 0`: the reader is gone before the command writes
    state = tmp_path / "state.duckdb"
    with StateStore(state):
        pass
    child = subprocess.Popen(
        [sys.executable, "-m", "sync", "state", "--state", str(state), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()

    err = child.stderr.read().decode()
    # THEN exit 0 and not a word on stderr (before: a BrokenPipeError traceback)
    assert (child.wait(timeout=60), err) == (0, "")


class _Report:
    ok = True

    def render(self) -> str:
        return "push: a report"


def test_watch_says_when_the_next_push_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN pushes that report at once, and a sleep that only records how long it was asked
    slept: list[float] = []
    monkeypatch.setattr(commands, "push_request", lambda args, **kw: None)
    monkeypatch.setattr(commands, "push_once", lambda args, request: _Report())
    monkeypatch.setattr(commands.time, "sleep", slept.append)
    argv = ["watch", "--every", "1h", "--ticks", "2", "--destination", "d.json"]
    argv += ["--cohort-id", "gs72ns", "--cohort-name", "Power users", "s.csv"]

    assert main(argv) == 0

    # THEN between the two reports one line says when the next push runs (before: silence)
    first, between, second = capsys.readouterr().out.splitlines()
    assert (first, second) == ("push: a report", "push: a report")
    assert re.fullmatch(
        r"watch: next push at \d\d:\d\d:\d\d UTC \(in 3600 s\); Ctrl-C stops", between
    )
    assert len(slept) == 1 and 3599 < slept[0] <= 3600


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["state"], "publisher"),
        (["replay", "--destination", "d.json"], "publisher"),
        (
            ["push", "--destination", "d.json", "--cohort-id", "c", "--cohort-name", "C", "s"],
            "publisher",
        ),
        (["consume", "--destination", "d.json"], "consumer"),
        (["members", "--cohort-id", "c"], "consumer"),
    ],
)
def test_each_state_flag_says_which_state_it_is(argv: list[str], kind: str) -> None:
    # `--state` stays; the long name says which of the three kinds of state it means
    other = "consumer" if kind == "publisher" else "publisher"
    parsed = build_parser().parse_args([*argv, f"--{kind}-state", "x.db"])
    assert parsed.state == Path("x.db")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, f"--{other}-state", "x.db"])
