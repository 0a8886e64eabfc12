"""IAM policy documents for the destination, as pure functions over plain strings."""

from __future__ import annotations

from typing import Any

from provisioning import constants as c

PolicyDocument = dict[str, Any]


def trust_policy(trusted_account_id: str, external_id: str | None = None) -> PolicyDocument:
    """Let exactly one account (Amplitude's by default) assume the role, maybe by external ID."""
    statement: dict[str, Any] = {
        "Sid": "AmplitudeAssumeRole",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{trusted_account_id}:root"},
        "Action": c.ASSUME_ROLE_ACTION,
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {c.EXTERNAL_ID_CONDITION_KEY: external_id}}
    return {"Version": c.POLICY_VERSION, "Statement": [statement]}


def write_policy(stream_arn: str, role_arn: str, kms_key_arn: str | None = None) -> PolicyDocument:
    """Amplitude's template split by resource: writes to the stream, simulation on the role only."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteCohortStream",
            "Effect": "Allow",
            "Action": list(c.KINESIS_WRITE_ACTIONS),
            "Resource": stream_arn,
        },
        {
            "Sid": "SimulateOwnPolicy",
            "Effect": "Allow",
            "Action": c.SIMULATE_ACTION,
            "Resource": role_arn,
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {
                "Sid": "EncryptWithStreamKey",
                "Effect": "Allow",
                "Action": c.KMS_WRITE_ACTION,
                "Resource": kms_key_arn,
            }
        )
    return {"Version": c.POLICY_VERSION, "Statement": statements}


def lambda_trust_policy() -> PolicyDocument:
    """Let only the Lambda service assume the consumer function's role."""
    return {
        "Version": c.POLICY_VERSION,
        "Statement": [
            {
                "Sid": "LambdaAssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": c.LAMBDA_SERVICE_PRINCIPAL},
                "Action": c.ASSUME_ROLE_ACTION,
            }
        ],
    }


def log_streams_of(log_group_arn: str) -> str:
    """AWS's documented resource for writing one log group's streams: `<log group ARN>:*`."""
    # Lambda names its log streams itself (date and instance), so they cannot be listed; this is
    # the one wildcard in the project's policies, and it cannot reach beyond this log group.
    return f"{log_group_arn}:*"


def consumer_policy(
    *,
    stream_arn: str,
    membership_table_arn: str,
    idempotency_table_arn: str,
    queue_arn: str,
    log_group_arn: str,
    kms_key_arn: str | None = None,
) -> PolicyDocument:
    """The consumer function's grants: its stream, its two tables, its queue, its own logs."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadCohortStream",
            "Effect": "Allow",
            "Action": list(c.KINESIS_MAPPING_READ_ACTIONS),
            "Resource": stream_arn,
        },
        {
            "Sid": "WriteMembership",
            "Effect": "Allow",
            "Action": list(c.MEMBERSHIP_TABLE_ACTIONS),
            "Resource": membership_table_arn,
        },
        {
            "Sid": "TrackIdempotency",
            "Effect": "Allow",
            "Action": list(c.IDEMPOTENCY_TABLE_ACTIONS),
            "Resource": idempotency_table_arn,
        },
        {
            "Sid": "SendFailures",
            "Effect": "Allow",
            "Action": c.QUEUE_SEND_ACTION,
            "Resource": queue_arn,
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": list(c.LOG_WRITE_ACTIONS),
            "Resource": log_streams_of(log_group_arn),
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {
                "Sid": "DecryptWithStreamKey",
                "Effect": "Allow",
                "Action": c.KMS_READ_ACTION,
                "Resource": kms_key_arn,
            }
        )
    return {"Version": c.POLICY_VERSION, "Statement": statements}
