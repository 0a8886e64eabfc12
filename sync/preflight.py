"""Amplitude's check before it delivers: can the role write to the stream? One line per check."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from provisioning.constants import KINESIS_WRITE_ACTIONS, SIMULATE_ACTION
from sync.destination import Destination
from sync.errors import PreflightError

_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One thing Amplitude needs, whether it holds, and what to do when it does not."""

    name: str
    passed: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        """`PASS name: detail` or `FAIL name: detail — fix: ...`."""
        line = f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"
        return line if self.passed else f"{line} — fix: {self.fix}"


@dataclass(frozen=True)
class PreflightReport:
    """Every check preflight ran, in order."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed (and at least one ran)."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    def render(self) -> str:
        """One line per check."""
        return "\n".join(check.render() for check in self.checks)

    def conclusion(self) -> str:
        """The closing line: what the checks add up to."""
        failed = sum(not check.passed for check in self.checks)
        if self.ok:
            return f"preflight: all {len(self.checks)} checks passed; the role can deliver"
        return (
            f"preflight: {failed} of {len(self.checks)} check(s) failed; do what each FAIL "
            "line's fix says, then run again"
        )


def preflight(
    session: boto3.Session, destination: Destination, *, endpoint_url: str | None = None
) -> PreflightReport:
    """Check the assumed-role session as Amplitude does, with iam:SimulatePrincipalPolicy."""
    report = _run_checks(session, destination, endpoint_url)
    for check in report.checks:
        log.debug("preflight of %s: %s", destination.role_arn, check.render())
    return report


def _run_checks(
    session: boto3.Session, destination: Destination, endpoint_url: str | None
) -> PreflightReport:
    checks = [_assumed_role(session, destination, endpoint_url)]
    if not checks[0].passed:
        return PreflightReport(checks)
    iam = session.client("iam", region_name=destination.region, endpoint_url=endpoint_url)
    simulate = f"{SIMULATE_ACTION} on {destination.role_arn}"
    try:
        results = _simulate(iam, destination)
    except ClientError as exc:
        checks.append(Check(simulate, False, _describe(exc), _simulate_fix(exc, destination)))
        return PreflightReport(checks)
    except (BotoCoreError, PreflightError) as exc:
        checks.append(Check(simulate, False, str(exc), "check the endpoint and credentials"))
        return PreflightReport(checks)
    checks.append(Check(simulate, True, "allowed (the call succeeded)"))
    checks.extend(_action_check(action, results, destination) for action in KINESIS_WRITE_ACTIONS)
    return PreflightReport(checks)


def _assumed_role(
    session: boto3.Session, destination: Destination, endpoint_url: str | None
) -> Check:
    name = "assume role"
    fix = (
        f"build the session with sync.credentials.assume_role_session(base, "
        f"{destination.role_arn!r}, ...) and check the role's trust policy"
    )
    sts = session.client("sts", region_name=destination.region, endpoint_url=endpoint_url)
    try:
        arn = str(sts.get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, PreflightError) as exc:
        return Check(name, False, f"cannot confirm the session's identity: {exc}", fix)
    # An assumed role's session ARN: arn:aws:sts::<account>:assumed-role/<role name>/<session>
    account = destination.role_arn.split(":")[4]
    expected = f":sts::{account}:assumed-role/{destination.role_name}/"
    if expected not in arn:
        return Check(name, False, f"session acts as {arn}, not role {destination.role_arn}", fix)
    return Check(name, True, f"acting as {arn}")


def _simulate(iam: Any, destination: Destination) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "PolicySourceArn": destination.role_arn,
        "ActionNames": list(KINESIS_WRITE_ACTIONS),
        "ResourceArns": [destination.stream_arn],
    }
    results: list[dict[str, Any]] = []
    while True:
        page = iam.simulate_principal_policy(**request)
        results.extend(page.get("EvaluationResults", []))
        if not page.get("IsTruncated"):
            return results
        request["Marker"] = page["Marker"]


def _describe(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")


def _simulate_fix(exc: ClientError, destination: Destination) -> str:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _DENIED:
        return (
            f"the role's policy must allow {SIMULATE_ACTION} on {destination.role_arn} "
            f"(Amplitude calls it before delivering): attach {destination.policy_arn} / "
            "re-run `pulumi up`"
        )
    if code == "NoSuchEntity":
        return f"role {destination.role_arn} does not exist: re-run `pulumi up`"
    return "see the AWS error; re-run preflight once it is resolved"


def _action_check(action: str, results: list[dict[str, Any]], destination: Destination) -> Check:
    name = f"{action} on {destination.stream_arn}"
    matching = [
        r
        for r in results
        if r.get("EvalActionName") == action
        and r.get("EvalResourceName") in (destination.stream_arn, "*")
    ]
    if not matching:
        return Check(
            name,
            False,
            "missing from the simulation's results",
            "re-run preflight; if it persists, check the role in the IAM console",
        )
    decision = str(matching[0].get("EvalDecision", ""))
    if decision == "allowed":
        return Check(name, True, "allowed")
    if decision == "explicitDeny":
        fix = (
            f"an explicit Deny (another policy, a permissions boundary or an SCP) blocks {action}"
            f" for role {destination.role_name}: remove it"
        )
    elif _account(destination.stream_arn) != _account(destination.role_arn):
        # No policy of the role can grant this: the destination file names a stream of another
        # account (the program creates stream and role in one account).
        fix = (
            f"the stream is in account {_account(destination.stream_arn)}, role "
            f"{destination.role_name} in account {_account(destination.role_arn)}: the "
            "destination file names another account's stream; re-export it from the stack "
            "that made the role (`pulumi stack output --json --show-secrets` or "
            "`cohort-sync local up --out`)"
        )
    else:
        fix = (
            f"role {destination.role_name} lacks {action} on {destination.stream_arn}: attach "
            f"{destination.policy_arn} / re-run `pulumi up`"
        )
    return Check(name, False, decision or "no decision", fix)


def _account(arn: str) -> str:
    """The account an ARN names (its fifth field)."""
    return arn.split(":")[4]
