"""The CohortDestination component: stream, trusted role, write policy and its attachment."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioning import constants as c
from provisioning.config import DestinationConfig
from provisioning.policies import trust_policy, write_policy


@dataclass(frozen=True)
class CohortDestinationArgs:
    """Inputs of CohortDestination: a validated config."""

    config: DestinationConfig


class CohortDestination(pulumi.ComponentResource):
    """Everything Amplitude needs to deliver cohorts into this account, and nothing more."""

    stream: aws.kinesis.Stream
    role: aws.iam.Role
    policy: aws.iam.Policy
    attachment: aws.iam.RolePolicyAttachment

    def __init__(
        self, name: str, args: CohortDestinationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(c.COMPONENT_TYPE, name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(cfg.tags) or None

        self.stream = aws.kinesis.Stream(
            f"{name}-stream",
            name=cfg.stream_name,
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(
                stream_mode=cfg.stream_mode
            ),
            shard_count=cfg.shard_count,
            retention_period=cfg.retention_hours,
            encryption_type="NONE" if cfg.encryption == "NONE" else "KMS",
            kms_key_id=_stream_key(cfg),
            tags=tags,
            # protect: no up or destroy may replace or delete the stream (and its data) until
            # protectStream is false. No retain_on_delete: the stream's name is fixed, so a
            # retained old stream would make its replacement's create fail on the name.
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(protect=cfg.protect_stream, import_=cfg.import_stream),
            ),
        )

        trust: pulumi.Input[str]
        if cfg.external_id is None:
            trust = json.dumps(trust_policy(cfg.trusted_account_id))
        else:
            trust = pulumi.Output.secret(cfg.external_id).apply(
                lambda external_id: json.dumps(trust_policy(cfg.trusted_account_id, external_id))
            )
        self.role = aws.iam.Role(
            f"{name}-role",
            name=cfg.role_name,
            path=cfg.role_path,
            description="Assumed by Amplitude to deliver cohort updates to Kinesis.",
            assume_role_policy=trust,
            max_session_duration=cfg.max_session_seconds,
            permissions_boundary=cfg.permissions_boundary_arn,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(import_=cfg.import_role)
            ),
        )

        document = pulumi.Output.all(self.stream.arn, self.role.arn).apply(
            lambda arns: json.dumps(write_policy(arns[0], arns[1], _customer_key(cfg)))
        )
        self.policy = aws.iam.Policy(
            f"{name}-write",
            name=cfg.policy_name,
            path=cfg.role_path,
            # The description is ForceNew: an adopted policy keeps its own (Amplitude's guide
            # sets none), or importing it would replace it.
            description=None
            if cfg.import_policy_arn
            else f"Lets Amplitude write cohort updates to Kinesis stream {cfg.stream_name}.",
            policy=document,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(import_=cfg.import_policy_arn)
            ),
        )
        self.attachment = aws.iam.RolePolicyAttachment(
            f"{name}-attach",
            role=self.role.name,
            policy_arn=self.policy.arn,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(import_=cfg.attachment_import_id)
            ),
        )

        self.region: pulumi.Output[str] = aws.get_region_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).region
        self.destination: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            self.stream.name, self.region, self.role.arn
        ).apply(
            lambda values: {
                c.FORM_DISPLAY_NAME: cfg.display_name,
                c.FORM_STREAM_NAME: values[0],
                c.FORM_AWS_REGION: values[1],
                c.FORM_ROLE_ARN: values[2],
            }
        )
        self.register_outputs(
            {
                c.OUTPUT_STREAM_ARN: self.stream.arn,
                c.OUTPUT_ROLE_ARN: self.role.arn,
                c.OUTPUT_POLICY_ARN: self.policy.arn,
                c.OUTPUT_DESTINATION: self.destination,
            }
        )


def _stream_key(cfg: DestinationConfig) -> str | None:
    if cfg.encryption == "AWS_MANAGED":
        return c.AWS_MANAGED_KINESIS_KEY
    return cfg.kms_key_arn if cfg.encryption == "KMS" else None


def _customer_key(cfg: DestinationConfig) -> str | None:
    return cfg.kms_key_arn if cfg.uses_customer_key else None
