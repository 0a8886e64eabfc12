"""What every resource handler shares: its protocol, where it acts, and the codes for "gone".

A leaf: it imports nothing of the engine, so the handler modules and the registry that lists them
(`registry.py`) all import it and never each other's internals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.exceptions import ClientError

from sandbox.errors import ApplyError

State = dict[str, Any]


@dataclass(frozen=True)
class AwsContext:
    """Where handlers act: a session, its region and endpoint, and how long streams may take."""

    session: boto3.Session
    region: str
    endpoint_url: str | None = None
    stream_wait_seconds: float = 300.0
    # One client per service and region for the context's life, as the provider keeps one per
    # service: creating a botocore client costs ~20 ms of CPU, which was a sixth of the suite's.
    _clients: dict[tuple[str, str], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _clients_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def client(self, service: str, region: str | None = None) -> Any:
        """The boto3 client for `service` in this context (made once; clients are thread-safe,
        a session creating them is not)."""
        key = (service, region or self.region)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    service, region_name=key[1], endpoint_url=self.endpoint_url
                )
            return self._clients[key]

    def wait(self, what: str, done: Any) -> None:
        """Poll `done()` every second until true, or fail after stream_wait_seconds."""
        deadline = time.monotonic() + self.stream_wait_seconds
        while not done():
            if time.monotonic() > deadline:
                raise ApplyError(f"{what}: still not done after {self.stream_wait_seconds:.0f} s")
            time.sleep(1.0)


@dataclass(frozen=True)
class Live:
    """A resource as AWS holds it: its ID, its outputs and the inputs that would declare it."""

    id: str
    outputs: State
    inputs: State


class ResourceHandler(Protocol):
    """The provider's CRUD for one type, against whatever AWS the context points at."""

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """Create the resource; its ID and outputs."""
        ...

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """Read it back by ID (None: it no longer exists)."""
        ...

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """Read an existing resource by its Pulumi import ID (None: no such resource)."""
        ...

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """Change it in place from `old` inputs to `new`; its new outputs."""
        ...

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """Delete it; already gone is success."""
        ...

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """If a resource this create would collide with exists (a fixed name in use), name it."""
        ...

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """The outputs a create would give, for a preview (unknowns as placeholders)."""
        ...


# The error codes AWS answers for a resource that does not exist (deleting one is success;
# reading one means it was deleted outside the engine).
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchEntityException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def is_not_found(exc: ClientError) -> bool:
    """Whether AWS answered that the resource does not exist."""
    return exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def tags_change(
    old: Mapping[str, str] | None, new: Mapping[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    """Tags to set and tag keys to remove, going from `old` to `new`."""
    old, new = dict(old or {}), dict(new or {})
    upsert = {k: v for k, v in new.items() if old.get(k) != v}
    removed = sorted(set(old) - set(new))
    return upsert, removed
