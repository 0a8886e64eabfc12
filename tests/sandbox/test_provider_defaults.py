"""What the local engine creates for inputs the program leaves unset: the provider's defaults.

`pulumi up` creates what terraform-provider-aws's schema `Default`s say for every attribute the
program does not set, not what the AWS API (or moto) would pick by itself. The oracle below is
the provider's documentation, read independently of the engine's tables: each entry names the
type, the input, the documented default and how to read the created resource's value back.
Only inputs this program leaves unset are compared (the ones it sets are the program's choice).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from sandbox.engine.runner import Registration
from sandbox.engine.stack import StackConfig, apply
from sandbox.world import MotoWorld
from tests.sandbox.test_lambda_mapping import build_archive

pytestmark = pytest.mark.integration

Client = Callable[[str], Any]
Read = Callable[[Client, Registration], Any]


def _queue(attribute: str) -> Read:
    def read(client: Client, resource: Registration) -> Any:
        found = client("sqs").get_queue_attributes(QueueUrl=resource.id, AttributeNames=["All"])
        return int(found["Attributes"][attribute])

    return read


def _function(key: str) -> Read:
    def read(client: Client, resource: Registration) -> Any:
        return client("lambda").get_function_configuration(FunctionName=resource.id)[key]

    return read


def _alarm(key: str) -> Read:
    def read(client: Client, resource: Registration) -> Any:
        (alarm,) = client("cloudwatch").describe_alarms(AlarmNames=[resource.id])["MetricAlarms"]
        return alarm.get(key)

    return read


def _role(key: str) -> Read:
    return lambda client, resource: client("iam").get_role(RoleName=resource.id)["Role"][key]


def _policy_path(client: Client, resource: Registration) -> Any:
    return client("iam").get_policy(PolicyArn=resource.id)["Policy"]["Path"]


def _mapping_state(client: Client, resource: Registration) -> Any:
    return client("lambda").get_event_source_mapping(UUID=resource.id)["State"]


def _log_retention(client: Client, resource: Registration) -> Any:
    groups = client("logs").describe_log_groups(logGroupNamePrefix=resource.id)["logGroups"]
    (group,) = [g for g in groups if g["logGroupName"] == resource.id]
    return group.get("retentionInDays")


# (type, input, documented default as AWS reports it, read) - terraform-provider-aws docs:
ORACLE: list[tuple[str, str, Any, Read]] = [
    # sqs_queue.html.markdown: delay_seconds 0, max_message_size 262144 (256 KiB),
    # message_retention_seconds 345600 (4 days), receive_wait_time_seconds 0,
    # visibility_timeout_seconds 30.
    ("aws:sqs/queue:Queue", "delaySeconds", 0, _queue("DelaySeconds")),
    ("aws:sqs/queue:Queue", "maxMessageSize", 262_144, _queue("MaximumMessageSize")),
    ("aws:sqs/queue:Queue", "messageRetentionSeconds", 345_600, _queue("MessageRetentionPeriod")),
    ("aws:sqs/queue:Queue", "receiveWaitTimeSeconds", 0, _queue("ReceiveMessageWaitTimeSeconds")),
    ("aws:sqs/queue:Queue", "visibilityTimeoutSeconds", 30, _queue("VisibilityTimeout")),
    # lambda_function.html.markdown: memory_size 128, timeout 3, package_type Zip.
    ("aws:lambda/function:Function", "memorySize", 128, _function("MemorySize")),
    ("aws:lambda/function:Function", "timeout", 3, _function("Timeout")),
    ("aws:lambda/function:Function", "packageType", "Zip", _function("PackageType")),
    # lambda_event_source_mapping.html.markdown: enabled true.
    ("aws:lambda/eventSourceMapping:EventSourceMapping", "enabled", "Enabled", _mapping_state),
    # cloudwatch_metric_alarm.html.markdown: actions_enabled true, treat_missing_data missing.
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "actionsEnabled", True, _alarm("ActionsEnabled")),
    (
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "treatMissingData",
        "missing",
        _alarm("TreatMissingData"),
    ),
    # cloudwatch_log_group.html.markdown: retention_in_days 0 (never expire: no retention set).
    ("aws:cloudwatch/logGroup:LogGroup", "retentionInDays", None, _log_retention),
    # iam_role.html.markdown: path "/", max_session_duration 3600.
    ("aws:iam/role:Role", "path", "/", _role("Path")),
    ("aws:iam/role:Role", "maxSessionDuration", 3600, _role("MaxSessionDuration")),
    # iam_policy.html.markdown: path "/".
    ("aws:iam/policy:Policy", "path", "/", _policy_path),
]


def test_every_unset_input_is_created_with_the_providers_default(
    moto_world: MotoWorld, tmp_path: Path
) -> None:
    # GIVEN the program with `consumer: lambda` (every resource type it declares)
    config = StackConfig(
        stack="dev",
        values={
            c.CONFIG_CONSUMER: c.CONSUMER_LAMBDA,
            c.CONFIG_CONSUMER_ARCHIVE: str(build_archive(tmp_path)),
        },
    )

    # WHEN the engine creates it
    run = apply(config, session=moto_world.customer_admin.session("us-east-1"), region="us-east-1")

    # THEN each input the program left unset holds the provider's default in AWS
    def client(service: str) -> Any:
        return moto_world.client(service, moto_world.customer_admin)

    checked, wrong = [], []
    for resource in run.resources:
        for type_, key, default, read in ORACLE:
            if resource.type != type_ or resource.inputs.get(key) is not None:
                continue
            actual = read(client, resource)
            checked.append((resource.name, key))
            if actual != default:
                wrong.append(f"{resource.name}.{key}: {actual!r}, the provider's {default!r}")
    assert not wrong, wrong
    # (the failure queue's maximum message size among them, unless the program sets it)
    assert len(checked) >= 8, checked
