"""The local engine's create calls for the Lambda consumer's resources (`consumer: lambda`).

Each creates one resource with the AWS calls the AWS provider would make and returns its ID and
state, as the destination's handlers in `resources.py` do; each handler class in
`consumer_handlers.py` names its own.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pulumi

from sandbox.engine.resources import autoname

TABLE = "aws:dynamodb/table:Table"
QUEUE = "aws:sqs/queue:Queue"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

State = dict[str, Any]
Client = Callable[[str], Any]
_FUNCTION_WAIT_SECONDS = 60.0


def _tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in (tags or {}).items()]


def archive_input(value: Any) -> Any:
    """An archive input as the state records it: its path and the SHA-256 of its bytes.

    Pulumi diffs an archive by its content hash; recorded this way (base64, as Lambda's
    CodeSha256) a rebuilt archive is a change and the same one is not.
    """
    if not isinstance(value, pulumi.FileArchive):
        return value
    path = Path(value.path)
    try:
        digest: str | None = base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    except OSError:
        digest = None
    return {"path": str(path), "sha256": digest}


def archive_path(code: Any) -> Path:
    """The file behind a function's `code` input (a FileArchive, however it arrives)."""
    if isinstance(code, pulumi.FileArchive):
        return Path(code.path)
    if isinstance(code, Mapping) and "path" in code:
        return Path(str(code["path"]))
    raise ValueError(f"code {code!r}: the local engine deploys only a FileArchive (a zip file)")


def _name(inputs: State, logical_name: str) -> str:
    return str(inputs.get("name") or autoname(logical_name))


