"""Evaluate a role trust policy for sts:AssumeRole the way AWS does, as a pure function."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioning import constants as c

_ACCOUNT_ID = re.compile(r"\d{12}")
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<rest>.+)"
)
# Operators whose semantics this evaluator knows; each may carry AWS's IfExists suffix.
_KNOWN_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike")


@dataclass(frozen=True)
class TrustDecision:
    """Whether a trust policy lets the caller assume the role, and why."""

    allowed: bool
    reason: str
    # True when the allow rests on an account principal (":root" or a bare account id): AWS then
    # also requires the caller's own identity policy to allow sts:AssumeRole on the role.
    via_account: bool = False


@dataclass(frozen=True)
class _Caller:
    arn: str
    account: str
    key: tuple[str, str, str] | None  # (account, kind, name) of the IAM principal behind the ARN
    service: str | None = None  # an AWS service principal (lambda.amazonaws.com) acting itself


def evaluate_trust(
    policy: Mapping[str, Any] | str,
    *,
    caller_arn: str,
    caller_account: str,
    external_id: str | None,
    caller_service: str | None = None,
) -> TrustDecision:
    """Decide sts:AssumeRole for one caller: explicit Deny wins, then any matching Allow.

    With `caller_service`, the caller is that AWS service (the sandbox's stand-in for Lambda
    assuming a function's role): only `{"Service": ...}` principals naming it (or "*") match.
    """
    document: Mapping[str, Any] = json.loads(policy) if isinstance(policy, str) else policy
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    caller = _Caller(caller_arn, caller_account, _principal_key(caller_arn), caller_service)
    context = {} if external_id is None else {c.EXTERNAL_ID_CONDITION_KEY.lower(): external_id}

    grants: list[TrustDecision] = []
    unmet: str | None = None
    for index, statement in enumerate(statements):
        sid = statement.get("Sid") or f"#{index}"
        if not _action_applies(statement, c.ASSUME_ROLE_ACTION):
            continue
        if "NotPrincipal" in statement:
            return TrustDecision(
                False, f"statement {sid}: NotPrincipal is not supported (fail closed)"
            )
        match = _principal_match(statement.get("Principal"), caller)
        if match is None:
            continue
        conditions = statement.get("Condition", {})
        unknown = _unknown_operators(conditions)
        if unknown:
            return TrustDecision(
                False,
                f"statement {sid}: condition operator {unknown[0]!r} unsupported (fail closed)",
            )
        failed = _failed_condition(conditions, context)
        if failed is not None:
            if statement.get("Effect") == "Allow":
                unmet = unmet or f"statement {sid}: condition {failed} not met"
            continue
        if statement.get("Effect") == "Deny":
            return TrustDecision(False, f"explicitly denied by statement {sid}")
        if statement.get("Effect") == "Allow":
            principal, via_account = match
            reason = f"allowed by statement {sid} (principal {principal})"
            grants.append(TrustDecision(True, reason, via_account=via_account))
    if grants:
        # A statement naming the caller itself is the stronger grant: no identity policy needed.
        return min(grants, key=lambda grant: grant.via_account)
    return TrustDecision(
        False, unmet or f"no statement trusts {caller_arn} for {c.ASSUME_ROLE_ACTION}"
    )


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, *, ignore_case: bool) -> bool:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _action_applies(statement: Mapping[str, Any], action: str) -> bool:
    # IAM action names are case-insensitive and may use * and ? wildcards.
    if "NotAction" in statement:
        return not any(_glob(p, action, ignore_case=True) for p in _as_list(statement["NotAction"]))
    return any(_glob(p, action, ignore_case=True) for p in _as_list(statement.get("Action", [])))


def _principal_key(arn: str) -> tuple[str, str, str] | None:
    """(account, kind, name) of the principal an ARN denotes; a role session denotes its role."""
    found = _ARN.fullmatch(arn)
    if found is None:
        return None
    account, rest = found["account"], found["rest"]
    if found["service"] == "sts" and rest.startswith("assumed-role/"):
        return (account, "role", rest.split("/")[1])
    kind, _, name = rest.partition("/")
    if kind in ("user", "role") and name:
        # Names are unique per account, so the path does not take part in matching.
        return (account, kind, name.rsplit("/", 1)[-1])
    return None


def _principal_match(principal: Any, caller: _Caller) -> tuple[str, bool] | None:
    """The principal value that names the caller and whether it names the whole account."""
    if principal == "*":
        return ("*", False)
    if caller.service is not None:
        if isinstance(principal, Mapping) and caller.service in _as_list(
            principal.get("Service", [])
        ):
            return (caller.service, False)
        return None  # a service never matches an AWS (account, user or role) principal
    if not isinstance(principal, Mapping) or "AWS" not in principal:
        return None  # Service and Federated principals never match an IAM caller.
    for value in _as_list(principal["AWS"]):
        if value == "*":
            return (value, False)
        if _ACCOUNT_ID.fullmatch(value):
            if value == caller.account:
                return (value, True)
            continue
        found = _ARN.fullmatch(value)
        if found is None:
            continue
        if found["service"] == "iam" and found["rest"] == "root":
            if found["account"] == caller.account:
                return (value, True)
            continue
        if found["service"] == "sts":
            # A session principal names exactly one session.
            if value == caller.arn:
                return (value, False)
            continue
        key = _principal_key(value)
        if key is not None and key == caller.key:
            return (value, False)
    return None


def _split_operator(operator: str) -> tuple[str, bool]:
    if operator.endswith("IfExists"):
        return operator[: -len("IfExists")], True
    return operator, False


def _unknown_operators(conditions: Mapping[str, Any]) -> list[str]:
    return [op for op in conditions if _split_operator(op)[0] not in _KNOWN_OPERATORS]


def _failed_condition(conditions: Mapping[str, Any], context: Mapping[str, str]) -> str | None:
    """The first condition the request context does not satisfy, rendered for a reason."""
    for operator, pairs in conditions.items():
        base, if_exists = _split_operator(operator)
        for key, expected in pairs.items():
            actual = context.get(key.lower())  # condition keys are case-insensitive
            if not _condition_holds(base, if_exists, _as_list(expected), actual):
                return f"{operator} {key}"
    return None


def _condition_holds(
    operator: str, if_exists: bool, expected: Iterable[str], actual: str | None
) -> bool:
    if actual is None:
        # AWS: a missing key fails positive operators and satisfies negated ones.
        return if_exists or operator == "StringNotEquals"
    if operator == "StringEquals":
        return actual in expected
    if operator == "StringNotEquals":
        return actual not in expected
    return any(_glob(pattern, actual, ignore_case=False) for pattern in expected)
