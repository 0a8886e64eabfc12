"""Prove an applied stack in a moto world: Amplitude can deliver, and nobody else gets in."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from provisioning import constants as c
from sandbox.world import Credentials, MotoWorld
from sync.contract import CohortMessage, encode

STRANGER_ACCOUNT_ID = "111122223333"
PROOF_COHORT_ID = "probe"
PROOF_MESSAGE_ID = "probe:0"


def proof_record(computed_time: int) -> bytes:
    """The one record `local up` writes to prove the role: a contract-valid message with no users.

    Not an exception to the payload contract: every field is there and valid, so the bundled
    consumers (`consume` and the Lambda) decode it, quarantine nothing and apply it as the no-op
    it is: no user enters or leaves, no cohort appears in `members`. Its fixed message_id makes
    a second proof in the same world a duplicate that dedupe drops.
    """
    message = CohortMessage(
        "cohort-sync probe", PROOF_COHORT_ID, True, str(computed_time), PROOF_MESSAGE_ID, ()
    )
    return encode(message)


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
    record = proof_record(int(time.time()))
    try:
        put = kinesis.put_record(StreamARN=stream_arn, Data=record, PartitionKey=PROOF_COHORT_ID)
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
    stranger = world.new_principal(STRANGER_ACCOUNT_ID, "stranger", assume_anything)
    steps.append(
        _expect_denied(
            f"a principal of account {STRANGER_ACCOUNT_ID} is refused",
            lambda: assume_as(world, stranger, role_arn, external_id),
        )
    )
    insider = world.new_principal(world.customer_account_id, "unrelated-user", assume_anything)
    steps.append(
        _expect_denied(
            "an unrelated user of the customer's account is refused",
            lambda: assume_as(world, insider, role_arn, external_id),
        )
    )
    return steps
