"""The CohortConsumer component: the Lambda consumer, its tables, its logs and its failure path.

Also served by the component package: Pulumi's analyzer reads its schema from the annotations
below, so they stay evaluated (no postponed annotations).
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from provisioning import constants as c
from provisioning.component import plain_inputs
from provisioning.config import ConsumerConfig, DestinationConfig, parse_config
from provisioning.errors import ConfigError
from provisioning.kms import check_key_placement
from provisioning.policies import consumer_policy, lambda_trust_policy

# Keeps "<base>-consumer-role" within IAM's and Lambda's 64 characters, SQS's 80.
_BASE_NAME_MAX_CHARS = 48
# SQS keeps a message at most 14 days: the longest a person has to look at a failure.
QUEUE_RETENTION_SECONDS = 1_209_600


def consumer_base_name(stream_name: str) -> str:
    """The prefix of every consumer resource's name, valid for Lambda, SQS, IAM and DynamoDB."""
    return re.sub(r"[^a-zA-Z0-9_-]", "-", stream_name)[:_BASE_NAME_MAX_CHARS] + "-consumer"


def log_group_name(function_name: str) -> str:
    """Where Lambda writes a function's logs by default, so tools find them where they look."""
    return f"/aws/lambda/{function_name}"


class CohortConsumerArgs(TypedDict, total=False):
    """Inputs of CohortConsumer from another language: the stream it reads and the consumer keys.

    The `consumer…` fields are the config keys of `provisioning.keys` (descriptions and defaults
    in the schema come from there) and are validated by the program's rules before anything is
    declared; only `stream_arn` may be an Output (the stream's, from CohortDestination).
    """

    stream_arn: pulumi.Input[str]
    stream_name: str
    kms_key_arn: str
    encrypted: bool
    tags: dict[str, str]
    consumer_memory_mb: int
    consumer_timeout_seconds: int
    consumer_reserved_concurrency: int
    consumer_batch_size: int
    consumer_batching_window_seconds: int
    consumer_parallelization_factor: int
    consumer_max_retries: int
    consumer_max_record_age_seconds: int
    consumer_log_retention_days: int
    consumer_architecture: str
    consumer_alarms: bool
    consumer_archive: str


# What the stream-side inputs mean, for the schema (the consumer keys are described by the table).
STREAM_INPUTS = {
    "streamArn": "ARN of the cohort stream to read (CohortDestination's stream.arn).",
    "streamName": "Name of that stream; the consumer's resources are named after it.",
    "kmsKeyArn": "The stream's customer-managed KMS key (the tables use it too); empty for none.",
    "encrypted": "Whether the stream is encrypted (true by default, as CohortDestination's is).",
    "tags": "Tags applied to every consumer resource, an object of string keys and values.",
}
REQUIRED_INPUTS = ("streamArn", "streamName")


@dataclass(frozen=True)
class ConsumerInputs:
    """What the program hands CohortConsumer: the stream it reads and the parsed consumer config."""

    stream_arn: pulumi.Input[str]
    stream_name: str
    # The stream's customer-managed KMS key, or None (unencrypted or alias/aws/kinesis).
    kms_key_arn: str | None
    encrypted: bool
    config: ConsumerConfig
    project_dir: Path
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, config: DestinationConfig, stream_arn: pulumi.Input[str], project_dir: Path
    ) -> "ConsumerInputs":
        """The inputs for a destination's parsed config (which must have `consumer: lambda`)."""
        assert config.consumer is not None
        return cls(
            stream_arn=stream_arn,
            stream_name=config.stream_name,
            kms_key_arn=config.customer_key_arn,
            encrypted=config.encrypted,
            config=config.consumer,
            project_dir=project_dir,
            tags=config.tags,
        )


def read_inputs(args: Mapping[str, Any], stack: str, project_dir: Path) -> ConsumerInputs:
    """Validate another language's inputs with the program's own rules (one ConfigError)."""
    raw = plain_inputs(args, output_allowed="streamArn")
    given = raw.pop("streamArn", None)
    if given is None:
        raise ConfigError(["streamArn: required (the stream the consumer reads)"])
    kms = raw.pop("kmsKeyArn", None) or None
    encrypted = raw.pop("encrypted", True)
    raw[c.CONFIG_CONSUMER] = c.CONSUMER_LAMBDA
    if kms:
        raw.update({c.CONFIG_ENCRYPTION: "KMS", c.CONFIG_KMS_KEY_ARN: kms})
    elif not encrypted:
        raw[c.CONFIG_ENCRYPTION] = "NONE"
    config = parse_config(raw, stack=stack, project_dir=project_dir)
    check_key_placement(config.customer_key_arn, cross_account=config.kms_key_cross_account)
    # An Output is checked once known; the role policy that names it waits for it.
    stream_arn = pulumi.Output.from_input(given).apply(
        lambda arn: checked_stream_arn(arn, config.stream_name)
    )
    return ConsumerInputs.of(config, stream_arn, project_dir)


