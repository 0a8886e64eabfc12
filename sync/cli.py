"""`cohort-sync`: parses arguments and calls library functions; no logic lives here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from sync import commands
from sync.errors import ReportedError, SyncError
from sync.inputs import fraction, whole_number
from sync.limits import (
    COMPUTED_TIME_RANGE,
    DEFAULT_MAX_EXIT_FRACTION,
    DEFAULT_MAX_TRIES,
    DEFAULT_SENDERS,
    DEFAULT_USERS_PER_MESSAGE,
    MAX_COHORT_ID_CHARS,
    MAX_COHORT_NAME_CHARS,
    MAX_TRIES_RANGE,
    SENDERS_RANGE,
    SHARDS_RANGE,
    TICKS_RANGE,
    USERS_PER_MESSAGE_RANGE,
)
from sync.state_files import DEFAULT_CONSUMER_STATE, DEFAULT_PUBLISHER_STATE

PLUGIN_GROUP = "cohort_sync.commands"

Handler = Callable[[argparse.Namespace], int]


def endpoint_argument(parser: argparse.ArgumentParser, otherwise: str = "AWS itself") -> None:
    """`--endpoint-url`, worded the same on every command that talks to AWS."""
    parser.add_argument(
        "--endpoint-url",
        help="AWS endpoint for every call (a moto server, say); default: boto3's AWS_ENDPOINT_URL, "
        f"else {otherwise}",
    )


# The two local state files, each flag saying which it means (`--state` is either's short name).
_STATE_FILES = {
    "publisher": (
        DEFAULT_PUBLISHER_STATE,
        "the DuckDB file of membership, syncs and outbox that `push` creates",
    ),
    "consumer": (
        DEFAULT_CONSUMER_STATE,
        "the SQLite file of checkpoints and membership that `consume` creates",
    ),
}


def state_argument(parser: argparse.ArgumentParser, kind: str) -> None:
    """`--state` (or `--publisher-state` / `--consumer-state`): that kind's local file."""
    default, what = _STATE_FILES[kind]
    parser.add_argument(
        "--state",
        f"--{kind}-state",
        dest="state",
        type=Path,
        default=default,
        help=f"the {kind} state: {what} (default {default})",
    )


def _destination(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--destination",
        type=Path,
        required=True,
        help="stack outputs file: `pulumi stack output --json --show-secrets` or `local up --out`",
    )


def _external_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--external-id",
        help="sts:ExternalId for AssumeRole; default: the destination file's externalId, if any",
    )


def _delivery(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shards",
        type=whole_number("--shards"),
        default=None,
        metavar="N",
        help=f"the stream's shard count, {_span(SHARDS_RANGE)}, to pace sends from the start "
        "(default: learn it from throttling; the role cannot describe the stream)",
    )
    parser.add_argument(
        "--senders",
        type=whole_number("--senders"),
        default=DEFAULT_SENDERS,
        metavar="N",
        help=f"concurrent PutRecords calls, {_span(SENDERS_RANGE)} (default {DEFAULT_SENDERS})",
    )
    parser.add_argument(
        "--max-tries",
        type=whole_number("--max-tries"),
        default=DEFAULT_MAX_TRIES,
        metavar="N",
        help=f"tries per record before it is left in the outbox, {_span(MAX_TRIES_RANGE)} "
        f"(default {DEFAULT_MAX_TRIES})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print the report as JSON; errors too, as {"error": ..., "fix": ...}',
    )


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    _destination(parser)
    parser.add_argument(
        "--cohort-id",
        required=True,
        help=f"Amplitude cohort ID, e.g. gs72ns: 1-{MAX_COHORT_ID_CHARS} of [A-Za-z0-9_.-], "
        "starting with a letter or digit",
    )
    parser.add_argument(
        "--cohort-name",
        required=True,
        help=f"the cohort's display name: 1-{MAX_COHORT_NAME_CHARS} characters, not blank, "
        "no control characters",
    )
    parser.add_argument(
        "snapshot", type=Path, help="the cohort's full membership: .csv, .jsonl or .parquet"
    )
    state_argument(parser, "publisher")
    parser.add_argument(
        "--max-users-per-message",
        type=whole_number("--max-users-per-message"),
        default=DEFAULT_USERS_PER_MESSAGE,
        metavar="N",
        help=f"users per message at most, {_span(USERS_PER_MESSAGE_RANGE)} (default "
        f"{DEFAULT_USERS_PER_MESSAGE}); messages are also split to stay under 1 MiB",
    )
    parser.add_argument(
        "--partition-key",
        choices=["message_id", "cohort_id"],
        default="message_id",
        help="message_id spreads over shards (default); cohort_id keeps a cohort on one shard",
    )
    parser.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not check the role's permissions before sending",
    )
    parser.add_argument(
        "--max-exit-fraction",
        type=fraction,
        default=DEFAULT_MAX_EXIT_FRACTION,
        metavar="F",
        help="refuse (exit 2, nothing staged) a push that would remove more than this share of "
        f"the cohort's members (default {DEFAULT_MAX_EXIT_FRACTION:g}); an empty snapshot for a "
        "cohort with members is always refused",
    )
    parser.add_argument(
        "--allow-mass-exit",
        action="store_true",
        help="send the exits whatever their share, an empty snapshot included",
    )
    _external_id(parser)
    endpoint_argument(parser)
    _delivery(parser)


