"""`consumer: lambda` under Pulumi's mocks: every resource CohortConsumer declares, its inputs."""

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from provisioning.errors import ConfigError
from sandbox.engine import consumer_resources as cr
from sandbox.engine import schema as local
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import ProgramRun, run_program
from sandbox.engine.secrets import unwrap_secrets

REGION = "eu-central-1"
ACCOUNT = "<account>"
CMK = "arn:aws:kms:eu-central-1:123456789012:key/12345678-1234-1234-1234-123456789012"
BASE = "amplitude-cohorts-consumer"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "lambda.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sync/lambda_handler.py", "")
    return path


def run(archive: Path, **config: Any) -> ProgramRun:
    values = {"consumer": "lambda", "consumerArchive": str(archive), **config}
    return run_program(PlanMocks(REGION), stack="test", config=values)


def inputs(program: ProgramRun, name: str) -> dict[str, Any]:
    (registration,) = [r for r in program.resources if r.name == name]
    plain, _ = unwrap_secrets(dict(registration.inputs))
    return plain


def test_consumer_is_a_second_component_of_nine_resources(archive: Path) -> None:
    program = run(archive)

    children = [r for r in program.resources if r.parent_type == c.CONSUMER_COMPONENT_TYPE]
    assert {r.type: r.name for r in program.resources if not r.parent_type.startswith("amp")} == {
        c.COMPONENT_TYPE: "cohort",
        c.CONSUMER_COMPONENT_TYPE: "consumer",
    }
    assert sorted((r.type, r.name) for r in children) == sorted(
        [
            (cr.TABLE, "consumer-membership"),
            (cr.TABLE, "consumer-idempotency"),
            (cr.QUEUE, "consumer-failures"),
            (cr.LOG_GROUP, "consumer-logs"),
            (local.ROLE, "consumer-role"),
            (cr.ROLE_POLICY, "consumer-policy"),
            (cr.FUNCTION, "consumer-function"),
            (cr.MAPPING, "consumer-mapping"),
            (cr.ALARM, "consumer-iterator-age"),
            (cr.ALARM, "consumer-failures-visible"),
            (cr.ALARM, "consumer-errors"),
            (cr.ALARM, "consumer-throttles"),
        ]
    )
    destination = [r for r in program.resources if r.parent_type == c.COMPONENT_TYPE]
    assert len(destination) == 4  # the destination itself is unchanged


def test_consumer_none_declares_nothing_more(archive: Path) -> None:
    program = run_program(PlanMocks(REGION), stack="test", config={"consumer": "none"})

    assert len(program.resources) == 5
    assert c.OUTPUT_FUNCTION_ARN not in program.outputs