def checked_stream_arn(arn: str, stream_name: str) -> str:
    """The stream's ARN, refused unless it names exactly the stream (a Resource of the policy)."""
    shape = re.fullmatch(r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[^:]+:stream/(.+)", arn or "")
    if shape is None or shape.group(1) != stream_name or any(ch in arn for ch in "*?$"):
        raise ConfigError(
            [
                f"streamArn {arn!r}: must be the ARN of stream {stream_name!r}, "
                f"arn:aws:kinesis:<region>:<account>:stream/{stream_name}, without wildcards "
                "(the consumer's role is granted reads on exactly this ARN)"
            ]
        )
    return arn


class CohortConsumer(pulumi.ComponentResource):
    """Reads the cohort stream with Lambda into DynamoDB membership; failures kept in SQS."""

    membership_table: aws.dynamodb.Table
    """One item per (cohort, user): pk cohort_id, sk user_id, in_cohort."""
    idempotency_table: aws.dynamodb.Table
    """Powertools' idempotency records: each message_id applied once."""
    failure_queue: aws.sqs.Queue
    """Poison records and the mapping's on-failure messages."""
    log_group: aws.cloudwatch.LogGroup
    """The function's JSON logs."""
    role: aws.iam.Role
    """The role Lambda assumes to run the function."""
    role_policy: aws.iam.RolePolicy
    """The function's least-privilege grants."""
    function: aws.lambda_.Function
    """The Lambda function applying cohort messages to the membership table."""
    mapping: aws.lambda_.EventSourceMapping
    """The Kinesis event source mapping feeding the function."""
    alarms: list[aws.cloudwatch.MetricAlarm]
    """Iterator-age and failure-queue alarms (none with consumerAlarms false)."""

    def __init__(
        self, name: str, args: CohortConsumerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Validated before anything is registered; a relative archive is the program's directory's.
        self._declare(name, read_inputs(args, pulumi.get_stack(), Path.cwd()), opts)

    @classmethod
    def from_inputs(
        cls, name: str, inputs: ConsumerInputs, opts: pulumi.ResourceOptions | None = None
    ) -> "CohortConsumer":
        """The component from config the program has already parsed."""
        component = cls.__new__(cls)
        component._declare(name, inputs, opts)
        return component

    def _declare(
        self, name: str, args: ConsumerInputs, opts: pulumi.ResourceOptions | None
    ) -> None:
        super().__init__(c.CONSUMER_COMPONENT_TYPE, name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags) or None
        base = consumer_base_name(args.stream_name)
        function_name = base

        self.membership_table = aws.dynamodb.Table(
            f"{name}-membership",
            name=f"{base}-membership",
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name="pk", type="S"),
                aws.dynamodb.TableAttributeArgs(name="sk", type="S"),
            ],
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=_table_encryption(args),
            tags=tags,
            opts=child,
        )
        self.idempotency_table = aws.dynamodb.Table(
            f"{name}-idempotency",
            name=f"{base}-idempotency",
            billing_mode="PAY_PER_REQUEST",
            hash_key="id",
            attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=c.IDEMPOTENCY_TTL_ATTRIBUTE, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=_table_encryption(args),
            tags=tags,
            opts=child,
        )
        # SQS-managed encryption: the sender needs no KMS grant, so neither the function (poison
        # records) nor Lambda's on-failure delivery can be refused by a key policy.
        self.failure_queue = aws.sqs.Queue(
            f"{name}-failures",
            name=f"{base}-failures",
            sqs_managed_sse_enabled=True,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            max_message_size=c.FAILURE_QUEUE_MAX_MESSAGE_BYTES,
            tags=tags,
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name(function_name),
            retention_in_days=cfg.log_retention_days,
            tags=tags,
            opts=child,
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            name=f"{base}-role",
            description=f"Assumed by Lambda to apply stream {args.stream_name} to DynamoDB.",
            assume_role_policy=json.dumps(lambda_trust_policy()),
            tags=tags,
            opts=child,
        )
        document = pulumi.Output.all(
            args.stream_arn,
            self.membership_table.arn,
            self.idempotency_table.arn,
            self.failure_queue.arn,
            self.log_group.arn,
        ).apply(
            lambda arns: json.dumps(
                consumer_policy(
                    stream_arn=arns[0],
                    membership_table_arn=arns[1],
                    idempotency_table_arn=arns[2],
                    queue_arn=arns[3],
                    log_group_arn=arns[4],
                    kms_key_arn=args.kms_key_arn,
                )
            )
        )
        self.role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            name=f"{base}-policy",
            role=self.role.name,
            policy=document,
            opts=child,
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description=f"Applies cohort messages from Kinesis stream {args.stream_name} to "
            "DynamoDB membership.",
            role=self.role.arn,
            runtime=c.LAMBDA_RUNTIME,
            handler=c.LAMBDA_HANDLER,
            architectures=[cfg.architecture],
            code=pulumi.FileArchive(str(_archive(args))),
            memory_size=cfg.memory_mb,
            timeout=cfg.timeout_seconds,
            reserved_concurrent_executions=cfg.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    c.MEMBERSHIP_TABLE_ENV: self.membership_table.name,
                    c.IDEMPOTENCY_TABLE_ENV: self.idempotency_table.name,
                    c.FAILURE_QUEUE_ENV: self.failure_queue.url,
                }
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON", log_group=self.log_group.name
            ),
            tags=tags,
            # Its first invocation must already find its permissions and its log group.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy]),
        )
        self.mapping = aws.lambda_.EventSourceMapping(
            f"{name}-mapping",
            event_source_arn=args.stream_arn,
            function_name=self.function.arn,
            starting_position=c.STARTING_POSITION,
            batch_size=cfg.batch_size,
            maximum_batching_window_in_seconds=cfg.batching_window_seconds,
            parallelization_factor=cfg.parallelization_factor,
            maximum_retry_attempts=cfg.max_retries,
            maximum_record_age_in_seconds=cfg.max_record_age_seconds,
            bisect_batch_on_function_error=True,
            function_response_types=[c.REPORT_BATCH_ITEM_FAILURES],
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=self.failure_queue.arn
                )
            ),
            tags=tags,
            # The mapping polls with the function's role: its read grant must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy]),
        )
        self.alarms = []
        if cfg.alarms:
            function = {"FunctionName": self.function.name}
            queue = {"QueueName": self.failure_queue.name}
            specs = [
                (
                    _AlarmSpec(
                        "iterator-age",
                        "The Lambda consumer is more than an hour behind the stream.",
                        "AWS/Lambda",
                        "IteratorAge",
                        "Maximum",
                        c.ITERATOR_AGE_ALARM_MILLISECONDS,
                    ),
                    function,
                ),
                (
                    _AlarmSpec(
                        "failures-visible",
                        "Records the consumer could not apply wait in the failure queue.",
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "Maximum",
                        0,
                    ),
                    queue,
                ),
                (
                    _AlarmSpec(
                        "errors",
                        "An invocation of the Lambda consumer failed (raised or timed out).",
                        "AWS/Lambda",
                        "Errors",
                        "Sum",
                        0,
                    ),
                    function,
                ),
                (
                    _AlarmSpec(
                        "throttles",
                        "Lambda refused invocations of the consumer (concurrency exhausted).",
                        "AWS/Lambda",
                        "Throttles",
                        "Sum",
                        0,
                    ),
                    function,
                ),
            ]
            self.alarms = [
                _alarm(name, base, spec, dimensions, tags, child) for spec, dimensions in specs
            ]
        self.register_outputs(
            {
                c.OUTPUT_MEMBERSHIP_TABLE: self.membership_table.name,
                c.OUTPUT_IDEMPOTENCY_TABLE: self.idempotency_table.name,
                c.OUTPUT_FUNCTION_ARN: self.function.arn,
                c.OUTPUT_FAILURE_QUEUE_URL: self.failure_queue.url,
            }
        )


