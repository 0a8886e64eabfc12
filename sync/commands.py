"""What each `cohort-sync` command does: compose library calls, print, return an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from sync.errors import InputError, MassExitError, PreflightError, StateError
from sync.limits import REAL_TIME_MAX_COHORT_USERS
from sync.state_files import DEFAULT_CONSUMER_STATE, DEFAULT_PUBLISHER_STATE

CADENCE_SECONDS = {"1m": 60, "1h": 3600, "1d": 86400}
SESSION_NAME = "amplitude-cohort-sync"
EXIT_UNDELIVERED = 1


def print_lines(*lines: str) -> None:
    """Print each line, flushed: progress shows as it happens, even through a pipe."""
    for line in lines:
        print(line, flush=True)


def print_error(message: str, fix: str, *, as_json: bool) -> None:
    """An error as `--json` promises ({"error", "fix"} on stdout) or as a line on stderr."""
    if as_json:
        print(json.dumps({"error": message, "fix": fix}), flush=True)
    else:
        print(f"cohort-sync: error: {message}\ncohort-sync: fix: {fix}", file=sys.stderr)


def write_private(path: Path, document: Any) -> None:
    """Write JSON readable by the owner only: outputs may hold the external ID."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


# --- destination and delivery ----------------------------------------------------------------


def destination(args: argparse.Namespace) -> int:
    """`destination`: the outputs file from the Pulumi CLI."""
    from sync.destination import export_from_pulumi

    path = export_from_pulumi(args.stack, args.out)
    print_lines(f"wrote {path}")
    return 0


def _assumed(
    args: argparse.Namespace, dest: Any, base: boto3.Session | None = None
) -> boto3.Session:
    from sync.credentials import assume_role_session

    return assume_role_session(
        base or boto3.Session(region_name=dest.region),
        dest.role_arn,
        session_name=SESSION_NAME,
        external_id=args.external_id or dest.external_id,
        region=dest.region,
        endpoint_url=args.endpoint_url,
    )


def run_preflight(session: boto3.Session, dest: Any, endpoint_url: str | None) -> str:
    """Preflight or raise PreflightError with every failed check and its fix."""
    from sync.preflight import preflight as simulate

    report = simulate(session, dest, endpoint_url=endpoint_url)
    if not report.ok:
        raise PreflightError(
            "preflight failed:\n" + report.render(),
            fix="do what each FAIL line's fix says, then run again",
        )
    return report.render()


def preflight(args: argparse.Namespace) -> int:
    """`preflight`: assume the role, then check it as Amplitude does."""
    from sync.destination import load_destination
    from sync.preflight import preflight as simulate

    dest = load_destination(args.destination)
    session = _assumed(args, dest)
    report = simulate(session, dest, endpoint_url=args.endpoint_url)
    print_lines(report.render(), report.conclusion())
    return 0 if report.ok else EXIT_UNDELIVERED


def _options(args: argparse.Namespace) -> Any:
    """The delivery options the command's arguments set; the rest keep their defaults."""
    from sync.options import DeliveryOptions

    given = vars(args).items()
    return DeliveryOptions(**{k: v for k, v in given if k in DeliveryOptions.field_names()})


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[Any], None] | None]:
    """A progress bar on a terminal (records acknowledged of `total`); nothing otherwise."""
    if not sys.stderr.isatty() or total == 0:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda event: bar.update(task, completed=event.records_acked)


def push_request(
    args: argparse.Namespace, *, max_users: int | None = None, max_users_rule: str = ""
) -> Any:
    """The PushRequest the arguments describe."""
    from sync.destination import load_destination
    from sync.mass_exit import ExitGuard
    from sync.push import PushRequest

    return PushRequest(
        destination=load_destination(args.destination),
        snapshot=args.snapshot,
        cohort_id=args.cohort_id,
        cohort_name=args.cohort_name,
        state=args.state,
        computed_time=None if args.computed_time is None else str(args.computed_time),
        options=_options(args),
        dry_run=getattr(args, "dry_run", False),
        resend_all=getattr(args, "resend_all", False),
        skip_preflight=args.skip_preflight,
        max_users=max_users,
        max_users_rule=max_users_rule,
        exit_guard=ExitGuard(max_exit_fraction=args.max_exit_fraction, allow=args.allow_mass_exit),
    )


def push_once(args: argparse.Namespace, request: Any) -> Any:
    """Run one push with the arguments' credentials and endpoint."""
    from sync.push import run_push

    return run_push(
        request,
        connect=lambda: _assumed(args, request.destination),
        check=lambda session: run_preflight(session, request.destination, args.endpoint_url),
        endpoint_url=args.endpoint_url,
        progress=lambda total: _progress(total, "delivering"),
    )


def _finish(args: argparse.Namespace, report: Any) -> int:
    print_lines(json.dumps(report.to_json()) if args.json else report.render())
    return 0 if report.ok else EXIT_UNDELIVERED


