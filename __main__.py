"""The Pulumi program: read stack config, declare the cohort destination, export its config."""

from pathlib import Path

import pulumi

from provisioning import constants as c
from provisioning.component import CohortDestination, args_from_config
from provisioning.config import parse_config
from provisioning.consumer import CohortConsumer, CohortConsumerArgs

PROJECT_DIR = Path(__file__).resolve().parent

stack_config = pulumi.Config()
# Every key checked at once, the consumer's included, before any resource is declared.
raw = {key: stack_config.get(key) for key in c.PROGRAM_CONFIG_KEYS if key != c.CONFIG_TAGS}
raw[c.CONFIG_TAGS] = stack_config.get_object(c.CONFIG_TAGS)
config = parse_config(raw, stack=pulumi.get_stack(), project_dir=PROJECT_DIR)

destination = CohortDestination("cohort", args_from_config(stack_config))

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
    consumer = CohortConsumer(
        "consumer",
        CohortConsumerArgs(
            stream_arn=destination.stream.arn,
            stream_name=config.stream_name,
            kms_key_arn=config.kms_key_arn if config.uses_customer_key else None,
            encrypted=config.encryption != "NONE",
            config=config.consumer,
            project_dir=PROJECT_DIR,
            tags=config.tags,
        ),
    )
    pulumi.export(c.OUTPUT_MEMBERSHIP_TABLE, consumer.membership_table.name)
    pulumi.export(c.OUTPUT_IDEMPOTENCY_TABLE, consumer.idempotency_table.name)
    pulumi.export(c.OUTPUT_FUNCTION_ARN, consumer.function.arn)
    pulumi.export(c.OUTPUT_FAILURE_QUEUE_URL, consumer.failure_queue.url)
