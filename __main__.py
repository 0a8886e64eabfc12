"""The Pulumi program: read stack config, declare the cohort destination, export its config."""

import pulumi

from provisioning import constants as c
from provisioning.component import CohortDestination, args_from_config

destination = CohortDestination("cohort", args_from_config(pulumi.Config()))
config = destination.config

pulumi.export(c.OUTPUT_STREAM_NAME, destination.stream.name)
pulumi.export(c.OUTPUT_STREAM_ARN, destination.stream.arn)
pulumi.export(c.OUTPUT_REGION, destination.region)
pulumi.export(c.OUTPUT_ROLE_ARN, destination.role.arn)
pulumi.export(c.OUTPUT_ROLE_NAME, destination.role.name)
pulumi.export(c.OUTPUT_POLICY_ARN, destination.policy.arn)
pulumi.export(c.OUTPUT_DESTINATION, destination.destination)
if config.external_id is not None:
    pulumi.export(c.OUTPUT_EXTERNAL_ID, pulumi.Output.secret(config.external_id))
