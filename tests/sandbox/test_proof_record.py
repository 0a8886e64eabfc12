"""The record `local up` writes to prove the role is contract-valid and changes no membership."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.engine.stack import StackConfig, apply
from sandbox.proof import PROOF_COHORT_ID, assume_as, proof_record, prove_destination
from sandbox.world import moto_world
from sync.consumer import Consumer
from sync.contract import decode, problems_of
from sync.membership_store import MembershipStore
from sync.membership_writer import MembershipTable

REGION = "us-east-1"


def test_the_proof_record_follows_the_payload_contract_with_no_users() -> None:
    record = proof_record(1_700_000_000)

    assert problems_of(json.loads(record)) == []
    message = decode(record)
    assert (message.cohort_id, message.message_id, message.users) == ("probe", "probe:0", ())


def test_the_lambda_applies_it_without_touching_its_table() -> None:
    # A DynamoDB client of None fails on any call: the probe makes none.
    table = MembershipTable(dynamodb=None, table_name="membership")

    assert table.apply(decode(proof_record(1_700_000_000))).counts() == {
        "written": 0,
        "stale": 0,
        "throttled": 0,
        "poison": 0,
    }


@pytest.mark.integration
def test_consume_reads_two_proofs_quarantines_nothing_and_lists_no_cohort(tmp_path: Path) -> None:
    # GIVEN a proven stack, and the probe written once more (as a second proof would)
    with moto_world(REGION) as world:
        applied = apply(
            StackConfig(stack="proof"), session=world.customer_admin.session(REGION), region=REGION
        )
        assert all(step.passed for step in prove_destination(world, applied.outputs))
        role = assume_as(world, world.amplitude, str(applied.outputs["roleArn"]))
        world.client("kinesis", role).put_record(
            StreamARN=str(applied.outputs["streamArn"]),
            Data=proof_record(1_700_000_000),
            PartitionKey=PROOF_COHORT_ID,
        )
        kinesis = world.client("kinesis", world.customer_admin)

        # WHEN the customer consumes the stream
        with MembershipStore(tmp_path / "consumer.sqlite") as store:
            report = Consumer(
                kinesis, str(applied.outputs["streamArn"]), store, from_start=True
            ).consume(until_idle=True)

            # THEN the first is applied as a no-op, the second dropped as a duplicate
            assert (report.applied, report.duplicates, report.quarantined) == (1, 1, 0)
            assert store.quarantined() == []
            assert not store.knows_cohort(PROOF_COHORT_ID)
            assert store.states() == {}