def test_tables_inputs(archive: Path) -> None:
    program = run(archive)

    assert inputs(program, "consumer-membership") == {
        "name": f"{BASE}-membership",
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "pk",
        "rangeKey": "sk",
        "attributes": [{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
        "pointInTimeRecovery": {"enabled": True},
        "serverSideEncryption": {"enabled": True},
    }
    assert inputs(program, "consumer-idempotency") == {
        "name": f"{BASE}-idempotency",
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "id",
        "attributes": [{"name": "id", "type": "S"}],
        "ttl": {"attributeName": "expiration", "enabled": True},
        "pointInTimeRecovery": {"enabled": True},
        "serverSideEncryption": {"enabled": True},
    }


@pytest.mark.parametrize(
    ("encryption", "expected"),
    [
        ("NONE", {"enabled": False}),
        ("AWS_MANAGED", {"enabled": True}),
        ("KMS", {"enabled": True, "kmsKeyArn": CMK}),
    ],
)
def test_table_encryption_follows_the_stream(
    archive: Path, encryption: str, expected: dict[str, Any]
) -> None:
    config = {"encryption": encryption, **({"kmsKeyArn": CMK} if encryption == "KMS" else {})}
    program = run(archive, **config)

    for name in ("consumer-membership", "consumer-idempotency"):
        assert inputs(program, name)["serverSideEncryption"] == expected
    policy = json.loads(inputs(program, "consumer-policy")["policy"])
    decrypt = [s["Resource"] for s in policy["Statement"] if s["Action"] == "kms:Decrypt"]
    assert decrypt == ([CMK] if encryption == "KMS" else [])


def test_queue_log_group_and_role_inputs(archive: Path) -> None:
    program = run(archive, consumerLogRetentionDays="90", tags={"team": "growth"})

    assert inputs(program, "consumer-failures") == {
        "name": f"{BASE}-failures",
        "sqsManagedSseEnabled": True,
        "messageRetentionSeconds": 1_209_600,
        "maxMessageSize": 262_144,
        "tags": {"team": "growth"},
    }
    assert inputs(program, "consumer-logs") == {
        "name": f"/aws/lambda/{BASE}",
        "retentionInDays": 90,
        "tags": {"team": "growth"},
    }
    role = inputs(program, "consumer-role")
    assert json.loads(role.pop("assumeRolePolicy")) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LambdaAssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    assert role == {
        "name": f"{BASE}-role",
        "description": "Assumed by Lambda to apply stream amplitude-cohorts to DynamoDB.",
        "tags": {"team": "growth"},
    }
    for name in ("consumer-membership", "consumer-idempotency", "consumer-function"):
        assert inputs(program, name)["tags"] == {"team": "growth"}


def test_role_policy_grants_exactly_the_consumers_resources(archive: Path) -> None:
    program = run(archive)

    policy = inputs(program, "consumer-policy")
    assert (policy["name"], policy["role"]) == (f"{BASE}-policy", f"{BASE}-role")
    assert json.loads(policy["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadCohortStream",
                "Effect": "Allow",
                "Action": [
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                ],
                "Resource": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/amplitude-cohorts",
            },
            {
                "Sid": "WriteMembership",
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem"],
                "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{BASE}-membership",
            },
            {
                "Sid": "TrackIdempotency",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ],
                "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{BASE}-idempotency",
            },
            {
                "Sid": "SendFailures",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{BASE}-failures",
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{BASE}:*",
            },
        ],
    }


def test_function_inputs(archive: Path) -> None:
    program = run(
        archive,
        consumerMemoryMb="1024",
        consumerTimeoutSeconds="120",
        consumerReservedConcurrency="4",
        consumerArchitecture="arm64",
    )

    function = inputs(program, "consumer-function")
    assert str(function.pop("code").path) == str(archive)
    assert function == {
        "name": BASE,
        "description": "Applies cohort messages from Kinesis stream amplitude-cohorts to "
        "DynamoDB membership.",
        "role": f"arn:aws:iam::{ACCOUNT}:role/{BASE}-role",
        "runtime": "python3.11",
        "handler": "sync.lambda_handler.handler",
        "architectures": ["arm64"],
        "memorySize": 1024,
        "timeout": 120,
        "reservedConcurrentExecutions": 4,
        "environment": {
            "variables": {
                "MEMBERSHIP_TABLE": f"{BASE}-membership",
                "IDEMPOTENCY_TABLE": f"{BASE}-idempotency",
                "FAILURE_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{BASE}-failures",
            }
        },
        "loggingConfig": {"logFormat": "JSON", "logGroup": f"/aws/lambda/{BASE}"},
    }


def test_function_reserves_no_concurrency_by_default(archive: Path) -> None:
    assert "reservedConcurrentExecutions" not in inputs(run(archive), "consumer-function")


def test_mapping_inputs(archive: Path) -> None:
    program = run(
        archive,
        consumerBatchSize="500",
        consumerBatchingWindowSeconds="5",
        consumerParallelizationFactor="3",
        consumerMaxRetries="7",
        consumerMaxRecordAgeSeconds="3600",
    )

    assert inputs(program, "consumer-mapping") == {
        "eventSourceArn": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/amplitude-cohorts",
        "functionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{BASE}",
        "startingPosition": "TRIM_HORIZON",
        "batchSize": 500,
        "maximumBatchingWindowInSeconds": 5,
        "parallelizationFactor": 3,
        "maximumRetryAttempts": 7,
        "maximumRecordAgeInSeconds": 3600,
        "bisectBatchOnFunctionError": True,
        "functionResponseTypes": ["ReportBatchItemFailures"],
        "destinationConfig": {
            "onFailure": {"destinationArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{BASE}-failures"}
        },
    }


