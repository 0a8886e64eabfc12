"""The Lambda consumer's resource types in the stateful engine: create, read back, delete.

`consumer_resources` holds the create calls; this module wraps each in the registry's handler
shape. Until each type's update-vs-replace table is looked up in the provider's schema, every
changed input of these types replaces the resource (the engine's rule for an input its table does
not list), which is never an in-place change the real provider would refuse; the README says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from sandbox.engine import consumer_resources as cr
from sandbox.engine.registry import AwsContext, Live, register
from sandbox.engine.schema import TypeSchema, register_schema
from sandbox.errors import ApplyError

State = dict[str, Any]

_GONE = {
    "ResourceNotFoundException",
    "NoSuchEntity",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
}


def _gone(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _GONE


def _exists(ctx: AwsContext, type_: str, resource_id: str, outputs: State) -> bool:
    """Whether the resource behind `resource_id` still exists."""
    try:
        if type_ == cr.TABLE:
            ctx.client("dynamodb").describe_table(TableName=resource_id)
        elif type_ == cr.QUEUE:
            ctx.client("sqs").get_queue_attributes(QueueUrl=resource_id)
        elif type_ == cr.LOG_GROUP:
            groups = ctx.client("logs").describe_log_groups(logGroupNamePrefix=resource_id)
            return any(g["logGroupName"] == resource_id for g in groups["logGroups"])
        elif type_ == cr.ROLE_POLICY:
            role, name = resource_id.split(":", 1)
            ctx.client("iam").get_role_policy(RoleName=role, PolicyName=name)
        elif type_ == cr.FUNCTION:
            ctx.client("lambda").get_function(FunctionName=resource_id)
        elif type_ == cr.MAPPING:
            ctx.client("lambda").get_event_source_mapping(UUID=resource_id)
        elif type_ == cr.ALARM:
            alarms = ctx.client("cloudwatch").describe_alarms(AlarmNames=[resource_id])
            return bool(alarms["MetricAlarms"])
    except ClientError as exc:
        if _gone(exc):
            return False
        raise
    return True


def _delete(ctx: AwsContext, type_: str, resource_id: str) -> None:
    try:
        if type_ == cr.TABLE:
            ctx.client("dynamodb").delete_table(TableName=resource_id)
        elif type_ == cr.QUEUE:
            ctx.client("sqs").delete_queue(QueueUrl=resource_id)
        elif type_ == cr.LOG_GROUP:
            ctx.client("logs").delete_log_group(logGroupName=resource_id)
        elif type_ == cr.ROLE_POLICY:
            role, name = resource_id.split(":", 1)
            ctx.client("iam").delete_role_policy(RoleName=role, PolicyName=name)
        elif type_ == cr.FUNCTION:
            ctx.client("lambda").delete_function(FunctionName=resource_id)
        elif type_ == cr.MAPPING:
            ctx.client("lambda").delete_event_source_mapping(UUID=resource_id)
        elif type_ == cr.ALARM:
            ctx.client("cloudwatch").delete_alarms(AlarmNames=[resource_id])
    except ClientError as exc:
        if not _gone(exc):
            raise


@dataclass(frozen=True)
class ConsumerHandler:
    """The registry's handler for one consumer type, built on its create call."""

    type_: str
    create_call: Callable[[Callable[[str], Any], str, State], tuple[str, State]]

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """Create through consumer_resources."""
        return self.create_call(ctx.client, logical_name, inputs)

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """Whether it still exists; its inputs are those it was created with (no drift read)."""
        if not _exists(ctx, self.type_, resource_id, outputs):
            return None
        recorded = {k: v for k, v in outputs.items() if k not in _OUTPUT_ONLY}
        return Live(resource_id, dict(outputs), recorded)

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The consumer's resources are always created by the program, never adopted."""
        raise ApplyError(
            f"{self.type_} {import_id!r}: the local engine does not import the Lambda "
            "consumer's resources; let the program create them"
        )

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """Never called: every change of these types replaces (see the module docstring)."""
        raise ApplyError(f"{self.type_} {resource_id!r}: no in-place update in the local engine")

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """Delete it; already gone is success."""
        _delete(ctx, self.type_, resource_id)

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """Fixed-name collisions are left to AWS's own refusal at create."""
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """Placeholders a preview shows."""
        return {**inputs, **cr.plan_state(self.type_, inputs, region, account)}


# Outputs the create calls add to the inputs they echo.
_OUTPUT_ONLY = {
    "arn",
    "url",
    "uuid",
    "functionArn",
    "invokeArn",
    "version",
    "tagsAll",
    "state",
    "lastModified",
    "sourceCodeHash",
}

for _token, _create in cr.CREATORS.items():
    register(_token, ConsumerHandler(_token, _create))
    register_schema(
        TypeSchema(
            _token,
            force_new=frozenset(),
            in_place=frozenset(),
            name_property=None if _token in (cr.MAPPING, cr.ROLE_POLICY) else "name",
        )
    )
