"""The resource handlers of the local engine, keyed by Pulumi type token: an explicit table.

A handler makes the AWS calls the provider makes to create, read, update and delete one type
(`sandbox.engine.handler` holds the protocol). Like moto's `backends.py`, this module lists every
entry itself; the handler modules never import it, and importing them registers nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.engine import consumer_resources as cr
from sandbox.engine.consumer_handlers import (
    AlarmHandler,
    FunctionHandler,
    LogGroupHandler,
    MappingHandler,
    QueueHandler,
    RolePolicyHandler,
    TableHandler,
)
from sandbox.engine.handler import ResourceHandler
from sandbox.engine.resources import (
    AttachmentHandler,
    PolicyHandler,
    RoleHandler,
    StreamHandler,
)
from sandbox.engine.schema import ATTACHMENT, POLICY, ROLE, STREAM
from sandbox.errors import UnsupportedResourceError

HANDLERS: Mapping[str, ResourceHandler] = {
    STREAM: StreamHandler(),
    ROLE: RoleHandler(),
    POLICY: PolicyHandler(),
    ATTACHMENT: AttachmentHandler(),
    cr.TABLE: TableHandler(),
    cr.QUEUE: QueueHandler(),
    cr.LOG_GROUP: LogGroupHandler(),
    cr.ROLE_POLICY: RolePolicyHandler(),
    cr.FUNCTION: FunctionHandler(),
    cr.MAPPING: MappingHandler(),
    cr.ALARM: AlarmHandler(),
}


def handler_for(token: str, logical_name: str) -> ResourceHandler:
    """The handler for `token`; an unregistered type is an error, never skipped."""
    handler = HANDLERS.get(token)
    if handler is None:
        raise UnsupportedResourceError(
            f"resource type {token!r} (resource {logical_name!r}): the local engine "
            f"manages only {', '.join(sorted(HANDLERS))}"
        )
    return handler
