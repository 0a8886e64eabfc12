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