def _span(bounds: tuple[int, int]) -> str:
    return f"{bounds[0]:,}-{bounds[1]:,}"


def _state_command(sub: Any) -> None:
    state = sub.add_parser(
        "state",
        help="print the publisher state's size, cohorts, last sync per cohort and pending outbox",
        description="Open the state file read-only and print its size on disk (file and WAL), "
        "each cohort with its stream, stored members and last sync, and what the outbox still "
        "holds (acknowledged records are deleted, so that is what `replay` would send).",
    )
    state_argument(state, "publisher")
    state.add_argument("--json", action="store_true", help="print the summary as JSON")
    state.set_defaults(handler=commands.state)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with help that says what each command really does."""
    parser = _Parser(
        prog="cohort-sync",
        description="Deliver Amplitude cohort updates to the Kinesis destination this project "
        "provisions, read them back, and try it all locally on moto.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    destination = sub.add_parser(
        "destination",
        help="write the destination file from the Pulumi CLI's stack outputs",
        description="Run `pulumi stack output --json --show-secrets` and write its output; "
        "says so when the Pulumi CLI is not installed (use `local up --out` then).",
    )
    destination.add_argument("--stack", help="stack name (default: the selected stack)")
    destination.add_argument(
        "--out",
        type=Path,
        default=Path("destination.json"),
        help="file to write (default destination.json)",
    )
    destination.set_defaults(handler=commands.destination)

    preflight = sub.add_parser(
        "preflight",
        help="assume the role and check it as Amplitude does (SimulatePrincipalPolicy)",
        description="Assume the destination's role with your base credentials, confirm the "
        "session acts as that role, and simulate kinesis:PutRecord, kinesis:PutRecords and "
        "iam:SimulatePrincipalPolicy on the stream and the role, as Amplitude does before it "
        "delivers. Prints one PASS or FAIL line per check, each FAIL with its fix; exits 1 when "
        "any check fails. Sends nothing.",
    )
    _destination(preflight)
    _external_id(preflight)
    endpoint_argument(preflight)
    preflight.set_defaults(handler=commands.preflight)

    push = sub.add_parser(
        "push",
        help="diff a snapshot against the state and deliver who entered and who left",
        description="Check every input (options, cohort, destination, the whole snapshot, the "
        "state's binding, the mass-exit guard), preflight the role, diff against the state "
        "store, commit the messages to the outbox with the new membership, and deliver them with "
        "PutRecords. Nothing is written to the state before every check passed; a refusal exits "
        "2. Messages that exhaust their tries stay in the outbox: the run exits 1 and `replay` "
        "re-sends them.",
    )
    _push_arguments(push)
    push.add_argument(
        "--computed-time",
        type=whole_number("--computed-time", COMPUTED_TIME_RANGE),
        metavar="EPOCH_SECONDS",
        default=None,
        help="epoch seconds for computed_time (default: now, or one second after the cohort's "
        "last sync if that is later); must be after the last sync's",
    )
    push.add_argument(
        "--resend-all",
        action="store_true",
        help="send every snapshot user as entering (and who left as exiting) whatever the state "
        "says: after the stream was re-created, or when consumers lost their data",
    )
    push.add_argument(
        "--dry-run",
        action="store_true",
        help="print entering/exiting/messages/bytes and send nothing",
    )
    push.set_defaults(handler=commands.push)

    watch = sub.add_parser(
        "watch",
        help="push the snapshot again every minute, hour or day",
        description="Amplitude's cadences: 1m (real time; refuses cohorts over 1,000,000 users "
        "unless --allow-large-realtime), 1h (hourly) and 1d (daily). The snapshot file is "
        "re-read each tick.",
    )
    _push_arguments(watch)
    watch.add_argument("--every", required=True, choices=["1m", "1h", "1d"], help="cadence")
    watch.add_argument(
        "--allow-large-realtime",
        action="store_true",
        help="allow real time for cohorts over Amplitude's 1,000,000-user limit",
    )
    watch.add_argument(
        "--ticks",
        type=whole_number("--ticks", TICKS_RANGE),
        default=None,
        metavar="N",
        help="stop after this many pushes (default: run until interrupted); a tick whose push "
        "is refused as a mass exit reports it and the watch goes on",
    )
    watch.set_defaults(handler=commands.watch)

    replay = sub.add_parser(
        "replay",
        help="re-send what the outbox still holds",
        description="Deliver the records a push left in the publisher state's outbox (they "
        "exhausted their tries, or the push was killed), under their original message ids, then "
        "compact the file. Reads no snapshot and stages nothing; exits 1 while records remain.",
    )
    _destination(replay)
    state_argument(replay, "publisher")
    _external_id(replay)
    endpoint_argument(replay)
    _delivery(replay)
    replay.set_defaults(handler=commands.replay)

    consume = sub.add_parser(
        "consume",
        help="read the stream with your own credentials into materialized membership",
        description="Read every shard (parents before children), dedupe by message_id, keep "
        "the latest computed_time per user, quarantine invalid records; checkpoints live in "
        "the state file so a restart continues where it stopped.",
    )
    _destination(consume)
    state_argument(consume, "consumer")
    consume.add_argument(
        "--from-start", action="store_true", help="read from the oldest record the stream retains"
    )
    consume.add_argument(
        "--until-idle",
        action="store_true",
        help="stop once every shard is caught up (default: keep reading)",
    )
    consume.add_argument(
        "--json",
        action="store_true",
        help='print the report as JSON; errors too, as {"error": ..., "fix": ...}',
    )
    endpoint_argument(consume)
    consume.set_defaults(handler=commands.consume)

    members = sub.add_parser(
        "members",
        help="print a cohort's current members",
        description="Print, from the consumer state `consume` wrote, the users a cohort holds "
        "now (the latest computed_time per user wins) as CSV (one column per property) or "
        "JSONL, ordered by user_id. Reads no stream.",
    )
    state_argument(members, "consumer")
    members.add_argument("--cohort-id", required=True, help="cohort to print")
    members.add_argument(
        "--format", choices=["csv", "jsonl"], default="csv", help="output format (default csv)"
    )
    members.set_defaults(handler=commands.members)

    _state_command(sub)

    for plugin in entry_points(group=PLUGIN_GROUP):
        # The sandbox's `local` and `demo` register themselves here; sync/ never imports them.
        plugin.load()(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error under `--json` is printed as JSON on stdout."""

    json_errors = False  # set by main() for the whole tree of parsers

    def error(self, message: str) -> NoReturn:
        """Exit 2 as argparse does, naming the fix; with --json, {"error", "fix"} instead."""
        fix = f"see `{self.prog} --help`"
        if not _Parser.json_errors:
            self.print_usage(sys.stderr)
            self.exit(2, f"{self.prog}: error: {message}\n{self.prog}: fix: {fix}\n")
        commands.print_error(f"{self.prog}: {message}", fix, as_json=True)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print one clear message and exit non-zero."""
    argv = list(sys.argv[1:] if argv is None else argv)
    words = argv[: argv.index("--")] if "--" in argv else argv
    _Parser.json_errors = "--json" in words
    try:
        args = build_parser().parse_args(argv)
    finally:
        _Parser.json_errors = False
    handler: Handler = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader stopped reading (`| head`): done, as Unix tools are, quietly.
        _silence_stdout()
        return 0
    except ReportedError:
        return 2
    except SyncError as exc:
        commands.print_error(str(exc), exc.fix, as_json=bool(getattr(args, "json", False)))
        return exc.exit_code
    except KeyboardInterrupt:
        if getattr(args, "json", False):
            commands.print_error(
                "interrupted",
                "run the command again: a push resumes where it stopped",
                as_json=True,
            )
        else:
            print("cohort-sync: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush finds no broken pipe.

    As the Python documentation's note on SIGPIPE advises; the pipe's unread bytes are dropped.
    """
    try:
        stdout = sys.stdout.fileno()
    except (OSError, ValueError):
        return  # not a file descriptor (a test's capture): nothing will flush into a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout)
    os.close(devnull)
