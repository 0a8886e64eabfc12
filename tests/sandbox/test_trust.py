"""The pure trust-policy evaluator: AWS's sts:AssumeRole semantics over plain documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioning.constants import AMPLITUDE_ACCOUNT_ID
from provisioning.policies import trust_policy
from sandbox.trust import TrustDecision, evaluate_trust

pytestmark = pytest.mark.unit

CUSTOMER = "123456789012"
STRANGER = "210987654321"
AMPLITUDE_USER = f"arn:aws:iam::{AMPLITUDE_ACCOUNT_ID}:user/amplitude-exporter"
STRANGER_USER = f"arn:aws:iam::{STRANGER}:user/mallory"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _allow(principal: Any, action: Any = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, **extra}


def _decide(
    policy: dict[str, Any] | str,
    caller_arn: str = AMPLITUDE_USER,
    external_id: str | None = None,
) -> TrustDecision:
    account = caller_arn.split(":")[4]
    return evaluate_trust(
        policy, caller_arn=caller_arn, caller_account=account, external_id=external_id
    )


@pytest.mark.parametrize(
    ("principal", "caller", "allowed", "via_account"),
    [
        # The product's own trust policy: Amplitude's account root.
        ({"AWS": f"arn:aws:iam::{AMPLITUDE_ACCOUNT_ID}:root"}, AMPLITUDE_USER, True, True),
        ({"AWS": f"arn:aws:iam::{AMPLITUDE_ACCOUNT_ID}:root"}, STRANGER_USER, False, False),
        # A bare account id means the same as its root ARN.
        ({"AWS": AMPLITUDE_ACCOUNT_ID}, AMPLITUDE_USER, True, True),
        ({"AWS": AMPLITUDE_ACCOUNT_ID}, STRANGER_USER, False, False),
        # An exact user ARN names that user only.
        ({"AWS": AMPLITUDE_USER}, AMPLITUDE_USER, True, False),
        ({"AWS": f"arn:aws:iam::{AMPLITUDE_ACCOUNT_ID}:user/other"}, AMPLITUDE_USER, False, False),
        # A role principal matches any session of that role, whatever the role's path.
        (
            {"AWS": f"arn:aws:iam::{STRANGER}:role/ops/deployer"},
            f"arn:aws:sts::{STRANGER}:assumed-role/deployer/session-1",
            True,
            False,
        ),
        (
            {"AWS": f"arn:aws:iam::{STRANGER}:role/deployer"},
            f"arn:aws:sts::{STRANGER}:assumed-role/other/session-1",
            False,
            False,
        ),
        # A session principal names exactly that session.
        (
            {"AWS": f"arn:aws:sts::{STRANGER}:assumed-role/deployer/s1"},
            f"arn:aws:sts::{STRANGER}:assumed-role/deployer/s2",
            False,
            False,
        ),
        # A list matches when any member does.
        ({"AWS": [STRANGER, AMPLITUDE_USER]}, AMPLITUDE_USER, True, False),
        ({"AWS": [STRANGER, AMPLITUDE_USER]}, STRANGER_USER, True, True),
        ({"AWS": [CUSTOMER, AMPLITUDE_USER]}, STRANGER_USER, False, False),
        # "*" trusts everyone, as a string or inside AWS.
        ("*", STRANGER_USER, True, False),
        ({"AWS": "*"}, STRANGER_USER, True, False),
        # Service principals never match an IAM caller.
        ({"Service": "lambda.amazonaws.com"}, AMPLITUDE_USER, False, False),
    ],
)
def test_principal_matching(principal: Any, caller: str, allowed: bool, via_account: bool) -> None:
    decision = _decide(_policy(_allow(principal)), caller)

    assert decision.allowed is allowed, decision.reason
    assert decision.via_account is via_account


def test_product_trust_policy_trusts_amplitude_only() -> None:
    # GIVEN the document provisioning.policies builds, as the JSON string IAM stores
    policy = json.dumps(trust_policy(AMPLITUDE_ACCOUNT_ID))

    # WHEN Amplitude's exporter and a stranger ask
    amplitude = _decide(policy, AMPLITUDE_USER)
    stranger = _decide(policy, STRANGER_USER)

    # THEN only Amplitude is trusted, through its account (so its identity policy must agree)
    assert amplitude == TrustDecision(
        True,
        "allowed by statement AmplitudeAssumeRole"
        f" (principal arn:aws:iam::{AMPLITUDE_ACCOUNT_ID}:root)",
        via_account=True,
    )
    assert not stranger.allowed
    assert stranger.reason == f"no statement trusts {STRANGER_USER} for sts:AssumeRole"


def test_statement_may_be_a_single_object() -> None:
    policy = {"Version": "2012-10-17", "Statement": _allow({"AWS": AMPLITUDE_ACCOUNT_ID})}

    assert _decide(policy).allowed


@pytest.mark.parametrize(
    "deny_principal",
    [{"AWS": AMPLITUDE_USER}, {"AWS": AMPLITUDE_ACCOUNT_ID}, "*"],
)
@pytest.mark.parametrize("deny_first", [True, False])
def test_deny_overrides_allow(deny_principal: Any, deny_first: bool) -> None:
    allow = _allow({"AWS": "*"}, Sid="Everyone")
    deny = {"Sid": "NotYou", "Effect": "Deny", "Principal": deny_principal, "Action": "sts:*"}
    statements = (deny, allow) if deny_first else (allow, deny)

    decision = _decide(_policy(*statements))

    assert decision == TrustDecision(False, "explicitly denied by statement NotYou")


def test_deny_for_someone_else_does_not_block() -> None:
    deny = {"Effect": "Deny", "Principal": {"AWS": STRANGER}, "Action": "sts:AssumeRole"}

    assert _decide(_policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}), deny)).allowed


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        ("sts:AssumeRole", True),
        (["sts:TagSession", "sts:AssumeRole"], True),
        ("sts:*", True),
        ("*", True),
        ("STS:assumerole", True),  # action names are case-insensitive
        ("sts:Assume*", True),
        ("sts:AssumeRoleWithWebIdentity", False),
        (["sts:TagSession"], False),
        ("kinesis:PutRecord", False),
    ],
)
def test_action_must_cover_assume_role(action: Any, allowed: bool) -> None:
    decision = _decide(_policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, action)))

    assert decision.allowed is allowed


def test_not_action_excluding_assume_role_does_not_grant_it() -> None:
    statement = {"Effect": "Allow", "Principal": "*", "NotAction": "sts:AssumeRole"}

    assert not _decide(_policy(statement)).allowed


@pytest.mark.parametrize(
    ("external_id", "allowed"),
    [("the-right-id", True), ("the-wrong-id", False), (None, False), ("THE-RIGHT-ID", False)],
)
def test_string_equals_external_id(external_id: str | None, allowed: bool) -> None:
    policy = trust_policy(AMPLITUDE_ACCOUNT_ID, external_id="the-right-id")

    decision = _decide(policy, external_id=external_id)

    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == (
            "statement AmplitudeAssumeRole: condition StringEquals sts:ExternalId not met"
        )


@pytest.mark.parametrize(
    ("external_id", "allowed"),
    [("tenant-42", True), ("tenant-", True), ("tenant", False), ("other-42", False), (None, False)],
)
def test_string_like_external_id(external_id: str | None, allowed: bool) -> None:
    condition = {"StringLike": {"sts:ExternalId": "tenant-*"}}
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, Condition=condition))

    assert _decide(policy, external_id=external_id).allowed is allowed


@pytest.mark.parametrize(
    ("external_id", "allowed"),
    [("anything", True), (None, True), ("banned", False)],
)
def test_string_not_equals_external_id(external_id: str | None, allowed: bool) -> None:
    # AWS: a missing key satisfies a negated operator.
    condition = {"StringNotEquals": {"sts:ExternalId": ["banned"]}}
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, Condition=condition))

    assert _decide(policy, external_id=external_id).allowed is allowed


def test_condition_key_names_are_case_insensitive() -> None:
    condition = {"StringEquals": {"STS:externalid": "abc-123"}}
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, Condition=condition))

    assert _decide(policy, external_id="abc-123").allowed


def test_deny_with_unmet_condition_does_not_apply() -> None:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "blocked"}},
    }
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}), deny)

    assert _decide(policy, external_id="fine").allowed
    assert not _decide(policy, external_id="blocked").allowed


@pytest.mark.parametrize(
    "operator", ["Bool", "ForAnyValue:StringEquals", "ArnLike", "StringEqualsIgnoreCase"]
)
def test_unknown_operator_fails_closed(operator: str) -> None:
    condition = {operator: {"sts:ExternalId": "x"}}
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, Sid="Odd", Condition=condition))

    decision = _decide(policy, external_id="x")

    assert decision == TrustDecision(
        False, f"statement Odd: condition operator {operator!r} unsupported (fail closed)"
    )


def test_if_exists_suffix_is_understood() -> None:
    condition = {"StringEqualsIfExists": {"sts:ExternalId": "abc-123"}}
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}, Condition=condition))

    assert _decide(policy, external_id=None).allowed
    assert not _decide(policy, external_id="other").allowed


def test_named_principal_beats_account_grant() -> None:
    # GIVEN the caller is trusted both by account and by name
    policy = _policy(_allow({"AWS": AMPLITUDE_ACCOUNT_ID}), _allow({"AWS": AMPLITUDE_USER}))

    # THEN the decision says no identity grant is needed
    assert _decide(policy).via_account is False


def test_not_principal_fails_closed() -> None:
    statement = {"Effect": "Allow", "NotPrincipal": {"AWS": STRANGER}, "Action": "sts:AssumeRole"}

    decision = _decide(_policy(statement))

    assert decision == TrustDecision(
        False, "statement #0: NotPrincipal is not supported (fail closed)"
    )


def test_empty_policy_trusts_nobody() -> None:
    assert not _decide(_policy()).allowed


LAMBDA_SERVICE = "arn:aws:iam::999999999999:user/lambda.amazonaws.com"


@pytest.mark.parametrize(
    ("principal", "service", "allowed"),
    [
        ({"Service": "lambda.amazonaws.com"}, "lambda.amazonaws.com", True),
        ({"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}, "lambda.amazonaws.com", True),
        ({"Service": "ec2.amazonaws.com"}, "lambda.amazonaws.com", False),
        # The service is not an IAM principal of its stand-in's account.
        ({"AWS": "arn:aws:iam::999999999999:root"}, "lambda.amazonaws.com", False),
        # And an IAM caller never matches a Service principal.
        ({"Service": "lambda.amazonaws.com"}, None, False),
    ],
)
def test_service_principals_match_only_that_service(
    principal: dict[str, Any], service: str | None, allowed: bool
) -> None:
    decision = evaluate_trust(
        _policy(_allow(principal)),
        caller_arn=LAMBDA_SERVICE,
        caller_account="999999999999",
        external_id=None,
        caller_service=service,
    )

    assert decision.allowed is allowed
    assert decision.via_account is False
