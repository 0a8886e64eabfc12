"""The Lambda consumer's resource types in the stateful engine: create, read back, update, delete.

`consumer_resources` holds the create calls; this module adds, per type, the provider's
update-vs-replace table (terraform-provider-aws's schema, cited per entry), the in-place update
calls its Update function makes, and a read that brings the real inputs back for `local refresh`.
An in-place input the table lists but the local engine does not perform is refused before any
call is made, never skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from sandbox.engine import consumer_resources as cr
from sandbox.engine.handler import AwsContext, Live, is_not_found, tags_change
from sandbox.engine.schema import TypeSchema, diff_inputs, register_schema
from sandbox.errors import ApplyError

State = dict[str, Any]

# --- update vs replace, from the provider's schema -------------------------------------------

_TABLE_SCHEMA = TypeSchema(
    cr.TABLE,
    # dynamodb/table.go ResourceTable().Schema (read at commit f583d818): `name`, `hash_key`,
    # `range_key`, `local_secondary_index` and the `restore_*` attributes are ForceNew.
    force_new=frozenset(
        {
            "name",
            "hashKey",
            "rangeKey",
            "localSecondaryIndexes",
            "restoreSourceName",
            "restoreToLatestTime",
            "restoreDateTime",
        }
    ),
    # table.go resourceTableUpdate: billing_mode/read_capacity/write_capacity,
    # stream_enabled/stream_view_type, global_secondary_index, table_class -> UpdateTable;
    # server_side_encryption -> UpdateTable(SSESpecification) alone; ttl -> UpdateTimeToLive;
    # point_in_time_recovery -> UpdateContinuousBackups; tags_all -> Tag/UntagResource;
    # replica -> UpdateTable(ReplicaUpdates). `attribute` has no ForceNew either.
    in_place=frozenset(
        {
            "attributes",
            "billingMode",
            "readCapacity",
            "writeCapacity",
            "streamEnabled",
            "streamViewType",
            "globalSecondaryIndexes",
            "tableClass",
            "serverSideEncryption",
            "ttl",
            "pointInTimeRecovery",
            "replicas",
            "tags",
        }
    ),
    # table.go: billing_mode Default PROVISIONED.
    defaults={"billingMode": "PROVISIONED"},
)
_QUEUE_SCHEMA = TypeSchema(
    cr.QUEUE,
    # sqs/queue.go queueSchema: `name`, `name_prefix` and `fifo_queue` are ForceNew.
    force_new=frozenset({"name", "namePrefix", "fifoQueue"}),
    # queue.go resourceQueueUpdate: every other attribute of queueAttributeMap goes to one
    # SetQueueAttributes; tags by the tagging interceptor (TagQueue/UntagQueue).
    in_place=frozenset(
        {
            "contentBasedDeduplication",
            "deduplicationScope",
            "delaySeconds",
            "fifoThroughputLimit",
            "kmsDataKeyReusePeriodSeconds",
            "kmsMasterKeyId",
            "maxMessageSize",
            "messageRetentionSeconds",
            "policy",
            "receiveWaitTimeSeconds",
            "redriveAllowPolicy",
            "redrivePolicy",
            "sqsManagedSseEnabled",
            "visibilityTimeoutSeconds",
            "tags",
        }
    ),
    policy_documents=frozenset({"policy"}),
    # queue.go queueSchema: fifo_queue and content_based_deduplication Default false;
    # delay_seconds, max_message_size, message_retention_seconds, receive_wait_time_seconds
    # and visibility_timeout_seconds Default the constants of sqs/consts.go (0, 262_144,
    # 345_600, 0, 30), sent on create (queueAttributeMap.ResourceDataToAPIAttributesCreate).
    # AWS's and moto's own maximum message size, when none is sent, is 1,048,576.
    defaults={
        "fifoQueue": False,
        "contentBasedDeduplication": False,
        "delaySeconds": 0,
        "maxMessageSize": 262_144,
        "messageRetentionSeconds": 345_600,
        "receiveWaitTimeSeconds": 0,
        "visibilityTimeoutSeconds": 30,
    },
)
_LOG_GROUP_SCHEMA = TypeSchema(
    cr.LOG_GROUP,
    # logs/group.go resourceGroup().Schema: `name`, `name_prefix`, `log_group_class` ForceNew.
    force_new=frozenset({"name", "namePrefix", "logGroupClass"}),
    # group.go resourceGroupUpdate: retention_in_days -> PutRetentionPolicy (or
    # DeleteRetentionPolicy when unset); kms_key_id -> Associate/DisassociateKmsKey;
    # skip_destroy is state only; tags (@Tags identifierAttribute=arn) -> Tag/UntagResource.
    in_place=frozenset({"retentionInDays", "kmsKeyId", "skipDestroy", "tags"}),
    # group.go: retention_in_days Default 0, skip_destroy Default false.
    defaults={"retentionInDays": 0, "skipDestroy": False},
)
_ROLE_POLICY_SCHEMA = TypeSchema(
    cr.ROLE_POLICY,
    # iam/role_policy.go resourceRolePolicy().Schema: `name`, `name_prefix`, `role` ForceNew.
    force_new=frozenset({"name", "namePrefix", "role"}),
    # role_policy.go: UpdateWithoutTimeout is resourceRolePolicyPut -> PutRolePolicy;
    # `policy` uses SuppressEquivalentPolicyDiffs.
    in_place=frozenset({"policy"}),
    policy_documents=frozenset({"policy"}),
)
_FUNCTION_SCHEMA = TypeSchema(
    cr.FUNCTION,
    # lambda/function.go resourceFunction().Schema: `function_name` (Pulumi: `name`),
    # `package_type` and `tenancy_config` are ForceNew. (`durable_config` is ForceNew only
    # when added or removed, a CustomizeDiff: left out, so any change of it replaces.)
    force_new=frozenset({"name", "packageType", "tenancyConfig"}),
    # function.go resourceFunctionUpdate: needsFunctionConfigUpdate keys ->
    # UpdateFunctionConfiguration; needsFunctionCodeUpdate (filename = Pulumi's `code`,
    # source_code_hash, s3_*, image_uri, architectures) -> UpdateFunctionCode;
    # reserved_concurrent_executions -> Put/DeleteFunctionConcurrency;
    # code_signing_config_arn -> Put/DeleteFunctionCodeSigningConfig; publish ->
    # PublishVersion; tags (@Tags identifierAttribute=arn) -> Tag/UntagResource.
    in_place=frozenset(
        {
            "architectures",
            "capacityProviderConfig",
            "code",
            "codeSigningConfigArn",
            "deadLetterConfig",
            "description",
            "environment",
            "ephemeralStorage",
            "fileSystemConfig",
            "handler",
            "imageConfig",
            "imageUri",
            "kmsKeyArn",
            "layers",
            "loggingConfig",
            "memorySize",
            "publish",
            "publishTo",
            "replaceSecurityGroupsOnDestroy",
            "replacementSecurityGroupIds",
            "reservedConcurrentExecutions",
            "role",
            "runtime",
            "s3Bucket",
            "s3Key",
            "s3ObjectVersion",
            "skipDestroy",
            "snapStart",
            "sourceCodeHash",
            "sourceKmsKeyArn",
            "timeout",
            "tracingConfig",
            "vpcConfig",
            "tags",
        }
    ),
    # function.go: memory_size Default 128, timeout Default 3,
    # reserved_concurrent_executions Default -1, package_type Default Zip, publish false.
    defaults={
        "memorySize": 128,
        "timeout": 3,
        "reservedConcurrentExecutions": -1,
        "packageType": "Zip",
        "publish": False,
        "skipDestroy": False,
    },
)
_MAPPING_SCHEMA = TypeSchema(
    cr.MAPPING,
    # lambda/event_source_mapping.go resourceEventSourceMapping().Schema: event_source_arn,
    # starting_position, starting_position_timestamp, queues, topics,
    # self_managed_event_source and both *_kafka_event_source_config are ForceNew.
    force_new=frozenset(
        {
            "eventSourceArn",
            "startingPosition",
            "startingPositionTimestamp",
            "queues",
            "topics",
            "selfManagedEventSource",
            "selfManagedKafkaEventSourceConfig",
            "amazonManagedKafkaEventSourceConfig",
        }
    ),
    # event_source_mapping.go resourceEventSourceMappingUpdate: each of these goes to one
    # UpdateEventSourceMapping (function_name too: DiffSuppress name-or-ARN, no ForceNew);
    # tags by Tag/UntagResource on the mapping's ARN.
    in_place=frozenset(
        {
            "batchSize",
            "bisectBatchOnFunctionError",
            "destinationConfig",
            "documentDbEventSourceConfig",
            "enabled",
            "filterCriteria",
            "functionName",
            "functionResponseTypes",
            "kmsKeyArn",
            "maximumBatchingWindowInSeconds",
            "maximumRecordAgeInSeconds",
            "maximumRetryAttempts",
            "parallelizationFactor",
            "scalingConfig",
            "sourceAccessConfigurations",
            "tumblingWindowInSeconds",
            "tags",
        }
    ),
    name_property=None,
    # event_source_mapping.go: enabled Default true.
    defaults={"enabled": True},
)
_ALARM_SCHEMA = TypeSchema(
    cr.ALARM,
    # cloudwatch/metric_alarm.go resourceMetricAlarm().Schema: only `alarm_name` (Pulumi:
    # `name`) is ForceNew.
    force_new=frozenset({"name"}),
    # metric_alarm.go resourceMetricAlarmUpdate: any change but tags -> PutMetricAlarm with
    # the whole alarm (expandPutMetricAlarmInput); tags -> Tag/UntagResource.
    in_place=frozenset(
        {
            "actionsEnabled",
            "alarmActions",
            "alarmDescription",
            "comparisonOperator",
            "datapointsToAlarm",
            "dimensions",
            "evaluateLowSampleCountPercentiles",
            "evaluationPeriods",
            "extendedStatistic",
            "insufficientDataActions",
            "metricName",
            "metricQueries",
            "namespace",
            "okActions",
            "period",
            "statistic",
            "threshold",
            "thresholdMetricId",
            "treatMissingData",
            "unit",
            "tags",
        }
    ),
    # metric_alarm.go: actions_enabled Default true, treat_missing_data Default "missing".
    defaults={"actionsEnabled": True, "treatMissingData": "missing"},
)

# --- helpers ----------------------------------------------------------------------------------

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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _unsupported(type_: str, resource_id: str, keys: set[str]) -> ApplyError:
    return ApplyError(
        f"{type_} {resource_id!r}: {', '.join(sorted(keys))} change in place in the provider, but "
        "the local engine does not perform that update; nothing was changed"
    )


@dataclass(frozen=True)
class Change:
    """One in-place update: the changed inputs, old and new, and where the resource is."""

    ctx: AwsContext
    id: str
    outputs: State
    old: State
    new: State
    keys: frozenset[str]

    def tags(self) -> tuple[dict[str, str], list[str]]:
        """Tags to set and keys to remove."""
        return tags_change(self.old.get("tags"), self.new.get("tags"))


# --- read: the real inputs back ---------------------------------------------------------------


def _read_table(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    dynamodb = ctx.client("dynamodb")
    table = dynamodb.describe_table(TableName=resource_id)["Table"]
    read: State = {
        "billingMode": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    }
    backups = dynamodb.describe_continuous_backups(TableName=resource_id)
    pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription") or {}
    read["pointInTimeRecovery"] = {"enabled": pitr.get("PointInTimeRecoveryStatus") == "ENABLED"}
    ttl = dynamodb.describe_time_to_live(TableName=resource_id)["TimeToLiveDescription"]
    if ttl.get("AttributeName"):
        read["ttl"] = {
            "attributeName": ttl["AttributeName"],
            "enabled": ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"),
        }
    elif outputs.get("ttl"):
        read["ttl"] = None
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
    read["tags"] = {t["Key"]: t["Value"] for t in tags} or None
    return read


def _read_queue(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    sqs = ctx.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=resource_id, AttributeNames=["All"])[
        "Attributes"
    ]
    read: State = {
        "messageRetentionSeconds": _int(attributes.get("MessageRetentionPeriod")),
        "maxMessageSize": _int(attributes.get("MaximumMessageSize")),
        "sqsManagedSseEnabled": attributes.get("SqsManagedSseEnabled") == "true",
    }
    read["tags"] = sqs.list_queue_tags(QueueUrl=resource_id).get("Tags") or None
    return read


def _read_log_group(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    logs = ctx.client("logs")
    (group,) = [
        g for g in logs.describe_log_groups(logGroupNamePrefix=resource_id)["logGroups"]
        if g["logGroupName"] == resource_id
    ]  # fmt: skip
    tags = logs.list_tags_log_group(logGroupName=resource_id).get("tags") or None
    return {"retentionInDays": group.get("retentionInDays"), "tags": tags}


def _read_role_policy(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    role, name = resource_id.split(":", 1)
    document = ctx.client("iam").get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    return {"policy": document if isinstance(document, str) else json.dumps(document)}


def _read_function(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    found = ctx.client("lambda").get_function(FunctionName=resource_id)
    config = found["Configuration"]
    read: State = {
        "memorySize": config.get("MemorySize"),
        "timeout": config.get("Timeout"),
        "runtime": config.get("Runtime"),
        "handler": config.get("Handler"),
        "role": config.get("Role"),
        "architectures": list(config.get("Architectures") or ["x86_64"]),
        "environment": {"variables": dict((config.get("Environment") or {}).get("Variables", {}))},
        "reservedConcurrentExecutions": (found.get("Concurrency") or {}).get(
            "ReservedConcurrentExecutions", -1
        ),
        "tags": dict(found.get("Tags") or {}) or None,
    }
    code = outputs.get("code")
    if isinstance(code, Mapping) and code.get("sha256") != config.get("CodeSha256"):
        read["code"] = {**code, "sha256": config.get("CodeSha256")}
    return read


def _read_mapping(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    found = ctx.client("lambda").get_event_source_mapping(UUID=resource_id)
    on_failure = ((found.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return {
        "batchSize": found.get("BatchSize"),
        "maximumBatchingWindowInSeconds": found.get("MaximumBatchingWindowInSeconds"),
        "parallelizationFactor": found.get("ParallelizationFactor"),
        "maximumRetryAttempts": found.get("MaximumRetryAttempts"),
        "maximumRecordAgeInSeconds": found.get("MaximumRecordAgeInSeconds"),
        "bisectBatchOnFunctionError": found.get("BisectBatchOnFunctionError"),
        "functionResponseTypes": list(found.get("FunctionResponseTypes") or []),
        "destinationConfig": {"onFailure": {"destinationArn": on_failure}} if on_failure else None,
        "tags": dict(found.get("Tags") or {}) or None,
    }


def _read_alarm(ctx: AwsContext, resource_id: str, outputs: State) -> State:
    cloudwatch = ctx.client("cloudwatch")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[resource_id])["MetricAlarms"]
    tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags", [])
    return {
        "alarmDescription": alarm.get("AlarmDescription"),
        "comparisonOperator": alarm.get("ComparisonOperator"),
        "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
        "evaluationPeriods": alarm.get("EvaluationPeriods"),
        "metricName": alarm.get("MetricName"),
        "namespace": alarm.get("Namespace"),
        "period": alarm.get("Period"),
        "statistic": alarm.get("Statistic"),
        "threshold": alarm.get("Threshold"),
        "treatMissingData": alarm.get("TreatMissingData"),
        "tags": {t["Key"]: t["Value"] for t in tags} or None,
    }


# --- update: the provider's in-place calls ----------------------------------------------------


def _update_table(change: Change) -> None:
    dynamodb, name, new = change.ctx.client("dynamodb"), change.id, change.new
    if "billingMode" in change.keys:
        dynamodb.update_table(TableName=name, BillingMode=new["billingMode"])
    if "serverSideEncryption" in change.keys:
        sse = new.get("serverSideEncryption") or {}
        spec: dict[str, Any] = {"Enabled": bool(sse.get("enabled"))}
        if sse.get("enabled"):
            spec["SSEType"] = "KMS"
            if sse.get("kmsKeyArn"):
                spec["KMSMasterKeyId"] = sse["kmsKeyArn"]
        dynamodb.update_table(TableName=name, SSESpecification=spec)
    if "ttl" in change.keys:
        ttl = new.get("ttl") or change.old.get("ttl") or {}
        enabled = bool((new.get("ttl") or {}).get("enabled"))
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["attributeName"], "Enabled": enabled},
        )
    if "tags" in change.keys:
        upsert, removed = change.tags()
        if upsert:
            dynamodb.tag_resource(ResourceArn=change.outputs["arn"], Tags=_tag_list(upsert))
        if removed:
            dynamodb.untag_resource(ResourceArn=change.outputs["arn"], TagKeys=removed)
    if "pointInTimeRecovery" in change.keys:
        enabled = bool((new.get("pointInTimeRecovery") or {}).get("enabled"))
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
        )


# Queue inputs -> SQS attribute names (queue.go queueAttributeMap).
_QUEUE_ATTRIBUTES = {
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "delaySeconds": "DelaySeconds",
    "fifoThroughputLimit": "FifoThroughputLimit",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "policy": "Policy",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "redriveAllowPolicy": "RedriveAllowPolicy",
    "redrivePolicy": "RedrivePolicy",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
}


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _update_queue(change: Change) -> None:
    sqs = change.ctx.client("sqs")
    attributes = {
        _QUEUE_ATTRIBUTES[k]: _attribute(change.new.get(k))
        for k in sorted(change.keys)
        if k in _QUEUE_ATTRIBUTES
    }
    if attributes:
        sqs.set_queue_attributes(QueueUrl=change.id, Attributes=attributes)
    if "tags" in change.keys:
        upsert, removed = change.tags()
        if upsert:
            sqs.tag_queue(QueueUrl=change.id, Tags=upsert)
        if removed:
            sqs.untag_queue(QueueUrl=change.id, TagKeys=removed)


def _update_log_group(change: Change) -> None:
    logs = change.ctx.client("logs")
    if "retentionInDays" in change.keys:
        days = _int(change.new.get("retentionInDays"))
        if days:
            logs.put_retention_policy(logGroupName=change.id, retentionInDays=days)
        else:
            logs.delete_retention_policy(logGroupName=change.id)
    if "kmsKeyId" in change.keys:
        if change.new.get("kmsKeyId"):
            logs.associate_kms_key(logGroupName=change.id, kmsKeyId=change.new["kmsKeyId"])
        else:
            logs.disassociate_kms_key(logGroupName=change.id)
    if "tags" in change.keys:
        upsert, removed = change.tags()
        if upsert:
            logs.tag_log_group(logGroupName=change.id, tags=upsert)
        if removed:
            logs.untag_log_group(logGroupName=change.id, tags=removed)


def _update_role_policy(change: Change) -> None:
    role, name = change.id.split(":", 1)
    change.ctx.client("iam").put_role_policy(
        RoleName=role, PolicyName=name, PolicyDocument=change.new["policy"]
    )


# Function inputs -> UpdateFunctionConfiguration fields (function.go needsFunctionConfigUpdate).
_FUNCTION_CONFIG: dict[str, Callable[[Any], tuple[str, Any]]] = {
    "description": lambda v: ("Description", v or ""),
    "handler": lambda v: ("Handler", v),
    "memorySize": lambda v: ("MemorySize", int(v or 128)),
    "role": lambda v: ("Role", v),
    "runtime": lambda v: ("Runtime", v),
    "timeout": lambda v: ("Timeout", int(v or 3)),
    "environment": lambda v: ("Environment", {"Variables": dict((v or {}).get("variables", {}))}),
    "loggingConfig": lambda v: (
        "LoggingConfig",
        {
            k: x
            for k, x in (
                ("LogFormat", (v or {}).get("logFormat")),
                ("LogGroup", (v or {}).get("logGroup")),
            )
            if x
        },
    ),
}


def _update_function(change: Change) -> dict[str, Any]:
    lambda_, name, new = change.ctx.client("lambda"), change.id, change.new
    result: dict[str, Any] = {}
    config = dict(
        _FUNCTION_CONFIG[k](new.get(k)) for k in sorted(change.keys & set(_FUNCTION_CONFIG))
    )
    if config:
        lambda_.update_function_configuration(FunctionName=name, **config)
    if change.keys & {"code", "architectures", "sourceCodeHash"}:
        request: dict[str, Any] = {
            "FunctionName": name,
            "ZipFile": cr.archive_path(new["code"]).read_bytes(),
        }
        if "architectures" in change.keys:
            request["Architectures"] = list(new.get("architectures") or ["x86_64"])
        result["sourceCodeHash"] = lambda_.update_function_code(**request).get("CodeSha256")
    if "reservedConcurrentExecutions" in change.keys:
        reserved = _int(new.get("reservedConcurrentExecutions"))
        if reserved is not None and reserved >= 0:
            lambda_.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=reserved
            )
        else:
            lambda_.delete_function_concurrency(FunctionName=name)
    if "tags" in change.keys:
        _lambda_tags(change, change.outputs["arn"])
    return result


def _lambda_tags(change: Change, arn: str) -> None:
    upsert, removed = change.tags()
    if upsert:
        change.ctx.client("lambda").tag_resource(Resource=arn, Tags=upsert)
    if removed:
        change.ctx.client("lambda").untag_resource(Resource=arn, TagKeys=removed)


# Mapping inputs -> UpdateEventSourceMapping fields (event_source_mapping.go Update).
_MAPPING_FIELDS: dict[str, Callable[[Any], tuple[str, Any]]] = {
    "batchSize": lambda v: ("BatchSize", int(v)),
    "bisectBatchOnFunctionError": lambda v: ("BisectBatchOnFunctionError", bool(v)),
    "destinationConfig": lambda v: (
        "DestinationConfig",
        {
            "OnFailure": {
                "Destination": ((v or {}).get("onFailure") or {}).get("destinationArn", "")
            }
        },
    ),
    "enabled": lambda v: ("Enabled", v is None or bool(v)),
    "functionName": lambda v: ("FunctionName", v),
    "functionResponseTypes": lambda v: ("FunctionResponseTypes", list(v or [])),
    "maximumBatchingWindowInSeconds": lambda v: ("MaximumBatchingWindowInSeconds", int(v or 0)),
    "maximumRecordAgeInSeconds": lambda v: ("MaximumRecordAgeInSeconds", int(v)),
    "maximumRetryAttempts": lambda v: ("MaximumRetryAttempts", int(v)),
    "parallelizationFactor": lambda v: ("ParallelizationFactor", int(v)),
}


def _update_mapping(change: Change) -> None:
    fields = dict(
        _MAPPING_FIELDS[k](change.new.get(k)) for k in sorted(change.keys & set(_MAPPING_FIELDS))
    )
    if fields:
        change.ctx.client("lambda").update_event_source_mapping(UUID=change.id, **fields)
    if "tags" in change.keys:
        _lambda_tags(change, change.outputs["arn"])


def _update_alarm(change: Change) -> None:
    cloudwatch = change.ctx.client("cloudwatch")
    if change.keys - {"tags"}:
        cloudwatch.put_metric_alarm(**cr.alarm_request(change.new))
    if "tags" in change.keys:
        upsert, removed = change.tags()
        if upsert:
            cloudwatch.tag_resource(ResourceARN=change.outputs["arn"], Tags=_tag_list(upsert))
        if removed:
            cloudwatch.untag_resource(ResourceARN=change.outputs["arn"], TagKeys=removed)


class ConsumerHandler:
    """The provider's CRUD for one consumer type; each subclass carries its schema and calls."""

    schema: ClassVar[TypeSchema]
    # The inputs whose in-place update this engine performs (the schema may list more).
    performs: ClassVar[frozenset[str]]

    @property
    def type_(self) -> str:
        """The Pulumi type token."""
        return self.schema.token

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """The create calls (`consumer_resources`): the ID and what they return."""
        raise NotImplementedError

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """The inputs AWS reports now."""
        raise NotImplementedError

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """The in-place update calls for `change.keys`; outputs they add."""
        raise NotImplementedError

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """The delete call (a missing resource raises a not-found ClientError)."""
        raise NotImplementedError

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The outputs a preview shows before the create (its ARN, as a placeholder)."""
        return {}

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """Create through consumer_resources; the outputs keep every input (the archive too)."""
        resource_id, outputs = self.create_call(ctx.client, logical_name, inputs)
        return resource_id, {**inputs, **outputs}

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """The inputs AWS holds now (those it cannot tell keep their recorded value)."""
        recorded = {k: v for k, v in outputs.items() if k not in _OUTPUT_ONLY}
        try:
            actual = self.read_call(ctx, resource_id, outputs)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        except ValueError:  # a log group or alarm no longer listed
            return None
        return Live(resource_id, dict(outputs), {**recorded, **actual})

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The consumer's resources are always created by the program, never adopted."""
        raise ApplyError(
            f"{self.type_} {import_id!r}: the local engine does not import the Lambda "
            "consumer's resources; let the program create them"
        )

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """The provider's in-place calls for what changed; refused whole if any is not ours."""
        compared = {k: cr.archive_input(v) for k, v in new.items()}
        keys = frozenset(diff_inputs(self.type_, old, compared).diff_reasons)
        missing = set(keys - self.performs - {"skipDestroy"})
        if missing:
            raise _unsupported(self.type_, resource_id, missing)
        extra = self.update_call(Change(ctx, resource_id, outputs, old, new, keys)) or {}
        result = {**outputs, **new, **extra}
        if "tags" in keys:
            result["tagsAll"] = dict(new.get("tags") or {})
        return result

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """Delete it; already gone is success."""
        try:
            self.delete_call(ctx, resource_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """Fixed-name collisions are left to AWS's own refusal at create."""
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """Placeholders a preview shows."""
        name = str(inputs.get("name") or f"{logical_name}-<random>")
        return {**inputs, **self.placeholders(region, account, name)}


class TableHandler(ConsumerHandler):
    """aws_dynamodb_table (internal/service/dynamodb/table.go)."""

    schema = _TABLE_SCHEMA
    performs = frozenset(
        {"billingMode", "serverSideEncryption", "ttl", "pointInTimeRecovery", "tags"}
    )

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateTable, then TTL and point-in-time recovery."""
        return cr.create_table(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """DescribeTable, TTL, continuous backups and tags."""
        return _read_table(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """resourceTableUpdate's calls."""
        _update_table(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteTable."""
        ctx.client("dynamodb").delete_table(TableName=resource_id)

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The table's ARN."""
        return {"arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"}


class QueueHandler(ConsumerHandler):
    """aws_sqs_queue (internal/service/sqs/queue.go)."""

    schema = _QUEUE_SCHEMA
    performs = frozenset({*_QUEUE_ATTRIBUTES, "tags"})

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateQueue with its attributes and tags."""
        return cr.create_queue(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """GetQueueAttributes and ListQueueTags."""
        return _read_queue(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """SetQueueAttributes and TagQueue/UntagQueue."""
        _update_queue(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteQueue."""
        ctx.client("sqs").delete_queue(QueueUrl=resource_id)

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The queue's ARN and URL."""
        return {
            "arn": f"arn:aws:sqs:{region}:{account}:{name}",
            "url": f"https://sqs.{region}.amazonaws.com/{account}/{name}",
        }


class LogGroupHandler(ConsumerHandler):
    """aws_cloudwatch_log_group (internal/service/logs/group.go)."""

    schema = _LOG_GROUP_SCHEMA
    performs = frozenset({"retentionInDays", "kmsKeyId", "skipDestroy", "tags"})

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateLogGroup, then its retention."""
        return cr.create_log_group(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """DescribeLogGroups and its tags."""
        return _read_log_group(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """Put/DeleteRetentionPolicy, KMS key, tags."""
        _update_log_group(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteLogGroup."""
        ctx.client("logs").delete_log_group(logGroupName=resource_id)

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The log group's ARN."""
        return {"arn": f"arn:aws:logs:{region}:{account}:log-group:{name}"}


class RolePolicyHandler(ConsumerHandler):
    """aws_iam_role_policy (internal/service/iam/role_policy.go); ID `role:name`."""

    schema = _ROLE_POLICY_SCHEMA
    performs = frozenset({"policy"})

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """PutRolePolicy."""
        return cr.put_role_policy(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """GetRolePolicy."""
        return _read_role_policy(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """PutRolePolicy again."""
        _update_role_policy(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteRolePolicy."""
        role, name = resource_id.split(":", 1)
        ctx.client("iam").delete_role_policy(RoleName=role, PolicyName=name)


class FunctionHandler(ConsumerHandler):
    """aws_lambda_function (internal/service/lambda/function.go)."""

    schema = _FUNCTION_SCHEMA
    performs = frozenset(
        {
            *_FUNCTION_CONFIG,
            "code",
            "architectures",
            "sourceCodeHash",
            "reservedConcurrentExecutions",
            "tags",
        }
    )

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateFunction, then its reserved concurrency."""
        return cr.create_function(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """GetFunction."""
        return _read_function(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """UpdateFunctionConfiguration/Code, concurrency and tags."""
        return _update_function(change)

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteFunction."""
        ctx.client("lambda").delete_function(FunctionName=resource_id)

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The function's ARN."""
        return {"arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}


class MappingHandler(ConsumerHandler):
    """aws_lambda_event_source_mapping (internal/service/lambda/event_source_mapping.go)."""

    schema = _MAPPING_SCHEMA
    performs = frozenset({*_MAPPING_FIELDS, "tags"})

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateEventSourceMapping."""
        return cr.create_mapping(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """GetEventSourceMapping."""
        return _read_mapping(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """UpdateEventSourceMapping."""
        _update_mapping(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteEventSourceMapping."""
        ctx.client("lambda").delete_event_source_mapping(UUID=resource_id)


class AlarmHandler(ConsumerHandler):
    """aws_cloudwatch_metric_alarm (internal/service/cloudwatch/metric_alarm.go)."""

    schema = _ALARM_SCHEMA
    performs = frozenset(
        {
            "alarmDescription",
            "comparisonOperator",
            "dimensions",
            "evaluationPeriods",
            "metricName",
            "namespace",
            "period",
            "statistic",
            "threshold",
            "treatMissingData",
            "tags",
        }
    )

    def create_call(self, client: cr.Client, logical_name: str, inputs: State) -> tuple[str, State]:
        """PutMetricAlarm."""
        return cr.put_alarm(client, logical_name, inputs)

    def read_call(self, ctx: AwsContext, resource_id: str, outputs: State) -> State:
        """DescribeAlarms and its tags."""
        return _read_alarm(ctx, resource_id, outputs)

    def update_call(self, change: Change) -> dict[str, Any] | None:
        """PutMetricAlarm again, and tags."""
        _update_alarm(change)
        return None

    def delete_call(self, ctx: AwsContext, resource_id: str) -> None:
        """DeleteAlarms."""
        ctx.client("cloudwatch").delete_alarms(AlarmNames=[resource_id])

    def placeholders(self, region: str, account: str, name: str) -> State:
        """The alarm's ARN."""
        return {"arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"}


CONSUMER_HANDLERS: tuple[type[ConsumerHandler], ...] = (
    TableHandler,
    QueueHandler,
    LogGroupHandler,
    RolePolicyHandler,
    FunctionHandler,
    MappingHandler,
    AlarmHandler,
)
# schema_for() answers for these types from the handlers' own schemas.
for _handler in CONSUMER_HANDLERS:
    register_schema(_handler.schema)
