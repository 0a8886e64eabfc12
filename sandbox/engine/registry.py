"""The per-type resource handlers of the local engines, keyed by Pulumi type token.

A handler makes the AWS calls the provider makes to create, read, update and delete one type.
Resource modules register theirs with `register`; the engines look them up here and refuse any
type nobody registered.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import boto3

from sandbox.errors import ApplyError, UnsupportedResourceError

State = dict[str, Any]


@dataclass(frozen=True)
class AwsContext:
    """Where handlers act: a session, its region and endpoint, and how long streams may take."""

    session: boto3.Session
    region: str
    endpoint_url: str | None = None
    stream_wait_seconds: float = 300.0

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for `service` in this context."""
        return self.session.client(
            service, region_name=region or self.region, endpoint_url=self.endpoint_url
        )

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


HANDLERS: dict[str, ResourceHandler] = {}


def register(token: str, handler: ResourceHandler) -> None:
    """Make `handler` the engines' CRUD for resources of type `token`."""
    HANDLERS[token] = handler


def handler_for(token: str, logical_name: str) -> ResourceHandler:
    """The handler for `token`; an unregistered type is an error, never skipped."""
    _load_builtin_handlers()
    handler = HANDLERS.get(token)
    if handler is None:
        raise UnsupportedResourceError(
            f"resource type {token!r} (resource {logical_name!r}): the local apply engine "
            f"creates only {', '.join(sorted(HANDLERS))}"
        )
    return handler


def known_types() -> list[str]:
    """Every type token with a registered handler."""
    _load_builtin_handlers()
    return sorted(HANDLERS)


def _load_builtin_handlers() -> None:
    # The destination's own four types and the Lambda consumer's register on import.
    import sandbox.engine.consumer_handlers
    import sandbox.engine.resources  # noqa: F401


def tags_change(
    old: Mapping[str, str] | None, new: Mapping[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    """Tags to set and tag keys to remove, going from `old` to `new`."""
    old, new = dict(old or {}), dict(new or {})
    upsert = {k: v for k, v in new.items() if old.get(k) != v}
    removed = sorted(set(old) - set(new))
    return upsert, removed
