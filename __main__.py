"""The Pulumi program: read stack config, declare the cohort destination, export its config."""

import pulumi

from provisioning import constants as c
from provisioning.component import CohortDestination, CohortDestinationArgs
from provisioning.config import parse_config

stack_config = pulumi.Config()
raw = {key: stack_config.get(key) for key in c.CONFIG_KEYS if key != c.CONFIG_TAGS}
raw[c.CONFIG_TAGS] = stack_config.get_object(c.CONFIG_TAGS)
config = parse_config(raw, stack=pulumi.get_stack())

destination = CohortDestination("cohort", CohortDestinationArgs(config=config))

pulumi.export(c.OUTPUT_STREAM_NAME, destination.stream.name)
pulumi.export(c.OUTPUT_STREAM_ARN, destination.stream.arn)
pulumi.export(c.OUTPUT_REGION, destination.region)
pulumi.export(c.OUTPUT_ROLE_ARN, destination.role.arn)
pulumi.export(c.OUTPUT_ROLE_NAME, destination.role.name)
pulumi.export(c.OUTPUT_POLICY_ARN, destination.policy.arn)
pulumi.export(c.OUTPUT_DESTINATION, destination.destination)
if config.external_id is not None:
    pulumi.export(c.OUTPUT_EXTERNAL_ID, pulumi.Output.secret(config.external_id))
