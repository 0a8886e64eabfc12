"""`cohort-sync state`: the publisher state's size, cohorts, last syncs and pending outbox."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sync.cli import main
from sync.messages import build_messages
from sync.state import StateStore

pytestmark = pytest.mark.unit

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"


def staged_state(path: Path, tmp_path: Path) -> None:
    """A state with one cohort of three users: two records staged, the first acknowledged."""
    snapshot = tmp_path / "s.jsonl"
    snapshot.write_text("".join(f'{{"user_id": "u{i}"}}\n' for i in range(3)), encoding="utf-8")
    with StateStore(path, threads=1) as store:
        store.bind("gs72ns", "Power users", STREAM)
        store.staging.load_snapshot(snapshot)
        store.staging.stage(
            cohort_id="gs72ns",
            cohort_name="Power users",
            computed_time="1700000000",
            sync_id="sync-1",
            build=lambda in_cohort, users, first: build_messages(
                cohort_id="gs72ns",
                cohort_name="Power users",
                in_cohort=in_cohort,
                computed_time="1700000000",
                sync_id="sync-1",
                first_sequence=first,
                users=users,
                max_users_per_message=2,
            ),
        )
        store.outbox.ack(["sync-1:0"])


def test_state_prints_size_cohorts_last_sync_and_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.duckdb"
    staged_state(state, tmp_path)
    before = hashlib.sha256(state.read_bytes()).hexdigest()

    assert main(["state", "--state", str(state), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    assert summary["file_bytes"] == state.stat().st_size + (
        (tmp_path / "state.duckdb.wal").stat().st_size
        if (tmp_path / "state.duckdb.wal").exists()
        else 0
    )
    assert summary["syncs"] == 1
    assert summary["outbox"] == {"pending": 1, "failing": 0, "pending_users": 1, "max_tries": 0}
    (cohort,) = summary["cohorts"]
    assert (cohort["cohort_id"], cohort["cohort_name"], cohort["members"]) == (
        "gs72ns",
        "Power users",
        3,
    )
    last = cohort["last_sync"]
    assert (last["sync_id"], last["computed_time"], last["status"]) == (
        "sync-1",
        "1700000000",
        "staged",
    )
    assert (last["entering"], last["exiting"], last["messages"]) == (3, 0, 2)

    assert main(["state", "--state", str(state)]) == 0
    text = capsys.readouterr().out
    assert "pending outbox    1 record(s), 1 user(s)" in text
    assert "cohort gs72ns ('Power users')" in text
    assert "last sync  sync-1 computed_time 1700000000" in text
    # Read-only: printing the state changes nothing in it
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("as_json", [False, True])
def test_state_of_a_missing_file_exits_2_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    missing = tmp_path / "nope.duckdb"
    assert main(["state", "--state", str(missing), *(["--json"] if as_json else [])]) == 2
    captured = capsys.readouterr()
    if as_json:
        error = json.loads(captured.out)
        assert error["error"] == (
            f"--state {missing}: no such publisher state file; `push` creates it"
        )
        assert "--state" in error["fix"]
    else:
        assert f"--state {missing}: no such publisher state file" in captured.err
    assert not missing.exists()
