"""SIGINT and SIGTERM during an apply: stop after the resources under way, as `pulumi up` does.

On the first signal Pulumi's engine stops starting new steps, lets the ones in flight finish and
saves the checkpoint; a second one ends it at once. Here the first SIGINT or SIGTERM sets a flag
the engine reads before each step that would change AWS (it then raises `Interrupted`); the
previous handlers are put back at that moment, so a second signal acts as it did before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sandbox.errors import SandboxError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(SandboxError):
    """A signal stopped an apply between steps; what was done is recorded."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"{signal_name} received")
        self.signal_name = signal_name
        self.command = "up"  # what to run again to finish: `up` or `destroy`
        self.done: list[tuple[str, str]] = []  # (op, urn) of the steps taken before it
        self.left: list[tuple[str, str, str]] = []  # (op, type, urn) planned and not taken


class Interruption:
    """Whether a signal arrived, and which; `check()` raises once it has."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

    def arrived(self, signal_name: str) -> None:
        """Record the signal (the first one wins)."""
        if not self._event.is_set():
            self.signal_name = signal_name
            self._event.set()

    def is_set(self) -> bool:
        """Whether a signal arrived."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise Interrupted if a signal arrived: called before every step that changes AWS."""
        if self._event.is_set():
            raise Interrupted(self.signal_name)


@contextmanager
def interrupts_deferred() -> Iterator[Interruption]:
    """SIGINT/SIGTERM only mark the Interruption for the block (main thread; elsewhere, no-op)."""
    interruption = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interruption
        return
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, frame: FrameType | None) -> None:
        interruption.arrived(signal.Signals(signum).name)
        restore()  # a second signal acts as before: Ctrl-C twice stops at once

    for sig in _SIGNALS:
        signal.signal(sig, handle)
    try:
        yield interruption
    finally:
        restore()
