"""The stack lock: one holder at a time, refusals name the holder and the fix, stale locks too."""

import json
import os
from pathlib import Path

import pytest

from sandbox.engine.lock import StackLocked, lock_path, stack_locked

pytestmark = pytest.mark.unit


def test_the_lock_names_its_holder_and_goes_with_the_block(tmp_path: Path) -> None:
    state = tmp_path / "stacks" / "dev.json"

    with stack_locked(state, "cohort-sync local up --stack dev") as holder:
        recorded = json.loads(lock_path(state).read_text())
        assert recorded["pid"] == os.getpid() == holder.pid
        assert recorded["command"] == "cohort-sync local up --stack dev"
        assert set(recorded) == {"pid", "username", "hostname", "timestamp", "command"}

    assert not lock_path(state).exists()
    assert lock_path(state) == tmp_path / "stacks" / "dev.lock"


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    state = tmp_path / "dev.json"

    with stack_locked(state, "cohort-sync local up --stack dev"):
        with (
            pytest.raises(StackLocked) as refused,
            stack_locked(state, "cohort-sync local destroy --stack dev"),
        ):
            pytest.fail("two holders")  # pragma: no cover
        # the refused one leaves the holder's lock alone
        assert lock_path(state).exists()

    message = str(refused.value)
    assert message.startswith(f"stack lock {lock_path(state)}: the stack is locked by ")
    assert "`cohort-sync local up --stack dev` by " in message
    assert f"(pid {os.getpid()})" in message
    assert "Wait for it to end and run again; if that process is gone" in message


def test_the_lock_is_released_when_the_block_fails(tmp_path: Path) -> None:
    state = tmp_path / "dev.json"

    with pytest.raises(RuntimeError), stack_locked(state, "cohort-sync local up --stack dev"):
        raise RuntimeError("apply failed")

    assert not lock_path(state).exists()


def _a_pid_nobody_runs() -> int:
    for pid in range(4_000_000, 4_100_000):  # above what this host has handed out
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid found")  # pragma: no cover


def test_a_stale_lock_is_refused_as_stale_with_the_fix(tmp_path: Path) -> None:
    # GIVEN a lock left by a process of this host that has ended (killed before it could unlock)
    state = tmp_path / "dev.json"
    dead_pid = _a_pid_nobody_runs()
    with stack_locked(state, "cohort-sync local up --stack dev"):
        left = json.loads(lock_path(state).read_text())
    lock_path(state).write_text(json.dumps({**left, "pid": dead_pid}))

    # WHEN another run wants the stack
    with (
        pytest.raises(StackLocked) as refused,
        stack_locked(state, "cohort-sync local up --stack dev"),
    ):
        pytest.fail("took a stale lock over")  # pragma: no cover

    # THEN it is refused, the lock named stale, and the fix given; the file stays
    assert str(refused.value) == (
        f"stack lock {lock_path(state)}: stale lock left by `cohort-sync local up --stack dev` "
        f"by {left['username']}@{left['hostname']} (pid {dead_pid}) at {left['timestamp']}, "
        f"which is no longer running. Delete {lock_path(state)}, then run again "
        "(`cohort-sync local refresh` first shows what it left half done)"
    )
    assert lock_path(state).exists()
