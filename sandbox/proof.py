"""Prove an applied stack in a moto world: Amplitude can deliver, and nobody else gets in."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from provisioning import constants as c
from sandbox.lambda_mapping import lambda_service
from sandbox.world import STRANGER_ACCOUNT_ID, Credentials, MotoWorld
from sync.contract import CohortMessage, encode

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


OTHER_STREAM = "proof-other-stream"
OTHER_TABLE = "proof-other-table"


def _expect_allowed(name: str, call: Any, detail: str) -> ProofStep:
    try:
        call()
    except ClientError as exc:
        code = _code(exc)
        if code == "ConditionalCheckFailedException":
            # Authorization comes before the condition: allowed, and nothing was written.
            return ProofStep(
                name, True, f"{detail} (authorized; the probe's condition kept it a no-op)"
            )
        return ProofStep(name, False, f"refused with {code}")
    return ProofStep(name, True, detail)


def _others(world: MotoWorld) -> tuple[str, str]:
    """A stream and a table of the same account the function role must not reach."""
    kinesis = world.client("kinesis", world.customer_admin)
    dynamodb = world.client("dynamodb", world.customer_admin)
    try:
        kinesis.create_stream(StreamName=OTHER_STREAM, ShardCount=1)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    try:
        dynamodb.create_table(
            TableName=OTHER_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
    summary = kinesis.describe_stream_summary(StreamName=OTHER_STREAM)
    return summary["StreamDescriptionSummary"]["StreamARN"], OTHER_TABLE


def prove_consumer(
    world: MotoWorld, outputs: Mapping[str, Any], function_role_arn: str
) -> list[ProofStep]:
    """The function's role (assumed as the Lambda service does) reads its stream and writes its
    table, and can do nothing else: other streams and tables, deletes, assuming roles."""
    try:
        function_role = assume_as(world, lambda_service(world), function_role_arn)
    except ClientError as exc:
        return [ProofStep("Lambda assumes the function role", False, f"refused with {_code(exc)}")]
    stream_arn = str(outputs[c.OUTPUT_STREAM_ARN])
    table = str(outputs[c.OUTPUT_MEMBERSHIP_TABLE])
    kinesis = world.client("kinesis", function_role)
    dynamodb = world.client("dynamodb", function_role)
    other_stream, other_table = _others(world)
    shard = kinesis.list_shards(StreamARN=stream_arn)["Shards"][0]["ShardId"]

    def read_own() -> None:
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        kinesis.get_records(ShardIterator=iterator, Limit=1, StreamARN=stream_arn)

    impossible = "attribute_exists(pk) AND attribute_not_exists(pk)"
    probe_item = {"pk": {"S": "cohort-sync-probe"}, "sk": {"S": "probe"}}
    steps = [
        _expect_allowed("the function role reads its stream", read_own, f"GetRecords on {shard}"),
        _expect_allowed(
            "the function role writes its membership table",
            lambda: dynamodb.put_item(
                TableName=table, Item=probe_item, ConditionExpression=impossible
            ),
            f"PutItem on {table}",
        ),
        _expect_denied(
            "the function role cannot read another stream",
            lambda: kinesis.describe_stream_summary(StreamARN=other_stream),
        ),
        _expect_denied(
            "the function role cannot write another table",
            lambda: dynamodb.put_item(TableName=other_table, Item={"pk": {"S": "x"}}),
        ),
        _expect_denied(
            "the function role cannot read its membership table back",
            lambda: dynamodb.get_item(TableName=table, Key=probe_item),
        ),
        _expect_denied(
            "the function role cannot write its stream",
            lambda: kinesis.put_record(StreamARN=stream_arn, Data=b"{}", PartitionKey="probe"),
        ),
        _expect_denied(
            "the function role cannot delete its stream",
            lambda: kinesis.delete_stream(StreamARN=stream_arn),
        ),
        _expect_denied(
            "the function role cannot delete its table",
            lambda: dynamodb.delete_table(TableName=table),
        ),
        _expect_denied(
            "the function role cannot delete its failure queue",
            lambda: world.client("sqs", function_role).delete_queue(
                QueueUrl=str(outputs[c.OUTPUT_FAILURE_QUEUE_URL])
            ),
        ),
        _expect_denied(
            "the function role cannot assume Amplitude's role",
            lambda: assume_as(world, function_role, str(outputs[c.OUTPUT_ROLE_ARN])),
        ),
    ]
    steps.insert(0, ProofStep("Lambda assumes the function role", True, f"as {function_role_arn}"))
    steps.append(
        _expect_denied(
            "Amplitude cannot assume the function role",
            lambda: assume_as(world, world.amplitude, function_role_arn),
        )
    )
    return steps
