"""Policy documents: Amplitude's template made tighter, no wildcard, linted by parliament."""

import json

import parliament
import pytest

from provisioning import constants as c
from provisioning.policies import (
    consumer_policy,
    lambda_trust_policy,
    trust_policy,
    write_policy,
)
from tests.oracle import actions_and_resources

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/amplitude-cohorts"
ROLE = "arn:aws:iam::123456789012:role/amplitude-kinesis-cohort"
CMK = "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"

# Amplitude's documented template, with its placeholders filled in.
TEMPLATE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["kinesis:PutRecord", "kinesis:PutRecords", "iam:SimulatePrincipalPolicy"],
            "Resource": [STREAM, ROLE],
        }
    ],
}


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_trust_policy_names_only_amplitudes_account() -> None:
    document = trust_policy(c.AMPLITUDE_ACCOUNT_ID)

    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AmplitudeAssumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::358203115967:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def test_trust_policy_with_external_id_requires_it_exactly() -> None:
    (statement,) = trust_policy("111122223333", "ext-42")["Statement"]

    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "ext-42"}}


def test_write_policy_grants_exactly_the_split_template() -> None:
    document = write_policy(STREAM, ROLE)

    assert actions_and_resources(document) == {
        ("kinesis:PutRecord", STREAM),
        ("kinesis:PutRecords", STREAM),
        ("iam:SimulatePrincipalPolicy", ROLE),
    }


def test_write_policy_is_a_subset_of_amplitudes_template() -> None:
    # Equivalent for Amplitude (every pair it uses is granted) and tighter (nothing else is).
    granted = actions_and_resources(write_policy(STREAM, ROLE))
    template = actions_and_resources(TEMPLATE)

    assert granted < template
    assert template - granted == {
        ("kinesis:PutRecord", ROLE),
        ("kinesis:PutRecords", ROLE),
        ("iam:SimulatePrincipalPolicy", STREAM),
    }


def test_customer_managed_key_adds_generate_data_key_on_that_key_only() -> None:
    document = write_policy(STREAM, ROLE, CMK)

    assert actions_and_resources(document) - actions_and_resources(write_policy(STREAM, ROLE)) == {
        ("kms:GenerateDataKey", CMK)
    }


@pytest.mark.parametrize(
    "document",
    [
        write_policy(STREAM, ROLE),
        write_policy(STREAM, ROLE, CMK),
        trust_policy(c.AMPLITUDE_ACCOUNT_ID),
        trust_policy(c.AMPLITUDE_ACCOUNT_ID, "ext-42"),
    ],
)
def test_no_wildcard_anywhere(document: dict[str, object]) -> None:
    assert not [s for s in _strings(document) if "*" in s or "?" in s]


@pytest.mark.parametrize("kms_key", [None, CMK])
def test_parliament_reports_no_findings_on_write_policy(kms_key: str | None) -> None:
    policy = parliament.analyze_policy_string(
        json.dumps(write_policy(STREAM, ROLE, kms_key)), include_community_auditors=True
    )

    assert [(f.issue, f.detail) for f in policy.findings] == []


def test_parliament_would_catch_a_widened_policy() -> None:
    # The linter is live: the same call flags a wildcard resource.
    widened = write_policy(STREAM, ROLE)
    widened["Statement"][0]["Resource"] = "*"

    findings = parliament.analyze_policy_string(json.dumps(widened)).findings

    assert "RESOURCE_STAR" in {f.issue for f in findings}


# --- the Lambda consumer's role ---------------------------------------------------------------

MEMBERSHIP = "arn:aws:dynamodb:us-east-1:123456789012:table/amplitude-cohorts-consumer-membership"
IDEMPOTENCY = "arn:aws:dynamodb:us-east-1:123456789012:table/amplitude-cohorts-consumer-idempotency"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:amplitude-cohorts-consumer-failures"
LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/amplitude-cohorts-consumer"


def _consumer(kms_key: str | None = None) -> dict[str, object]:
    return consumer_policy(
        stream_arn=STREAM,
        membership_table_arn=MEMBERSHIP,
        idempotency_table_arn=IDEMPOTENCY,
        queue_arn=QUEUE,
        log_group_arn=LOG_GROUP,
        kms_key_arn=kms_key,
    )


def test_consumer_policy_grants_exactly_what_the_mapping_and_handler_use() -> None:
    assert actions_and_resources(_consumer()) == {
        ("kinesis:DescribeStream", STREAM),
        ("kinesis:DescribeStreamSummary", STREAM),
        ("kinesis:GetRecords", STREAM),
        ("kinesis:GetShardIterator", STREAM),
        ("kinesis:ListShards", STREAM),
        ("dynamodb:PutItem", MEMBERSHIP),
        ("dynamodb:DeleteItem", IDEMPOTENCY),
        ("dynamodb:GetItem", IDEMPOTENCY),
        ("dynamodb:PutItem", IDEMPOTENCY),
        ("dynamodb:UpdateItem", IDEMPOTENCY),
        ("sqs:SendMessage", QUEUE),
        ("logs:CreateLogStream", f"{LOG_GROUP}:*"),
        ("logs:PutLogEvents", f"{LOG_GROUP}:*"),
    }


def test_consumer_policy_decrypts_with_a_customer_key_only() -> None:
    assert actions_and_resources(_consumer(CMK)) - actions_and_resources(_consumer()) == {
        ("kms:Decrypt", CMK)
    }


def test_lambda_trust_policy_names_only_the_lambda_service() -> None:
    assert lambda_trust_policy() == {
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


@pytest.mark.parametrize("kms_key", [None, CMK])
def test_consumer_policy_has_one_wildcard_the_log_streams_of_its_own_group(
    kms_key: str | None,
) -> None:
    # Lambda names its log streams itself, so `<log group ARN>:*` (AWS's documented resource)
    # is the only way to let it write them; nothing else may carry a wildcard.
    wildcards = [s for s in _strings(_consumer(kms_key)) if "*" in s or "?" in s]

    assert wildcards == [f"{LOG_GROUP}:*"]
    assert not [s for s in _strings(lambda_trust_policy()) if "*" in s or "?" in s]


@pytest.mark.parametrize("kms_key", [None, CMK])
def test_parliament_reports_no_findings_on_consumer_policy(kms_key: str | None) -> None:
    policy = parliament.analyze_policy_string(
        json.dumps(_consumer(kms_key)), include_community_auditors=True
    )

    assert [(f.issue, f.detail) for f in policy.findings] == []
