"""`make demo` is the product in one command: its verdict is the end-to-end test of the loop."""

import re
from pathlib import Path

import pytest

from sandbox.demo import run_demo

pytestmark = [pytest.mark.e2e]


def test_demo_consumes_exactly_the_day_two_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_demo(tmp_path)

    out = capsys.readouterr().out
    assert status == 0, out
    assert "verdict: MATCH — 7 members consumed, 7 in the day-2 snapshot; everything passed" in out
    assert not re.search(r"\bFAIL\b", out)  # a FAILURE_QUEUE_URL in the plan is no failure
    # the Lambda consumer, deployed by the same program, reached the same membership in DynamoDB
    assert "  7 members in DynamoDB table amplitude-cohorts-consumer-membership" in out
    assert "  Lambda consumer (DynamoDB): MATCH" in out
    # day 2 entered three users and removed two
    assert "  entered                      3\n  exited                       2" in out
