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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioning.errors import ProvisioningError
from sandbox.engine import DEFAULT_STACK
from sync.cli import endpoint_argument as _endpoint
from sync.commands import print_lines as _print
from sync.commands import write_private as _write_private
from sync.errors import SyncError

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
    """Add `local serve|up` and `demo` to cohort-sync's subcommands."""
    local = sub.add_parser("local", help="run the stack on a local moto (no AWS account)")
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
        description="Print the plan, create every resource the program declares, write the "
        "outputs file, print Amplitude's destination form, and prove the role: Amplitude's "
        "principal assumes it and writes a record, a stranger is refused. Without "
        "--endpoint-url the moto is embedded and gone when the command ends.",
    )
    up_parser.add_argument(
        "--stack",
        default=DEFAULT_STACK,
        help=f"stack name: reads Pulumi.<stack>.yaml, which must exist (default {DEFAULT_STACK})",
    )
    up_parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the Pulumi project: its Pulumi.yaml, stack files and __main__.py "
        "(default: this project's own program)",
    )
    up_parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a stack config value (repeatable); secrets the stack file "
        "holds encrypted must be given here or as $COHORT_SECRET_<key>",
    )
    up_parser.add_argument(
        "--region", help="AWS region (default: the stack's aws:region, else us-east-1)"
    )
    up_parser.add_argument(
        "--world-file",
        type=Path,
        default=DEFAULT_WORLD_FILE,
        help="with --endpoint-url: the world file `local serve` wrote",
    )
    up_parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the outputs (as `pulumi stack output --json --show-secrets`) here",
    )
    _endpoint(up_parser, otherwise="an embedded moto, gone when the command ends")
    up_parser.set_defaults(handler=_refusals(local_up))

    demo_parser = sub.add_parser(
        "demo",
        help="the whole product on an embedded moto: provision, push two days, consume",
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


def local_up(args: argparse.Namespace) -> int:
    """`local up`: plan, apply to moto, write outputs, show the form and prove the role."""
    from sandbox.engine.plan import render_outputs, render_plan
    from sandbox.engine.runner import PROGRAM_DIR
    from sandbox.engine.stack import apply as apply_stack
    from sandbox.engine.stack import load_stack_config, parse_overrides, preview
    from sandbox.proof import prove_destination
    from sandbox.world import MotoWorld, moto_world

    config = load_stack_config(
        args.stack,
        project_dir=args.project_dir or PROGRAM_DIR,
        overrides=parse_overrides(args.config),
    )
    region = args.region or config.region or "us-east-1"
    # Like every command here, boto3's AWS_ENDPOINT_URL stands in for --endpoint-url.
    args.endpoint_url = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    _print(f"Previewing stack {args.stack!r} in {region}:", "")
    _print(render_plan(preview(config, region=region)), "")

    @contextmanager
    def world_for_run() -> Iterator[MotoWorld]:
        if args.endpoint_url:
            if not args.world_file.exists():
                raise SyncError(
                    f"--world-file {args.world_file}: not found; `cohort-sync local serve "
                    f"--world-file {args.world_file}` writes it for the server at "
                    f"{args.endpoint_url}"
                )
            yield _served_world(args.world_file, args.endpoint_url, region)
        else:
            with moto_world(region) as embedded:
                yield embedded

    with world_for_run() as world:
        session = world.customer_admin.session(region)
        applied = apply_stack(
            config, session=session, region=region, endpoint_url=args.endpoint_url
        )
        _print(f"Applied: {len(applied.resources)} resources created.", "", "Outputs:")
        _print(render_outputs(applied.outputs, applied.secret_outputs), "")
        if args.out:
            _write_private(args.out, applied.outputs)
            _print(
                f"Outputs written to {args.out} (as `pulumi stack output --json --show-secrets`)."
            )
        _print("", "Amplitude destination form:")
        _print(*_form_lines(applied.outputs), "")
        _print("Proving the role:")
        steps = prove_destination(world, applied.outputs)
        _print(*(f"  {step.render()}" for step in steps))
        if args.endpoint_url:
            _print("", "To act as Amplitude against this server:")
            _print(*_env_lines(world, region, "amplitude", args.world_file))
            _print("", "To act as the customer (consume, inspect):")
            _print(*_env_lines(world, region, "customer_admin", args.world_file))
        else:
            _print(
                "",
                "(embedded moto: everything above is gone now; use `local serve` and "
                "--endpoint-url to keep it)",
            )
    return 0 if all(step.passed for step in steps) else 1


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