def test_alarm_inputs_and_switch(archive: Path) -> None:
    program = run(archive)

    assert inputs(program, "consumer-iterator-age") == {
        "name": f"{BASE}-iterator-age",
        "alarmDescription": "The Lambda consumer is more than an hour behind the stream.",
        "namespace": "AWS/Lambda",
        "metricName": "IteratorAge",
        "dimensions": {"FunctionName": BASE},
        "statistic": "Maximum",
        "period": 300,
        "evaluationPeriods": 1,
        "threshold": 3_600_000,
        "comparisonOperator": "GreaterThanThreshold",
        "treatMissingData": "notBreaching",
    }
    assert inputs(program, "consumer-failures-visible") == {
        "name": f"{BASE}-failures-visible",
        "alarmDescription": "Records the consumer could not apply wait in the failure queue.",
        "namespace": "AWS/SQS",
        "metricName": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": f"{BASE}-failures"},
        "statistic": "Maximum",
        "period": 300,
        "evaluationPeriods": 1,
        "threshold": 0,
        "comparisonOperator": "GreaterThanThreshold",
        "treatMissingData": "notBreaching",
    }
    for suffix, metric, description in (
        ("errors", "Errors", "An invocation of the Lambda consumer failed (raised or timed out)."),
        (
            "throttles",
            "Throttles",
            "Lambda refused invocations of the consumer (concurrency exhausted).",
        ),
    ):
        assert inputs(program, f"consumer-{suffix}") == {
            "name": f"{BASE}-{suffix}",
            "alarmDescription": description,
            "namespace": "AWS/Lambda",
            "metricName": metric,
            "dimensions": {"FunctionName": BASE},
            "statistic": "Sum",
            "period": 300,
            "evaluationPeriods": 1,
            "threshold": 0,
            "comparisonOperator": "GreaterThanThreshold",
            "treatMissingData": "notBreaching",
        }
    quiet = run(archive, consumerAlarms="false")
    assert quiet.of_type(cr.ALARM) == []


def test_function_and_mapping_wait_for_the_role_policy(archive: Path) -> None:
    program = run(archive)

    order = [r.name for r in program.resources]
    assert order.index("consumer-policy") < order.index("consumer-function")
    assert order.index("consumer-policy") < order.index("consumer-mapping")


def test_outputs_name_tables_function_and_queue(archive: Path) -> None:
    outputs = run(archive).outputs

    assert {k: outputs[k] for k in (c.OUTPUT_MEMBERSHIP_TABLE, c.OUTPUT_IDEMPOTENCY_TABLE)} == {
        "membershipTable": f"{BASE}-membership",
        "idempotencyTable": f"{BASE}-idempotency",
    }
    assert outputs["consumerFunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{BASE}"
    assert (
        outputs["failureQueueUrl"]
        == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{BASE}-failures"
    )


def test_a_missing_archive_declares_nothing(tmp_path: Path) -> None:
    seen: list[str] = []

    class Recording(PlanMocks):
        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            seen.append(args.typ)
            return super().new_resource(args)

    missing = tmp_path / "nowhere.zip"
    with pytest.raises(ConfigError) as caught:
        run_program(
            Recording(REGION),
            stack="t",
            config={"consumer": "lambda", "consumerArchive": str(missing)},
        )

    assert caught.value.problems == [
        f"consumerArchive {str(missing)!r}: no code archive at {missing}; build it with "
        "`cohort-lambda-archive --arch x86_64` (the function is never deployed without its code)"
    ]
    assert seen == []
