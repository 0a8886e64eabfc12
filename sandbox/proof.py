"""Prove an applied stack in a moto world: Amplitude can deliver, and nobody else gets in."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from provisioning import constants as c
from sandbox.world import Credentials, MotoWorld
from sync.contract import CohortMessage, encode

STRANGER_ACCOUNT_ID = "111122223333"


@dataclass(frozen=True)
class ProofStep:
    """One observed fact about the stack, and whether it is the one we want."""

    name: str
    passed: bool
    detail: str

    def render(self) -> str:
        """`PASS name — detail` (or FAIL)."""
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name} — {self.detail}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def assume_as(
    world: MotoWorld, who: Credentials, role_arn: str, external_id: str | None = None
) -> Credentials:
    """Assume `role_arn` as `who`; raises ClientError as AWS would."""
    request: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "cohort-proof"}
    if external_id is not None:
        request["ExternalId"] = external_id
    return Credentials.from_assume_role(world.client("sts", who).assume_role(**request))


def _expect_denied(name: str, call: Any) -> ProofStep:
    try:
        call()
    except ClientError as exc:
        code = _code(exc)
        denied = code in {"AccessDenied", "AccessDeniedException"}
        return ProofStep(name, denied, f"refused with {code}")
    return ProofStep(name, False, "was allowed")


def prove_destination(world: MotoWorld, outputs: Mapping[str, Any]) -> list[ProofStep]:
    """Amplitude assumes the role and writes a record; the role can do nothing else; a stranger
    and an unrelated user of the customer's own account cannot assume it."""
    role_arn = str(outputs[c.OUTPUT_ROLE_ARN])
    stream_arn = str(outputs[c.OUTPUT_STREAM_ARN])
    stream_name = str(outputs[c.OUTPUT_STREAM_NAME])
    external_id = outputs.get(c.OUTPUT_EXTERNAL_ID)
    steps: list[ProofStep] = []
    try:
        role = assume_as(world, world.amplitude, role_arn, external_id)
    except ClientError as exc:
        return [ProofStep("Amplitude assumes the role", False, f"refused with {_code(exc)}")]
    steps.append(ProofStep("Amplitude assumes the role", True, f"as {role_arn}"))

    kinesis = world.client("kinesis", role)
    # A contract-valid message with no users: consumers apply it as a no-op, never quarantine it.
    record = encode(
        CohortMessage("cohort-sync probe", "probe", True, str(int(time.time())), "probe:0", ())
    )
    try:
        put = kinesis.put_record(StreamARN=stream_arn, Data=record, PartitionKey="probe")
        steps.append(
            ProofStep("the role writes a record", True, f"shard {put['ShardId']} accepted it")
        )
    except ClientError as exc:
        steps.append(ProofStep("the role writes a record", False, f"refused with {_code(exc)}"))
    steps.append(
        _expect_denied(
            "the role cannot read the stream",
            lambda: kinesis.describe_stream(StreamName=stream_name),
        )
    )
    steps.append(
        _expect_denied(
            "the role cannot delete the stream",
            lambda: kinesis.delete_stream(StreamName=stream_name),
        )
    )
    if external_id is not None:
        steps.append(
            _expect_denied(
                "Amplitude without the external ID is refused",
                lambda: assume_as(world, world.amplitude, role_arn),
            )
        )
    assume_anything = {
        "Version": c.POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": c.ASSUME_ROLE_ACTION, "Resource": role_arn}],
    }
    # Unique names, removed afterwards: `local up` may prove any number of stacks in one world.
    run = secrets.token_hex(4)
    outsiders = [
        (STRANGER_ACCOUNT_ID, f"stranger-{run}", f"a principal of account {STRANGER_ACCOUNT_ID}"),
        (
            world.customer_account_id,
            f"unrelated-user-{run}",
            "an unrelated user of the customer's account",
        ),
    ]
    for account_id, name, who in outsiders:
        principal = world.new_principal(account_id, name, assume_anything)
        try:
            steps.append(
                _expect_denied(
                    f"{who} is refused",
                    lambda p=principal: assume_as(world, p, role_arn, external_id),
                )
            )
        finally:
            world.remove_principal(account_id, name, principal)
    return steps
