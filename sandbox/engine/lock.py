"""A stack's lock while `local up|destroy|refresh` changes it, as Pulumi's self-managed backend.

Pulumi's diy backend (pkg/backend/diy/lock.go in pulumi/pulumi) writes a lock file per operation
holding `pid`, `username`, `hostname` and `timestamp`, and refuses an update while another lock
exists: "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end
or delete the lock file with `pulumi cancel`", each lock named as `<file>: created by user@host
(pid N) at <time>`. Here the lock is `<state dir>/<stack>.lock`, created with O_EXCL so exactly one
of any number of racing processes gets it, and also records the command that holds it. A lock
whose process no longer runs on this host is stale: it is reported as such, never taken over
silently (the interrupted run may have left work half done; `local refresh` shows it).
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sandbox.errors import SandboxError


class StackLocked(SandboxError):
    """Another `local` command holds the stack's lock (or left a stale one)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds a stack's lock: Pulumi's lock content plus the command."""

    pid: int
    username: str
    hostname: str
    timestamp: str
    command: str

    @classmethod
    def here(cls, command: str) -> LockHolder:
        """This process, now."""
        return cls(
            pid=os.getpid(),
            username=getpass.getuser(),
            hostname=socket.gethostname(),
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
            command=command,
        )

    def is_alive(self) -> bool:
        """False only when the holder ran on this host and its process is gone."""
        if self.hostname != socket.gethostname():
            return True  # cannot tell from here
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's live process
        return True


def lock_path(state_path: Path) -> Path:
    """`<state dir>/<stack>.lock` beside `<stack>.json`."""
    return state_path.with_suffix(".lock")


@contextmanager
def stack_locked(state_path: Path, command: str) -> Iterator[LockHolder]:
    """Hold the stack's lock for the block; refuse, naming the holder, if another holds it."""
    path = lock_path(state_path)
    made_directory = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = LockHolder.here(command)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        raise _refusal(path) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(holder), handle)
    try:
        yield holder
    finally:
        path.unlink(missing_ok=True)
        if made_directory:
            # A run that wrote no state (refused config, a plan refused) leaves no stacks/ behind.
            with contextlib.suppress(OSError):  # not empty: the state file is there
                path.parent.rmdir()


def _refusal(path: Path) -> StackLocked:
    try:
        holder = LockHolder(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        # Being written this instant, or damaged: either way another run claimed the stack.
        return StackLocked(
            f"stack lock {path}: the stack is locked by another run (its lock file is not "
            f"readable yet: {exc}). Wait for it to end; if no `cohort-sync local` command is "
            f"running, delete {path} and run again"
        )
    who = (
        f"`{holder.command}` by {holder.username}@{holder.hostname} (pid {holder.pid}) "
        f"at {holder.timestamp}"
    )
    if holder.is_alive():
        return StackLocked(
            f"stack lock {path}: the stack is locked by {who}. Wait for it to end and run again; "
            f"if that process is gone (another host, a container), delete {path}"
        )
    return StackLocked(
        f"stack lock {path}: stale lock left by {who}, which is no longer running. Delete "
        f"{path}, then run again (`cohort-sync local refresh` first shows what it left half "
        "done)"
    )
