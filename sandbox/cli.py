"""The sandbox's commands, plugged into `cohort-sync` as `local …` and `demo`.

`cohort-sync` finds them through the `cohort_sync.commands` entry point, so the product never
imports the sandbox: without the sandbox installed, these commands are simply absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioning.errors import ProvisioningError
from sandbox.engine import DEFAULT_STACK
from sync.cli import endpoint_argument as _endpoint
from sync.commands import print_lines as _print
from sync.commands import write_private as _write_private
from sync.errors import ReportedError, SyncError

if TYPE_CHECKING:  # imported where used: `--help` loads no engine
    from sandbox.engine.interrupts import Interrupted

DEFAULT_WORLD_FILE = Path(".cohort-sync/world.json")

Handler = Callable[[argparse.Namespace], int]


def _refusals(handler: Handler) -> Handler:
    """The engine's own refusals reach `cohort-sync` as the SyncErrors it reports (exit 2)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ProvisioningError as exc:
            raise SyncError(str(exc)) from exc

    run.__doc__ = handler.__doc__
    return _requires_sandbox(run)


def _sandbox_missing() -> str | None:
    """Why the sandbox's commands cannot run here, if they cannot (its extra is not installed)."""
    for module in ("moto", "yaml", "pulumi", "pulumi_aws"):
        if importlib.util.find_spec(module) is None:
            return (
                f"the sandbox needs {module!r}, which is not installed: "
                "pip install 'amplitude-kinesis-cohort[sandbox]'"
            )
    return None


def _requires_sandbox(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        missing = _sandbox_missing()
        if missing:
            raise SyncError(missing)
        return handler(args)

    run.__doc__ = handler.__doc__
    return run


def register(sub: Any) -> None:
    """Add `local serve|up|preview|destroy|refresh` and `demo` to cohort-sync's subcommands."""
    local = sub.add_parser(
        "local",
        help="run the stack on a local moto (no AWS account)",
        description="Serve a moto world and run this project's Pulumi program against it: "
        "serve, up, preview, destroy, refresh.",
    )
    local_sub = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    serve = local_sub.add_parser(
        "serve",
        help="a moto server on 127.0.0.1 with the harness's IAM behaviour, until interrupted",
        description="Serve moto on 127.0.0.1 with IAM enforced, trust policies evaluated and "
        "SimulatePrincipalPolicy answered; the customer and Amplitude principals' (moto) "
        "credentials are written to --world-file for `local up`.",
    )
    serve.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 = any)")
    serve.add_argument(
        "--world-file",
        type=Path,
        default=DEFAULT_WORLD_FILE,
        help=f"where to write the served world (default {DEFAULT_WORLD_FILE})",
    )
    serve.add_argument(
        "--faults",
        default=None,
        help="fault plan, e.g. 'throughput=on,scale=50,throttle=0.02,seed=7'",
    )
    serve.set_defaults(handler=_refusals(local_serve))

    up_parser = local_sub.add_parser(
        "up",
        help="preview and apply the unmodified program to moto, then show Amplitude using it",
        description="Preview the program against the stack's state, apply the plan (create, "
        "update in place, replace or delete, as the AWS provider would), record the new state, "
        "write the outputs file, print Amplitude's destination form, and prove the role: "
        "Amplitude's principal assumes it and writes a record, a stranger is refused. Refuses a "
        "plan that replaces or deletes the stream unless --yes. Without --endpoint-url the moto "
        "is embedded and gone when the command ends (and so is the stack's state).",
    )
    _stack_arguments(up_parser)
    up_parser.add_argument(
        "--yes",
        action="store_true",
        help="apply even a plan that replaces or deletes the Kinesis stream (its records go too)",
    )
    up_parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the outputs (as `pulumi stack output --json --show-secrets`) here",
    )
    up_parser.set_defaults(handler=_refusals(local_up))

    preview_parser = local_sub.add_parser(
        "preview",
        help="what `local up` would do to the stack, changing nothing",
        description="Run the program against the stack's recorded state and print each step "
        "(same, create, update, replace, import, delete) with the inputs that cause it, and a "
        "notice for every change Amplitude must be told about. Reads AWS, changes nothing.",
    )
    _stack_arguments(preview_parser)
    preview_parser.set_defaults(handler=_refusals(local_preview))

    destroy_parser = local_sub.add_parser(
        "destroy",
        help="delete every resource the stack's state records (not a protected stream)",
        description="Delete what the stack's state records, dependents first. A stream with "
        "protectStream true refuses the whole destroy, as Pulumi's protection does.",
    )
    _stack_arguments(destroy_parser)
    destroy_parser.set_defaults(handler=_refusals(local_destroy))

    refresh_parser = local_sub.add_parser(
        "refresh",
        help="read the stack's resources back from AWS and report drift field by field",
        description="Read every resource the stack's state records, print what differs from "
        "the recorded inputs (or that it was deleted), and record what AWS holds, as `pulumi "
        "refresh` does; the next `local up` puts back what the program declares.",
    )
    _stack_arguments(refresh_parser)
    refresh_parser.set_defaults(handler=_refusals(local_refresh))

    demo_parser = sub.add_parser(
        "demo",
        help="the whole product on an embedded moto: provision, push two days, consume",
        description="On an embedded moto (no AWS account): provision the stack, push the "
        "example cohort's day 1 and day 2, consume the stream, and compare the members with day "
        "2; exits 0 when they match. Writes its files under --workdir.",
    )
    demo_parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("out/demo"),
        help="where the demo writes its files (default out/demo)",
    )
    demo_parser.set_defaults(handler=_refusals(demo))


