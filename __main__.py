"""The Pulumi program: read stack config once, declare the cohort destination, export its config."""

from pathlib import Path

import pulumi

from provisioning import constants as c
from provisioning.component import CohortDestination
from provisioning.consumer import CohortConsumer, ConsumerInputs
from provisioning.stack_config import read_stack_config

PROJECT_DIR = Path(__file__).resolve().parent

# Every key of the stack checked at once (unknown ones included) before any resource is declared.
config = read_stack_config(PROJECT_DIR)

destination = CohortDestination.from_config("cohort", config)

pulumi.export(c.OUTPUT_STREAM_NAME, destination.stream.name)
pulumi.export(c.OUTPUT_STREAM_ARN, destination.stream.arn)
pulumi.export(c.OUTPUT_REGION, destination.region)
pulumi.export(c.OUTPUT_ROLE_ARN, destination.role.arn)
pulumi.export(c.OUTPUT_ROLE_NAME, destination.role.name)
pulumi.export(c.OUTPUT_POLICY_ARN, destination.policy.arn)
pulumi.export(c.OUTPUT_DESTINATION, destination.destination)
if config.external_id is not None:
    pulumi.export(c.OUTPUT_EXTERNAL_ID, pulumi.Output.secret(config.external_id))

if config.consumer is not None:
    consumer = CohortConsumer.from_inputs(
        "consumer", ConsumerInputs.of(config, destination.stream.arn, PROJECT_DIR)
    )
    pulumi.export(c.OUTPUT_MEMBERSHIP_TABLE, consumer.membership_table.name)
    pulumi.export(c.OUTPUT_IDEMPOTENCY_TABLE, consumer.idempotency_table.name)
    pulumi.export(c.OUTPUT_FUNCTION_ARN, consumer.function.arn)
    pulumi.export(c.OUTPUT_FAILURE_QUEUE_URL, consumer.failure_queue.url)
