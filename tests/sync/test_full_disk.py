"""A disk that fills up mid-push: a clean message, nothing lost, and the next run resumes.

The disk fills (RLIMIT_FSIZE drops to 0, SIGXFSZ ignored, so writes fail with EFBIG as on a
full disk) at one of four points of a push, in a child process: staging the records, the
commit that makes them pending, the ack, the closing checkpoint. The next run, with room
again, must deliver every user. The fake Kinesis prints what it accepted, so both runs'
deliveries are counted.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import sync.commands
import sync.destination
from sync.cli import main
from sync.contract import CohortMessage, User
from sync.errors import StorageError
from sync.membership_store import MembershipStore, ValidRecord
from sync.outbox import Outbox
from sync.staging import Staging
from sync.state import StateStore
from tests.sync.test_state_files import DESTINATION

pytestmark = pytest.mark.integration

USERS = 3_000
# Where the disk fills: the method that runs first with no room left.
POINTS: dict[str, tuple[type, str]] = {
    "staging": (Outbox, "add"),
    "commit": (Staging, "_commit_stage"),
    "ack": (Outbox, "ack"),
    "checkpoint": (StateStore, "checkpoint"),
}


class Kinesis:
    """Accepts every record and prints each user it carried: `SENT <in_cohort> <user_id>`."""

    def put_records(self, **request: Any) -> dict[str, Any]:
        for record in request["Records"]:
            message = json.loads(record["Data"])
            for user in message["users"]:
                print(f"SENT {message['in_cohort']} {user['user_id']}", flush=True)
        return {
            "FailedRecordCount": 0,
            "Records": [{"SequenceNumber": "1", "ShardId": "s-0"} for _ in request["Records"]],
        }


class Session:
    def client(self, *args: Any, **kwargs: Any) -> Kinesis:
        return Kinesis()


def push(state: Path, snapshot: Path) -> int:
    """`cohort-sync push` with the fake destination and Kinesis."""
    argv = ["push", "--destination", "unused.json", "--cohort-id", "gs72ns"]
    argv += ["--cohort-name", "Power users", "--state", str(state), "--skip-preflight"]
    argv += ["--max-users-per-message", "100", str(snapshot)]
    with (
        mock.patch.object(sync.destination, "load_destination", lambda path: DESTINATION),
        mock.patch.object(sync.commands, "_assumed", lambda *a, **kw: Session()),
    ):
        return main(argv)


def fill_disk_at(point: str) -> None:
    """From the first call of the point's method on, no file may grow (EFBIG)."""
    owner, name = POINTS[point]
    real: Callable[..., Any] = getattr(owner, name)

    def full(*args: Any, **kwargs: Any) -> Any:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return real(*args, **kwargs)

    setattr(owner, name, full)


def child(point: str, state: str, snapshot: str) -> int:
    """The child process: fill the disk at `point`, then push."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    fill_disk_at(point)
    return push(Path(state), Path(snapshot))


@dataclass(frozen=True)
class Run:
    code: int
    sent: set[str]
    err: str


def in_child(call: str) -> subprocess.CompletedProcess[str]:
    """Run `call` (a function of this module) in a fresh interpreter; its result is the exit."""
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parents[1])!r}]; "
        f"import test_full_disk as t; sys.exit(t.{call})"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def run_child(point: str, state: Path, snapshot: Path) -> Run:
    done = in_child(f"child({point!r}, {str(state)!r}, {str(snapshot)!r})")
    return Run(done.returncode, sent_users(done.stdout), done.stderr)


def sent_users(out: str) -> set[str]:
    return {line.split()[2] for line in out.splitlines() if line.startswith("SENT True ")}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("full-disk") / "cohort.csv"
    path.write_text("user_id,plan\n" + "".join(f"u{i:05d},p{i % 3}\n" for i in range(USERS)))
    return path


@pytest.mark.parametrize(
    ("point", "code", "words"),
    [
        ("staging", 2, "nothing was staged or sent"),
        ("commit", 2, "nothing was staged or sent"),
        ("ack", 1, "after the sync was staged"),
        ("checkpoint", 1, "after the sync was staged"),
    ],
)
def test_a_full_disk_ends_cleanly_and_the_next_run_delivers_everyone(
    tmp_path: Path,
    snapshot: Path,
    capsys: pytest.CaptureFixture[str],
    point: str,
    code: int,
    words: str,
) -> None:
    state = tmp_path / "state.duckdb"

    # WHEN the disk fills at this point of a push
    full = run_child(point, state, snapshot)

    # THEN one clean message with its fix, no traceback, and the exit code says what is left
    assert "Traceback" not in full.err, full.err
    lines = full.err.splitlines()
    assert len(lines) == 2, full.err
    assert lines[0].startswith(f"cohort-sync: error: publisher state {state}: the disk refused")
    assert words in lines[0]
    assert lines[1].startswith(f"cohort-sync: fix: free space on the disk holding {state}")
    assert full.code == code

    # WHEN there is room again, the next run resumes: every user was delivered by one of them
    capsys.readouterr()
    assert push(state, snapshot) == 0
    again = sent_users(capsys.readouterr().out)
    everyone = {f"u{i:05d}" for i in range(USERS)}
    assert full.sent | again == everyone
    if code == 1:  # the disk filled after the records went out: the first run sent them all
        assert full.sent == everyone
    with StateStore(state, read_only=True) as store:
        assert store.summary().outbox.pending == 0


# --- the consumer's SQLite file ------------------------------------------------------------


def consumer_page() -> list[ValidRecord]:
    """One page of one message: 2,000 entering users with a property each."""
    users = tuple(User(f"u{i:05d}", {"plan": "x" * 50}) for i in range(2000))
    message = CohortMessage("C", "c1", True, "1700000000", "m:0", users)
    return [ValidRecord("1", message)]


def consumer_child(state: str) -> int:
    """The child process: apply a page when no file may grow; print the refusal."""
    store = MembershipStore(state)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        store.apply_page("s", "shard-0", consumer_page())
    except StorageError as refused:
        print(refused, refused.fix, refused.exit_code, sep="|")
        return 3
    return 0


def test_a_full_disk_under_the_consumer_rolls_the_page_back_and_the_next_run_applies_it(
    tmp_path: Path,
) -> None:
    # GIVEN a consumer state, and a page of 2,000 users applied when no file may grow
    state = tmp_path / "consumer.sqlite"
    MembershipStore(state).close()
    done = in_child(f"consumer_child({str(state)!r})")

    # THEN a StorageError naming the file and the fix (before: sqlite3.OperationalError)
    assert done.returncode == 3, done.stderr
    message, fix, exit_code = done.stdout.strip().split("|")
    assert message.startswith(f"consumer state {state}: the disk refused a write")
    assert "rolled back together" in message and "consume` again" in fix and exit_code == "1"
    # AND nothing was applied or checkpointed; with room again the same page applies
    with MembershipStore(state) as store:
        assert store.checkpoints("s") == {}
        assert store.apply_page("s", "shard-0", consumer_page()).applied == 1
        assert store.checkpoints("s")["shard-0"].sequence_number == "1"