def local_serve(args: argparse.Namespace) -> int:
    """`local serve`: moto with the harness's IAM behaviour (and faults) until interrupted."""
    from sandbox.fault_plan import FaultPlan, FaultSpecError
    from sandbox.faults import faults_installed
    from sandbox.server import serve_forever

    args.world_file.parent.mkdir(parents=True, exist_ok=True)
    if args.faults:
        try:
            plan = FaultPlan.parse(args.faults)
        except FaultSpecError as exc:
            raise SyncError(f"--faults {args.faults!r}: {exc}") from exc
        with faults_installed(plan):
            _print(f"faults: {plan.to_spec()}")
            serve_forever(args.port, world_file=args.world_file)
    else:
        serve_forever(args.port, world_file=args.world_file)
    return 0


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every stack command shares."""
    parser.add_argument(
        "--stack",
        default=DEFAULT_STACK,
        help=f"stack name: reads Pulumi.<stack>.yaml, which must exist (default {DEFAULT_STACK})",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the Pulumi project: its Pulumi.yaml, stack files and __main__.py "
        "(default: this project's own program)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a stack config value (repeatable); secrets the stack file "
        "holds encrypted must be given here or as $COHORT_SECRET_<key>",
    )
    parser.add_argument(
        "--region", help="AWS region (default: the stack's aws:region, else us-east-1)"
    )
    parser.add_argument(
        "--world-file",
        type=Path,
        default=DEFAULT_WORLD_FILE,
        help="with --endpoint-url: the world file `local serve` wrote",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="with --endpoint-url: where <stack>.json records the stack's resources (default: "
        "stacks/ beside the world file); the embedded moto keeps the state in memory only",
    )
    parser.add_argument(
        "--json", action="store_true", help="print `pulumi preview --json`'s shape, on every path"
    )
    _endpoint(parser, otherwise="an embedded moto, gone when the command ends")


@dataclass
class _Session:
    config: Any
    region: str
    world: Any
    ctx: Any
    place: Any


@contextmanager
def _stack_session(args: argparse.Namespace) -> Iterator[_Session]:
    """Config, world, AWS context and state place for a stack command."""
    from sandbox.engine.runner import PROGRAM_DIR
    from sandbox.engine.stack import load_stack_config, parse_overrides
    from sandbox.engine.state import default_state_dir
    from sandbox.lifecycle import context_for, place_for
    from sandbox.world import moto_world

    config = load_stack_config(
        args.stack,
        project_dir=args.project_dir or PROGRAM_DIR,
        overrides=parse_overrides(args.config),
    )
    region = args.region or config.region or "us-east-1"
    # Like every command here, boto3's AWS_ENDPOINT_URL stands in for --endpoint-url.
    args.endpoint_url = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    state_dir = args.state_dir or default_state_dir(args.world_file)
    place = place_for(args.endpoint_url, state_dir, args.stack)
    if args.endpoint_url:
        if not args.world_file.exists():
            raise SyncError(
                f"--world-file {args.world_file}: not found; `cohort-sync local serve "
                f"--world-file {args.world_file}` writes it for the server at "
                f"{args.endpoint_url}"
            )
        world = _served_world(args.world_file, args.endpoint_url, region)
        yield _Session(config, region, world, context_for(world, region, args.endpoint_url), place)
    else:
        with moto_world(region) as embedded:
            yield _Session(config, region, embedded, context_for(embedded, region, None), place)


def _digest(outcome: Any, session: _Session, started_ns: int) -> dict[str, Any]:
    """`pulumi preview --json`'s document for the outcome, timed from `started_ns`."""
    from sandbox.engine.digest import preview_digest

    return preview_digest(
        outcome, config=session.config, duration_ns=time.perf_counter_ns() - started_ns
    )