def create_table(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    dynamodb = client("dynamodb")
    name = _name(inputs, logical_name)
    keys = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
    if inputs.get("rangeKey"):
        keys.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": keys,
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs["attributes"]
        ],
        "BillingMode": inputs["billingMode"],
        "Tags": _tag_list(inputs.get("tags")),
    }
    sse = inputs.get("serverSideEncryption") or {}
    if sse.get("enabled"):
        request["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
        if sse.get("kmsKeyArn"):
            request["SSESpecification"]["KMSMasterKeyId"] = sse["kmsKeyArn"]
    table = dynamodb.create_table(**request)["TableDescription"]
    if (inputs.get("pointInTimeRecovery") or {}).get("enabled"):
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    ttl = inputs.get("ttl") or {}
    if ttl.get("enabled"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
        )
    return name, {
        **inputs,
        "name": name,
        "arn": table["TableArn"],
        "tagsAll": dict(inputs.get("tags") or {}),
    }


# queue.go queueAttributeMap: the numeric inputs and the CreateQueue attributes they set.
_QUEUE_ATTRIBUTES = {
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
}


def create_queue(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    sqs = client("sqs")
    attributes = {"SqsManagedSseEnabled": str(bool(inputs.get("sqsManagedSseEnabled"))).lower()}
    for key, attribute in _QUEUE_ATTRIBUTES.items():
        if inputs.get(key) is not None:
            attributes[attribute] = str(int(inputs[key]))
    name = _name(inputs, logical_name)
    url = sqs.create_queue(
        QueueName=name, Attributes=attributes, tags=dict(inputs.get("tags") or {})
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, {
        **inputs,
        "name": name,
        "arn": arn,
        "url": url,
        "tagsAll": dict(inputs.get("tags") or {}),
    }


def create_log_group(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    logs = client("logs")
    name = _name(inputs, logical_name)
    logs.create_log_group(logGroupName=name, tags=dict(inputs.get("tags") or {}))
    if inputs.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(inputs["retentionInDays"]))
    (group,) = [
        g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if g["logGroupName"] == name
    ]  # fmt: skip
    # The provider's `arn` has no ":*" suffix; DescribeLogGroups' does.
    arn = str(group["arn"]).removesuffix(":*")
    return name, {**inputs, "name": name, "arn": arn, "tagsAll": dict(inputs.get("tags") or {})}


def put_role_policy(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    name = _name(inputs, logical_name)
    client("iam").put_role_policy(
        RoleName=inputs["role"], PolicyName=name, PolicyDocument=inputs["policy"]
    )
    return f"{inputs['role']}:{name}", {**inputs, "name": name}


def create_function(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    lambda_ = client("lambda")
    name = _name(inputs, logical_name)
    request: dict[str, Any] = {
        "FunctionName": name,
        "Role": inputs["role"],
        "Runtime": inputs["runtime"],
        "Handler": inputs["handler"],
        "Code": {"ZipFile": archive_path(inputs["code"]).read_bytes()},
        "Architectures": list(inputs.get("architectures") or ["x86_64"]),
        "MemorySize": int(inputs["memorySize"]),
        "Timeout": int(inputs["timeout"]),
        "Environment": {"Variables": dict((inputs.get("environment") or {}).get("variables", {}))},
        "Tags": dict(inputs.get("tags") or {}),
    }
    if inputs.get("description"):
        request["Description"] = inputs["description"]
    logging = inputs.get("loggingConfig") or {}
    if logging:
        request["LoggingConfig"] = {"LogFormat": logging.get("logFormat", "Text")}
        if logging.get("logGroup"):
            request["LoggingConfig"]["LogGroup"] = logging["logGroup"]
    function = lambda_.create_function(**request)
    reserved = inputs.get("reservedConcurrentExecutions")
    if reserved is not None and int(reserved) >= 0:
        lambda_.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(reserved)
        )
    state = {
        **inputs,
        "name": name,
        "arn": function["FunctionArn"],
        "invokeArn": function["FunctionArn"],
        "version": function.get("Version", "$LATEST"),
        "tagsAll": dict(inputs.get("tags") or {}),
    }
    state.pop("code", None)  # the archive's bytes are in Lambda; the state keeps no file object
    state["sourceCodeHash"] = function.get("CodeSha256")
    return name, state


def create_mapping(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    request: dict[str, Any] = {
        "EventSourceArn": inputs["eventSourceArn"],
        "FunctionName": inputs["functionName"],
        "StartingPosition": inputs["startingPosition"],
        "BatchSize": int(inputs["batchSize"]),
        "MaximumBatchingWindowInSeconds": int(inputs.get("maximumBatchingWindowInSeconds") or 0),
        "ParallelizationFactor": int(inputs.get("parallelizationFactor") or 1),
        "MaximumRetryAttempts": int(inputs.get("maximumRetryAttempts", -1)),
        "MaximumRecordAgeInSeconds": int(inputs.get("maximumRecordAgeInSeconds", -1)),
        "BisectBatchOnFunctionError": bool(inputs.get("bisectBatchOnFunctionError")),
        "FunctionResponseTypes": list(inputs.get("functionResponseTypes") or []),
        "Tags": dict(inputs.get("tags") or {}),
    }
    on_failure = ((inputs.get("destinationConfig") or {}).get("onFailure") or {}).get(
        "destinationArn"
    )
    if on_failure:
        request["DestinationConfig"] = {"OnFailure": {"Destination": on_failure}}
    mapping = client("lambda").create_event_source_mapping(**request)
    state = {
        **inputs,
        "uuid": mapping["UUID"],
        "arn": mapping.get("EventSourceMappingArn", ""),
        "functionArn": mapping["FunctionArn"],
        "state": mapping.get("State", "Enabled"),
        "lastModified": str(mapping.get("LastModified", time.time())),
    }
    return str(mapping["UUID"]), state


def alarm_request(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The whole PutMetricAlarm request for an alarm's inputs (expandPutMetricAlarmInput)."""
    request: dict[str, Any] = {
        "AlarmName": inputs["name"],
        "Namespace": inputs["namespace"],
        "MetricName": inputs["metricName"],
        "Dimensions": [
            {"Name": k, "Value": v} for k, v in (inputs.get("dimensions") or {}).items()
        ],
        "Statistic": inputs["statistic"],
        "Period": int(inputs["period"]),
        "EvaluationPeriods": int(inputs["evaluationPeriods"]),
        "Threshold": float(inputs["threshold"]),
        "ComparisonOperator": inputs["comparisonOperator"],
        "TreatMissingData": inputs["treatMissingData"],
    }
    if inputs.get("alarmDescription"):
        request["AlarmDescription"] = inputs["alarmDescription"]
    return request


def put_alarm(client: Client, logical_name: str, inputs: State) -> tuple[str, State]:
    cloudwatch = client("cloudwatch")
    name = _name(inputs, logical_name)
    request = alarm_request({**inputs, "name": name})
    request["Tags"] = _tag_list(inputs.get("tags"))
    cloudwatch.put_metric_alarm(**request)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return name, {**inputs, "name": name, "arn": alarm["AlarmArn"]}
