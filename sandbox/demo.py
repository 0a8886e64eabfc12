"""`make demo`: the whole product on an embedded moto — provision, prove, push, consume, compare."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import boto3

import sync
from provisioning import constants as c
from provisioning.archive import project_entries, write_archive
from sandbox.engine import consumer_resources
from sandbox.engine.render import render_plan
from sandbox.engine.runner import PROGRAM_DIR
from sandbox.engine.stack import StackConfig, apply, preview
from sandbox.lambda_mapping import MappingSimulator
from sandbox.proof import prove_consumer, prove_destination
from sandbox.world import MotoWorld, moto_world
from sync import membership_items
from sync.consumer import Consumer
from sync.credentials import assume_role_session
from sync.destination import load_destination
from sync.membership_store import MembershipStore, members
from sync.preflight import preflight
from sync.push import PushRequest, run_push

# The checkout's examples/, or the copies a wheel ships beside the program (sandbox/project).
EXAMPLES = PROGRAM_DIR / "examples"
# Where the product's packages (sync/, provisioning/) live: the checkout, or site-packages.
CODE_ROOT = Path(sync.__file__).resolve().parents[1]
REGION = "us-east-1"
COHORT_ID = "gs72ns"
COHORT_NAME = "Test Cohort"
DAY_SECONDS = 86_400


def _heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)), flush=True)


def _snapshot_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            row.pop("user_id"): {k: v for k, v in row.items() if v}
            for row in csv.DictReader(handle)
        }


def _dynamodb_members(world: MotoWorld, table: str) -> dict[str, dict[str, str]]:
    """Cohort members as the Lambda consumer recorded them (exited users are kept, not members)."""
    dynamodb = world.client("dynamodb", world.customer_admin)
    return {
        member.user_id: dict(member.user_properties or {})
        for member in membership_items.members(dynamodb, table, COHORT_ID)
    }


def run_demo(workdir: Path, examples: Path = EXAMPLES) -> int:
    """Run every step and print what it did; 0 when the consumed membership equals day 2."""
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("state.duckdb", "state.duckdb.wal", "consumer.sqlite"):
        (workdir / stale).unlink(missing_ok=True)
    # The demo's function archive holds this project's code only (no network for its
    # dependencies); the simulated mapping runs the same handler in-process.
    # `make lambda-archive` builds the deployable one.
    archive = workdir / "lambda-demo.zip"
    write_archive(project_entries(CODE_ROOT), archive)
    config = StackConfig(
        stack="demo", values={c.CONFIG_CONSUMER: "lambda", c.CONFIG_CONSUMER_ARCHIVE: str(archive)}
    )

    with moto_world(REGION) as world:
        _heading("1. pulumi preview (the unmodified program, Pulumi's mock runtime)")
        print(render_plan(preview(config, region=REGION)))

        _heading("2. pulumi up (applied to an embedded moto, IAM enforced)")
        applied = apply(config, session=world.customer_admin.session(REGION), region=REGION)
        outputs = applied.outputs
        destination_file = workdir / "destination.json"
        destination_file.write_text(json.dumps(outputs, indent=2) + "\n")
        print(f"{len(applied.resources)} resources created; outputs in {destination_file}")
        print("Amplitude destination form:")
        for key, value in outputs[c.OUTPUT_DESTINATION].items():
            print(f"  {key:<13} {value}")

        _heading("3. the role at work")
        steps = prove_destination(world, outputs)
        for step in steps:
            print(f"  {step.render()}")

        _heading("4. preflight, as Amplitude checks the role")
        destination = load_destination(destination_file)

        def connect() -> boto3.Session:
            return assume_role_session(
                world.amplitude.session(REGION),
                destination.role_arn,
                session_name="amplitude-cohort-sync",
                region=REGION,
            )

        report = preflight(connect(), destination)
        print(report.render())

        reports = []
        now = int(time.time())
        for day, name in enumerate(("day1.csv", "day2.csv"), start=1):
            _heading(f"5.{day} push {name}")
            request = PushRequest(
                destination=destination,
                snapshot=examples / name,
                cohort_id=COHORT_ID,
                cohort_name=COHORT_NAME,
                state=workdir / "state.duckdb",
                computed_time=str(now - (2 - day) * DAY_SECONDS),
            )
            result = run_push(request, connect=connect)
            reports.append(result)
            print(result.render())

        _heading("6. consume the stream (the customer's own credentials)")
        kinesis = world.client("kinesis", world.customer_admin)
        with MembershipStore(workdir / "consumer.sqlite") as store:
            consumed = Consumer(kinesis, destination.stream_arn, store, from_start=True).consume(
                until_idle=True
            )
            print(consumed.render())
            got = {m.user_id: dict(m.user_properties or {}) for m in members(store, COHORT_ID)}

        _heading("7. the Lambda consumer (simulated event source mapping, the function's role)")
        (mapping,) = applied.of_type(consumer_resources.MAPPING)
        assert mapping.id is not None
        simulator = MappingSimulator(world, mapping.id)
        lambda_steps = prove_consumer(world, outputs, simulator.function["Role"])
        for step in lambda_steps:
            print(f"  {step.render()}")
        print(simulator.poll().render())
        from_lambda = _dynamodb_members(world, outputs[c.OUTPUT_MEMBERSHIP_TABLE])
        print(
            f"  {len(from_lambda)} members in DynamoDB table {outputs[c.OUTPUT_MEMBERSHIP_TABLE]}"
        )

    _heading(f"8. cohort {COHORT_ID} membership vs the day-2 snapshot")
    want = _snapshot_rows(examples / "day2.csv")
    for user_id in sorted(set(got) | set(want)):
        mark = "=" if got.get(user_id) == want.get(user_id) == from_lambda.get(user_id) else "≠"
        print(f"  {mark} {user_id:<24} consumed {got.get(user_id)!s:<48} day 2 {want.get(user_id)}")
    lambda_match = from_lambda == want
    print(f"  Lambda consumer (DynamoDB): {'MATCH' if lambda_match else 'MISMATCH'}")
    ok = got == want and lambda_match and all(s.passed for s in steps + lambda_steps) and report.ok
    ok = ok and all(r.ok for r in reports)
    verdict = "MATCH" if got == want and lambda_match else "MISMATCH"
    print(
        f"\nverdict: {verdict} — {len(got)} members consumed, {len(want)} in the day-2 snapshot; "
        f"{'everything passed' if ok else 'something failed above'} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0 if ok else 1
