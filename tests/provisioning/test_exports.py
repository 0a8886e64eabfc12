"""Stack outputs: the keys the sync engine reads, Amplitude's form, the external ID as a secret."""

from provisioning import constants as c
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import run_program

ALL_KEYS = {
    c.OUTPUT_STREAM_NAME,
    c.OUTPUT_STREAM_ARN,
    c.OUTPUT_REGION,
    c.OUTPUT_ROLE_ARN,
    c.OUTPUT_ROLE_NAME,
    c.OUTPUT_POLICY_ARN,
    c.OUTPUT_DESTINATION,
}


def test_outputs_without_external_id() -> None:
    program = run_program(PlanMocks("us-west-2"), stack="prod")

    assert set(program.outputs) == ALL_KEYS
    assert program.secret_outputs == set()
    assert program.outputs[c.OUTPUT_STREAM_NAME] == "amplitude-cohorts"
    assert program.outputs[c.OUTPUT_REGION] == "us-west-2"
    assert program.outputs[c.OUTPUT_ROLE_NAME] == "amplitude-kinesis-cohort"
    assert (
        program.outputs[c.OUTPUT_ROLE_ARN] == "arn:aws:iam::<account>:role/amplitude-kinesis-cohort"
    )
    assert program.outputs[c.OUTPUT_DESTINATION] == {
        "display_name": "Kinesis cohorts (prod)",
        "stream_name": "amplitude-cohorts",
        "aws_region": "us-west-2",
        "role_arn": "arn:aws:iam::<account>:role/amplitude-kinesis-cohort",
    }


def test_external_id_is_exported_only_as_a_secret() -> None:
    program = run_program(
        PlanMocks("us-west-2"),
        stack="prod",
        config={"externalId": "ext-0042", "displayName": "Prod cohorts"},
        secret_keys=("externalId",),
    )

    assert set(program.outputs) == ALL_KEYS | {c.OUTPUT_EXTERNAL_ID}
    assert program.outputs[c.OUTPUT_EXTERNAL_ID] == "ext-0042"
    assert program.secret_outputs == {c.OUTPUT_EXTERNAL_ID}
    assert program.outputs[c.OUTPUT_DESTINATION]["display_name"] == "Prod cohorts"


def test_plaintext_external_id_is_still_exported_as_a_secret() -> None:
    program = run_program(PlanMocks("us-west-2"), stack="prod", config={"externalId": "ext-0042"})

    assert program.secret_outputs == {c.OUTPUT_EXTERNAL_ID}