def _heading(verb: str, stack: str, session: _Session) -> str:
    return f"{verb} stack {stack!r} in {session.region} ({session.place.describe()}):"


def _json_out(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, default=str), flush=True)


def _guarded(args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Run `body`; with --json a refusal is printed as JSON too (then exit 2)."""
    from sandbox.lifecycle import JsonReported, json_errors

    try:
        with json_errors(args.json, _json_out):
            return body()
    except JsonReported as exc:
        raise ReportedError(str(exc)) from exc


def _stack_command(args: argparse.Namespace, act: Callable[[_Session, int], int]) -> int:
    """The skeleton of the four stack commands: session, timing, refusals printed (as JSON)."""

    def body() -> int:
        started = time.perf_counter_ns()
        with _stack_session(args) as session:
            return act(session, started)

    return _guarded(args, body)


def _report(
    args: argparse.Namespace,
    session: _Session,
    started: int,
    outcome: Any,
    verb: str,
    *after: str,
) -> None:
    """An outcome as `pulumi preview --json`'s document, or as the plan's lines (and `after`)."""
    from sandbox.engine import render

    if args.json:
        _json_out(_digest(outcome, session, started))
        return
    _print(_heading(verb, args.stack, session), "")
    _print(*render.render_steps(outcome), *(("", *after) if after else ()))


def local_preview(args: argparse.Namespace) -> int:
    """`local preview`: the plan against the recorded state; nothing changes."""
    from sandbox import lifecycle

    def act(session: _Session, started: int) -> int:
        outcome = lifecycle.preview(session.config, session.ctx, session.place)
        _report(args, session, started, outcome, "Previewing")
        return 0

    return _stack_command(args, act)


def local_up(args: argparse.Namespace) -> int:
    """`local up`: plan, apply to moto, record the state, write outputs, show the form, prove."""
    from sandbox import lifecycle
    from sandbox.engine import render
    from sandbox.engine.interrupts import Interrupted
    from sandbox.proof import prove_destination

    def act(session: _Session, started: int) -> int:

        def show_plan(outcome: Any) -> None:
            if not args.json:
                _print(_heading("Previewing", args.stack, session), "")
                _print(*render.render_steps(outcome), "")

        try:
            applied = lifecycle.up(
                session.config, session.ctx, session.place, yes=args.yes, on_plan=show_plan
            )
        except Interrupted as exc:
            return _interrupted(args, session, exc)
        assert applied.run is not None
        outputs = applied.run.outputs
        steps = prove_destination(session.world, outputs)
        if args.out:
            _write_private(args.out, outputs)
        if args.json:
            document = _digest(applied, session, started)
            document["proof"] = [
                {"name": s.name, "passed": s.passed, "detail": s.detail} for s in steps
            ]
            _json_out(document)
            return 0 if all(step.passed for step in steps) else 1
        _print(render.render_applied(applied))
        _print("", "Outputs:", render.render_outputs(outputs, applied.run.secret_outputs), "")
        if args.out:
            _print(
                f"Outputs written to {args.out} (as `pulumi stack output --json --show-secrets`)."
            )
        _print("", "Amplitude destination form:")
        _print(*_form_lines(outputs), "")
        _print("Proving the role:")
        _print(*(f"  {step.render()}" for step in steps))
        if args.endpoint_url:
            _print("", "To act as Amplitude against this server:")
            _print(*_env_lines(session.world, session.region, "amplitude", args.world_file))
            _print("", "To act as the customer (consume, inspect):")
            _print(*_env_lines(session.world, session.region, "customer_admin", args.world_file))
        else:
            _print(
                "",
                "(embedded moto: everything above is gone now; use `local serve` and "
                "--endpoint-url to keep it)",
            )
        return 0 if all(step.passed for step in steps) else 1

    return _stack_command(args, act)


def _interrupted(args: argparse.Namespace, session: _Session, exc: Interrupted) -> int:
    """An apply stopped by SIGINT or SIGTERM: what is left and how to finish; exit 130."""
    from sandbox.engine import render

    if args.json:
        _json_out(render.interrupted_json(exc, session.place.path))
    else:
        lines = render.render_interrupted(exc, session.place.path)
        print(*lines, sep="\n", file=sys.stderr, flush=True)
    return 130


def local_destroy(args: argparse.Namespace) -> int:
    """`local destroy`: delete what the state records, dependents first."""
    from sandbox import lifecycle
    from sandbox.engine import render
    from sandbox.engine.interrupts import Interrupted

    def act(session: _Session, started: int) -> int:

        def show_plan(outcome: Any) -> None:
            if not args.json:
                _print(_heading("Destroying", args.stack, session), "")
                _print(*render.render_steps(outcome), "")

        try:
            outcome = lifecycle.destroy(
                session.config, session.ctx, session.place, on_plan=show_plan
            )
        except Interrupted as exc:
            return _interrupted(args, session, exc)
        if args.json:
            _json_out(_digest(outcome, session, started))
        else:
            _print(render.render_destroyed(outcome))
        return 0

    return _stack_command(args, act)


def local_refresh(args: argparse.Namespace) -> int:
    """`local refresh`: read the resources back and report drift field by field."""
    from sandbox import lifecycle
    from sandbox.engine import render

    def act(session: _Session, started: int) -> int:
        drifts, _ = lifecycle.refresh(session.config, session.ctx, session.place)
        if args.json:
            _json_out({"steps": [], "changeSummary": {}, "drift": [d.to_json() for d in drifts]})
        else:
            _print(_heading("Refreshing", args.stack, session), "")
            _print(*render.render_drift(drifts))
        return 0

    return _stack_command(args, act)


def _served_world(world_file: Path, endpoint_url: str, region: str) -> Any:
    """The world `local serve` wrote, aimed at `endpoint_url`; a broken file is named."""
    from sandbox.world import MotoWorld

    fix = f"`cohort-sync local serve --world-file {world_file}` writes it"
    try:
        data = json.loads(world_file.read_text())
    except json.JSONDecodeError as exc:
        raise SyncError(f"--world-file {world_file}: not valid JSON ({exc}); {fix}") from exc
    try:
        return MotoWorld.from_json({**data, "endpoint_url": endpoint_url, "region": region})
    except (KeyError, TypeError) as exc:
        raise SyncError(f"--world-file {world_file}: missing {exc}; {fix}") from exc


def _form_lines(outputs: dict[str, Any]) -> list[str]:
    from provisioning import constants as c

    form = outputs[c.OUTPUT_DESTINATION]
    labels = {
        c.FORM_DISPLAY_NAME: "Display Name",
        c.FORM_STREAM_NAME: "Stream Name",
        c.FORM_AWS_REGION: "AWS Region",
        c.FORM_ROLE_ARN: "Role ARN",
    }
    return [f"  {label:<13}{form[key]}" for key, label in labels.items()]


def _env_lines(world: Any, region: str, who: str, world_file: Path) -> list[str]:
    """Shell lines that act as `who`; secrets are read from the 0600 world file, not printed."""
    credentials = getattr(world, who)

    def from_file(key: str) -> str:
        read = f"import json; print(json.load(open('{world_file}'))['{who}']['{key}'])"
        return f'"$({shlex.quote(sys.executable)} -c "{read}")"'

    lines = [
        f"  export AWS_ENDPOINT_URL={world.endpoint_url}",
        f"  export AWS_DEFAULT_REGION={region}",
        f"  export AWS_ACCESS_KEY_ID={credentials.access_key_id}",
        f"  export AWS_SECRET_ACCESS_KEY={from_file('secret_access_key')}",
    ]
    if credentials.session_token:
        lines.append(f"  export AWS_SESSION_TOKEN={from_file('session_token')}")
    return lines


def demo(args: argparse.Namespace) -> int:
    """`demo`: the product in one command on an embedded moto."""
    from sandbox.demo import run_demo

    return run_demo(args.workdir)
