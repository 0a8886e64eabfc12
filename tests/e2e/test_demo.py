"""`make demo` is the product in one command: run through `cohort-sync demo`, its result is checked
from what it left behind, not from the verdict it prints."""

import csv
import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

import sandbox.demo
from sync.cli import main
from sync.membership_store import MembershipStore

pytestmark = [pytest.mark.e2e]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def snapshot(name: str) -> dict[str, dict[str, str]]:
    with (EXAMPLES / name).open(newline="", encoding="utf-8") as handle:
        return {row.pop("user_id"): row for row in csv.DictReader(handle)}


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_cohort_sync_demo_leaves_the_day_two_membership_in_the_consumers_state(
    tmp_path: Path,
) -> None:
    # WHEN `cohort-sync demo` runs, as `make demo` does
    code, printed = cli("demo", "--workdir", str(tmp_path))

    # THEN it succeeds, and the consumer's state, read back with `cohort-sync members`, holds
    # exactly the day-2 snapshot's users and properties
    assert code == 0, printed
    state = tmp_path / "consumer.sqlite"
    code, listed = cli(
        "members", "--state", str(state), "--cohort-id", "gs72ns", "--format", "jsonl"
    )
    assert code == 0
    got = {
        line["user_id"]: line["user_properties"] for line in map(json.loads, listed.splitlines())
    }
    assert got == snapshot("day2.csv")
    # and the users day 2 dropped are recorded as exited, not merely absent
    with MembershipStore(state) as store:
        exited = {user for (_, user), s in store.states().items() if not s.in_cohort}
    assert exited == set(snapshot("day1.csv")) - set(snapshot("day2.csv")) != set()
    outputs = json.loads((tmp_path / "destination.json").read_text())
    assert outputs["destination"]["stream_name"] == outputs["streamName"]
    # the Lambda consumer, deployed by the same program, reached the same membership
    assert "Lambda consumer (DynamoDB): MATCH" in printed


def test_the_demo_fails_when_the_consumed_membership_is_not_day_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delivery that silently skips the day-2 push
    real_push = sandbox.demo.run_push
    pushed: list[Any] = []

    def day_one_only(request: Any, **kwargs: Any) -> Any:
        if request.snapshot.name == "day2.csv":
            return pushed[0]
        pushed.append(real_push(request, **kwargs))
        return pushed[0]

    monkeypatch.setattr(sandbox.demo, "run_push", day_one_only)

    # WHEN the demo runs, THEN it says so and exits 1
    code, printed = cli("demo", "--workdir", str(tmp_path))

    assert code == 1
    assert "verdict: MISMATCH" in printed
