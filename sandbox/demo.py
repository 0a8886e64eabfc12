"""`make demo`: the whole product on an embedded moto — provision, prove, push, consume, compare."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import boto3

from provisioning import constants as c
from sandbox.engine.plan import render_plan
from sandbox.engine.stack import StackConfig, apply, preview
from sandbox.proof import prove_destination
from sandbox.world import moto_world
from sync.consumer import Consumer
from sync.credentials import assume_role_session
from sync.destination import load_destination
from sync.membership_store import MembershipStore, members
from sync.preflight import preflight
from sync.push import PushRequest, run_push

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
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


def run_demo(workdir: Path, examples: Path = EXAMPLES) -> int:
    """Run every step and print what it did; 0 when the consumed membership equals day 2."""
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("state.duckdb", "state.duckdb.wal", "consumer.sqlite"):
        (workdir / stale).unlink(missing_ok=True)
    config = StackConfig(stack="demo")

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

    _heading(f"7. cohort {COHORT_ID} membership vs the day-2 snapshot")
    want = _snapshot_rows(examples / "day2.csv")
    for user_id in sorted(set(got) | set(want)):
        mark = "=" if got.get(user_id) == want.get(user_id) else "≠"
        print(f"  {mark} {user_id:<24} consumed {got.get(user_id)!s:<48} day 2 {want.get(user_id)}")
    ok = got == want and all(s.passed for s in steps) and report.ok
    ok = ok and all(r.ok for r in reports)
    verdict = "MATCH" if got == want else "MISMATCH"
    print(
        f"\nverdict: {verdict} — {len(got)} members consumed, {len(want)} in the day-2 snapshot; "
        f"{'everything passed' if ok else 'something failed above'} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0 if ok else 1
