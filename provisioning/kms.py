"""The customer-managed KMS key's placement: in the stack's region, and account unless stated."""

from __future__ import annotations

import re

import pulumi_aws

from provisioning import aws_rules
from provisioning import constants as c
from provisioning.errors import ConfigError


def key_region_problem(arn: str, region: str) -> str | None:
    """A customer-managed key in another region than the stack's.

    Kinesis: "The KMS key must be in the same Region as the stream"
    (https://docs.aws.amazon.com/streams/latest/dev/what-is-sse.html); DynamoDB's tables too.
    """
    key_region = aws_rules.arn_region(arn)
    if key_region == region:
        return None
    return (
        f"{c.CONFIG_KMS_KEY_ARN} {arn!r}: the key is in {key_region}, the stack in {region}; "
        "Kinesis and DynamoDB need a key in the stream's region (use a key, or a "
        f"multi-Region replica, in {region})"
    )


def key_account_problem(arn: str, account_id: str) -> str | None:
    """A customer-managed key of another account than the stack's (unless stated, an error)."""
    key_account = aws_rules.arn_account(arn)
    if key_account == account_id:
        return None
    return (
        f"{c.CONFIG_KMS_KEY_ARN} {arn!r}: the key belongs to account {key_account}, the stack "
        f"deploys to {account_id}; set {c.CONFIG_KMS_KEY_CROSS_ACCOUNT} true if that is intended "
        "(the key's policy must then grant this account), or use a key of this account"
    )


def check_key_placement(arn: str | None, *, cross_account: bool) -> None:
    """A customer-managed key must be in the provider's region, and in its account unless the
    stack states otherwise.

    Only the provider knows both (its region may come from the environment, its account from
    its credentials), so this asks it, as `aws.get_region` and `aws.get_caller_identity` do,
    before any resource is declared.
    """
    if arn is None:
        return
    problems = []
    region = pulumi_aws.get_region().region
    region_problem = key_region_problem(arn, region) if region else None
    if region_problem is not None:
        problems.append(region_problem)
    if not cross_account:
        account = pulumi_aws.get_caller_identity().account_id
        # A preview without credentials answers with a placeholder: nothing to compare then.
        if re.fullmatch(r"\d{12}", account):
            account_problem = key_account_problem(arn, account)
            if account_problem is not None:
                problems.append(account_problem)
    if problems:
        raise ConfigError(problems)