@dataclass(frozen=True)
class _AlarmSpec:
    suffix: str
    description: str
    namespace: str
    metric_name: str
    statistic: str
    threshold: int


def _alarm(
    name: str,
    base: str,
    spec: _AlarmSpec,
    dimensions: Mapping[str, pulumi.Input[str]],
    tags: dict[str, str] | None,
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.MetricAlarm:
    """One alarm: over its threshold in any ALARM_PERIOD_SECONDS; no data is not a breach."""
    return aws.cloudwatch.MetricAlarm(
        f"{name}-{spec.suffix}",
        name=f"{base}-{spec.suffix}",
        alarm_description=spec.description,
        namespace=spec.namespace,
        metric_name=spec.metric_name,
        dimensions=dict(dimensions),
        statistic=spec.statistic,
        period=c.ALARM_PERIOD_SECONDS,
        evaluation_periods=1,
        threshold=spec.threshold,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        tags=tags,
        opts=opts,
    )


def _archive(args: ConsumerInputs) -> Path:
    path = Path(args.config.archive_path)
    return path if path.is_absolute() else args.project_dir / path


def _table_encryption(args: ConsumerInputs) -> aws.dynamodb.TableServerSideEncryptionArgs:
    # Like the stream: the customer's key when it has one, else AWS-managed (alias/aws/dynamodb)
    # when the stream is encrypted; DynamoDB's AWS-owned key (always on) when it is not.
    if args.kms_key_arn is not None:
        return aws.dynamodb.TableServerSideEncryptionArgs(
            enabled=True, kms_key_arn=args.kms_key_arn
        )
    return aws.dynamodb.TableServerSideEncryptionArgs(enabled=args.encrypted)