def push(args: argparse.Namespace) -> int:
    """`push`: one snapshot, diffed and delivered (or only counted with --dry-run)."""
    return _finish(args, push_once(args, push_request(args)))


def watch(args: argparse.Namespace) -> int:
    """`watch`: push every tick of the cadence, re-reading the snapshot each time."""
    every = CADENCE_SECONDS[args.every]
    limit = None
    if args.every == "1m" and not args.allow_large_realtime:
        limit = REAL_TIME_MAX_COHORT_USERS
    rule = (
        f"real-time sync supports at most {REAL_TIME_MAX_COHORT_USERS:,} users "
        "(Amplitude's limit); use --every 1h or --allow-large-realtime"
    )
    tick, status = 0, 0
    while args.ticks is None or tick < args.ticks:
        started = time.monotonic()
        args.computed_time = None
        try:
            report = push_once(args, push_request(args, max_users=limit, max_users_rule=rule))
        except MassExitError as exc:
            # One suspicious export must not stop the cadence: say so, try the next tick.
            print_error(str(exc), exc.fix, as_json=args.json)
            status = 2
        else:
            status = _finish(args, report)
        tick += 1
        if args.ticks is not None and tick >= args.ticks:
            break
        wait = max(0.0, every - (time.monotonic() - started))
        _say_next_tick(wait, as_json=args.json)
        time.sleep(wait)
    return status


def _say_next_tick(wait_seconds: float, *, as_json: bool) -> None:
    """One line between ticks, so a watch is never silent; on stderr under --json."""
    at = datetime.now(UTC) + timedelta(seconds=wait_seconds)
    line = f"watch: next push at {at:%H:%M:%S} UTC (in {wait_seconds:.0f} s); Ctrl-C stops"
    print(line, file=sys.stderr if as_json else sys.stdout, flush=True)


def replay(args: argparse.Namespace) -> int:
    """`replay`: re-send what the outbox still holds."""
    from sync.destination import load_destination
    from sync.push import run_replay

    dest = load_destination(args.destination)
    report = run_replay(
        args.state,
        dest,
        connect=lambda: _assumed(args, dest),
        options=_options(args),
        endpoint_url=args.endpoint_url,
        progress=lambda total: _progress(total, "replaying"),
    )
    if report.messages == 0 and not args.json:
        print_lines("outbox empty: nothing to replay")
        return 0
    return _finish(args, report)


def state(args: argparse.Namespace) -> int:
    """`state`: the publisher state's size, cohorts, last syncs and pending outbox."""
    from sync.state import StateStore

    if not args.state.exists():
        raise StateError(
            f"--state {args.state}: no such publisher state file; `push` creates it",
            fix=f"pass the --state file a push wrote (default {DEFAULT_PUBLISHER_STATE})",
        )
    with StateStore(args.state, read_only=True) as store:
        summary = store.summary()
    print_lines(json.dumps(summary.to_json()) if args.json else summary.render())
    return 0


# --- consumer --------------------------------------------------------------------------------


def consume(args: argparse.Namespace) -> int:
    """`consume`: the stream into materialized membership, with the customer's credentials."""
    from sync.consumer import Consumer
    from sync.destination import load_destination
    from sync.membership_store import MembershipStore

    dest = load_destination(args.destination)
    kinesis = boto3.Session(region_name=dest.region).client(
        "kinesis", region_name=dest.region, endpoint_url=args.endpoint_url
    )
    args.state.parent.mkdir(parents=True, exist_ok=True)
    with MembershipStore(args.state) as store:
        report = Consumer(kinesis, dest.stream_arn, store, from_start=args.from_start).consume(
            until_idle=args.until_idle
        )
    print_lines(json.dumps(report.to_json()) if args.json else report.render())
    return 0


def members(args: argparse.Namespace) -> int:
    """`members`: a cohort's current members as CSV or JSONL."""
    from sync.membership import property_columns, render_members
    from sync.membership_store import MembershipStore
    from sync.membership_store import members as members_of

    if not args.state.exists():
        raise StateError(
            f"--state {args.state}: no such consumer state file; run `consume` first",
            fix=f"run `consume` first, or pass the --state file it wrote (default "
            f"{DEFAULT_CONSUMER_STATE})",
        )
    with MembershipStore(args.state) as store:
        if not store.knows_cohort(args.cohort_id):
            raise InputError(
                f"--cohort-id {args.cohort_id!r}: no such cohort in {args.state}",
                fix="use a cohort id the consumer has read (`consume` first, or check the id)",
            )
        # Two passes over the store: the CSV's columns first, then the rows, memory bounded.
        columns = (
            property_columns(members_of(store, args.cohort_id)) if args.format == "csv" else []
        )
        for line in render_members(members_of(store, args.cohort_id), args.format, columns):
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
    return 0
