"""sync.preflight: SimulatePrincipalPolicy results become PASS/FAIL lines with fixes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sync.destination import Destination
from sync.preflight import Check, PreflightReport, preflight

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/amplitude-kinesis-cohort"
STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/amplitude-cohorts"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/amplitude-kinesis-cohort-write"
ASSUMED = f"arn:aws:sts::{ACCOUNT}:assumed-role/amplitude-kinesis-cohort/amplitude"
DESTINATION = Destination(
    stream_name="amplitude-cohorts",
    stream_arn=STREAM_ARN,
    region="us-east-1",
    role_arn=ROLE_ARN,
    role_name="amplitude-kinesis-cohort",
    policy_arn=POLICY_ARN,
    display_name="Kinesis cohorts (dev)",
)
SIMULATE_REQUEST = {
    "PolicySourceArn": ROLE_ARN,
    "ActionNames": ["kinesis:PutRecord", "kinesis:PutRecords"],
    "ResourceArns": [STREAM_ARN],
}


class StubbedSession:
    """A session whose sts and iam clients answer from botocore Stubbers."""

    def __init__(self) -> None:
        options: dict[str, Any] = {
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
        }
        self.clients = {name: boto3.client(name, **options) for name in ("sts", "iam")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.endpoints: list[tuple[str, str | None]] = []

    def client(self, service: str, **kwargs: Any) -> Any:
        self.endpoints.append((service, kwargs.get("endpoint_url")))
        return self.clients[service]

    def identity(self, arn: str) -> None:
        self.stubs["sts"].add_response(
            "get_caller_identity", {"Arn": arn, "UserId": "AROA:amplitude", "Account": ACCOUNT}
        )

    def decisions(
        self, *pairs: tuple[str, str], marker: str | None = None, after: str | None = None
    ) -> None:
        response: dict[str, Any] = {
            "EvaluationResults": [
                {"EvalActionName": a, "EvalResourceName": STREAM_ARN, "EvalDecision": d}
                for a, d in pairs
            ],
            "IsTruncated": marker is not None,
        }
        if marker is not None:
            response["Marker"] = marker
        request = dict(SIMULATE_REQUEST)
        if after is not None:  # a follow-up page asks with the previous page's marker
            request["Marker"] = after
        self.stubs["iam"].add_response("simulate_principal_policy", response, request)


@pytest.fixture
def session() -> Iterator[StubbedSession]:
    fake = StubbedSession()
    with fake.stubs["sts"], fake.stubs["iam"]:
        yield fake
        fake.stubs["sts"].assert_no_pending_responses()
        fake.stubs["iam"].assert_no_pending_responses()


def run(session: StubbedSession) -> PreflightReport:
    return preflight(session, DESTINATION, endpoint_url="http://127.0.0.1:5000")  # type: ignore[arg-type]


@pytest.mark.unit
def test_all_allowed_passes_every_check(session: StubbedSession) -> None:
    session.identity(ASSUMED)
    session.decisions(("kinesis:PutRecord", "allowed"), ("kinesis:PutRecords", "allowed"))
    report = run(session)
    assert report.ok
    assert report.render() == "\n".join(
        [
            f"PASS assume role: acting as {ASSUMED}",
            f"PASS iam:SimulatePrincipalPolicy on {ROLE_ARN}: allowed (the call succeeded)",
            f"PASS kinesis:PutRecord on {STREAM_ARN}: allowed",
            f"PASS kinesis:PutRecords on {STREAM_ARN}: allowed",
        ]
    )
    assert session.endpoints == [("sts", "http://127.0.0.1:5000"), ("iam", "http://127.0.0.1:5000")]
    assert report.conclusion() == "preflight: all 4 checks passed; the role can deliver"


@pytest.mark.unit
def test_denials_fail_with_the_fix(session: StubbedSession) -> None:
    session.identity(ASSUMED)
    session.decisions(("kinesis:PutRecord", "implicitDeny"), ("kinesis:PutRecords", "explicitDeny"))
    report = run(session)
    assert not report.ok
    assert report.checks[2:] == [
        Check(
            f"kinesis:PutRecord on {STREAM_ARN}",
            False,
            "implicitDeny",
            f"role amplitude-kinesis-cohort lacks kinesis:PutRecord on {STREAM_ARN}: attach "
            f"{POLICY_ARN} / re-run `pulumi up`",
        ),
        Check(
            f"kinesis:PutRecords on {STREAM_ARN}",
            False,
            "explicitDeny",
            "an explicit Deny (another policy, a permissions boundary or an SCP) blocks "
            "kinesis:PutRecords for role amplitude-kinesis-cohort: remove it",
        ),
    ]
    assert report.conclusion() == (
        "preflight: 2 of 4 check(s) failed; do what each FAIL line's fix says, then run again"
    )
    assert report.render().splitlines()[2] == (
        f"FAIL kinesis:PutRecord on {STREAM_ARN}: implicitDeny — fix: role "
        f"amplitude-kinesis-cohort lacks kinesis:PutRecord on {STREAM_ARN}: attach {POLICY_ARN}"
        " / re-run `pulumi up`"
    )


@pytest.mark.unit
def test_access_denied_on_the_simulation_is_a_failed_check(session: StubbedSession) -> None:
    session.identity(ASSUMED)
    session.stubs["iam"].add_client_error(
        "simulate_principal_policy",
        service_error_code="AccessDenied",
        service_message="not authorized to perform: iam:SimulatePrincipalPolicy",
        http_status_code=403,
    )
    report = run(session)
    assert not report.ok
    assert report.checks[-1] == Check(
        f"iam:SimulatePrincipalPolicy on {ROLE_ARN}",
        False,
        "AccessDenied: not authorized to perform: iam:SimulatePrincipalPolicy",
        f"the role's policy must allow iam:SimulatePrincipalPolicy on {ROLE_ARN} (Amplitude "
        f"calls it before delivering): attach {POLICY_ARN} / re-run `pulumi up`",
    )


@pytest.mark.unit
def test_a_session_that_is_not_the_role_stops_at_the_first_check(
    session: StubbedSession,
) -> None:
    session.identity(f"arn:aws:iam::{ACCOUNT}:user/admin")
    report = run(session)
    assert report.render() == (
        f"FAIL assume role: session acts as arn:aws:iam::{ACCOUNT}:user/admin, not role "
        f"{ROLE_ARN} — fix: build the session with sync.credentials.assume_role_session(base, "
        f"'{ROLE_ARN}', ...) and check the role's trust policy"
    )


@pytest.mark.unit
def test_results_are_read_across_pages_and_missing_ones_fail(session: StubbedSession) -> None:
    session.identity(ASSUMED)
    session.decisions(("kinesis:PutRecord", "allowed"), marker="page-2")
    session.decisions(after="page-2")
    report = run(session)
    assert [c.passed for c in report.checks] == [True, True, True, False]
    assert report.checks[-1].detail == "missing from the simulation's results"


@pytest.mark.unit
def test_an_empty_report_is_not_ok() -> None:
    assert not PreflightReport().ok


# --- against the harness's moto world ----------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("grant_simulate", [True, False], ids=["template", "no-simulate"])
def test_preflight_in_the_moto_world(grant_simulate: bool) -> None:
    # No skip: without the sandbox's IAM additions (moto lacks SimulatePrincipalPolicy and trust
    # evaluation) this test must fail, at this import or at the checks below.
    from provisioning.policies import trust_policy, write_policy
    from sandbox.world import moto_world
    from sync.credentials import assume_role_session

    with moto_world() as world:
        # GIVEN what `pulumi up` leaves: a stream, a role Amplitude may assume, its write policy
        kinesis = world.client("kinesis", world.customer_admin)
        iam = world.client("iam", world.customer_admin)
        kinesis.create_stream(StreamName="amplitude-cohorts", ShardCount=1)
        stream_arn = kinesis.describe_stream_summary(StreamName="amplitude-cohorts")[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        trust = trust_policy(world.amplitude_account_id)
        role_arn = iam.create_role(
            RoleName="amplitude-kinesis-cohort", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        document = write_policy(stream_arn, role_arn)
        if not grant_simulate:
            document = {
                **document,
                "Statement": [
                    s for s in document["Statement"] if "iam:" not in json.dumps(s["Action"])
                ],
            }
        iam.put_role_policy(
            RoleName="amplitude-kinesis-cohort",
            PolicyName="write",
            PolicyDocument=json.dumps(document),
        )
        destination = Destination(
            stream_name="amplitude-cohorts",
            stream_arn=stream_arn,
            region=world.region,
            role_arn=role_arn,
            role_name="amplitude-kinesis-cohort",
            policy_arn=f"arn:aws:iam::{world.customer_account_id}:policy/write",
            display_name="dev",
        )
        # WHEN Amplitude assumes the role and runs preflight
        session = assume_role_session(
            world.amplitude.session(world.region),
            role_arn,
            session_name="amplitude",
            region=world.region,
        )
        report = preflight(session, destination)
    # THEN the template passes every check; without the IAM grant, the simulation fails
    if grant_simulate:
        assert report.ok, report.render()
        assert len(report.checks) == 4
    else:
        assert not report.ok
        assert report.checks[-1].name == f"iam:SimulatePrincipalPolicy on {role_arn}"
        assert report.checks[-1].detail.startswith("AccessDenied")
        assert "must allow iam:SimulatePrincipalPolicy" in report.checks[-1].fix


@pytest.mark.unit
def test_a_stream_of_another_account_is_named_as_the_cause(session: StubbedSession) -> None:
    # GIVEN a destination file whose stream ARN names another account than the role's (before:
    # "attach the policy / re-run `pulumi up`", which cannot help)
    elsewhere = STREAM_ARN.replace(ACCOUNT, "999999999999")
    destination = replace(DESTINATION, stream_arn=elsewhere)
    session.identity(ASSUMED)
    session.stubs["iam"].add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                {"EvalActionName": a, "EvalResourceName": elsewhere, "EvalDecision": "implicitDeny"}
                for a in ("kinesis:PutRecord", "kinesis:PutRecords")
            ],
            "IsTruncated": False,
        },
        {**SIMULATE_REQUEST, "ResourceArns": [elsewhere]},
    )

    report = preflight(session, destination)  # type: ignore[arg-type]

    assert not report.ok
    assert report.checks[2].fix == (
        "the stream is in account 999999999999, role amplitude-kinesis-cohort in account "
        f"{ACCOUNT}: the destination file names another account's stream; re-export it from the "
        "stack that made the role (`pulumi stack output --json --show-secrets` or "
        "`cohort-sync local up --out`)"
    )
