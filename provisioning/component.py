"""The CohortDestination component: stream, trusted role, write policy and its attachment.

Also a Pulumi component package (component/PulumiPlugin.yaml): Pulumi's analyzer reads the
schema from the annotations below, so they stay evaluated (no postponed annotations); each
input's description and default come from the key table (`provisioning/package.py`).
"""

import json
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from provisioning import constants as c
from provisioning.config import DestinationConfig, parse_config
from provisioning.errors import ConfigError
from provisioning.kms import check_key_placement
from provisioning.policies import trust_policy, write_policy


class CohortDestinationArgs(TypedDict, total=False):
    """Inputs of CohortDestination: the destination's config keys, validated by the component.

    Each field's camelCase form is a key of `provisioning.keys.KEYS`, which gives the schema its
    description and default. Values are plain, since every key is checked before any resource
    is declared; only the external ID may be an Output, so a secret can be passed.
    """

    stream_name: str
    stream_mode: str
    shard_count: int
    retention_hours: int
    encryption: str
    kms_key_arn: str
    kms_key_cross_account: bool
    role_name: str
    role_path: str
    max_session_seconds: int
    permissions_boundary_arn: str
    trusted_account_id: str
    external_id: pulumi.Input[str]
    display_name: str
    tags: dict[str, str]
    protect_stream: bool
    policy_name: str
    import_stream: str
    import_role: str
    import_policy: str


def config_key(field: str) -> str:
    """The stack config key (and schema input) of an Args field: `kms_key_arn` → `kmsKeyArn`."""
    first, *rest = field.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def plain_inputs(args: Mapping[str, Any], output_allowed: str) -> dict[str, Any]:
    """Inputs under their config keys; an Output is refused but for `output_allowed`'s."""
    raw = {config_key(field): value for field, value in args.items()}
    outputs = sorted(
        key
        for key, value in raw.items()
        if isinstance(value, pulumi.Output) and key != output_allowed
    )
    if outputs:
        raise ConfigError(
            [
                f"{key}: must be a plain value, not an Output (every key is validated before "
                f"any resource is declared); only {output_allowed} may be an Output"
                for key in outputs
            ]
        )
    return raw


def read_config(args: Mapping[str, Any], stack: str) -> DestinationConfig:
    """Validate the inputs with the program's own rules, whatever language passed them."""
    raw = plain_inputs(args, output_allowed=c.CONFIG_EXTERNAL_ID)
    if isinstance(raw.get(c.CONFIG_EXTERNAL_ID), pulumi.Output):
        del raw[c.CONFIG_EXTERNAL_ID]  # checked once known, in _external_id
    return parse_config(raw, stack=stack)


class CohortDestination(pulumi.ComponentResource):
    """Everything Amplitude needs to deliver cohorts into this account, and nothing more."""

    stream: aws.kinesis.Stream
    """The Kinesis data stream Amplitude writes cohort updates to."""
    role: aws.iam.Role
    """The IAM role Amplitude's account assumes."""
    policy: aws.iam.Policy
    """The least-privilege write policy."""
    attachment: aws.iam.RolePolicyAttachment
    """Attaches the write policy to the role."""
    region: pulumi.Output[str]
    """The region the stream lives in."""
    destination: pulumi.Output[dict[str, str]]
    """The fields of Amplitude's destination form: display_name, stream_name, aws_region, role_arn."""  # noqa: E501

    def __init__(
        self, name: str, args: CohortDestinationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Validated before anything is registered: an invalid input declares nothing.
        self._declare(name, read_config(args, stack=pulumi.get_stack()), opts, args)

    @classmethod
    def from_config(
        cls, name: str, config: DestinationConfig, opts: pulumi.ResourceOptions | None = None
    ) -> "CohortDestination":
        """The component from config the program has already parsed (parsed once, not twice)."""
        component = cls.__new__(cls)
        component._declare(name, config, opts, {})
        return component

    def _declare(
        self,
        name: str,
        cfg: DestinationConfig,
        opts: pulumi.ResourceOptions | None,
        args: Mapping[str, Any],
    ) -> None:
        check_key_placement(
            cfg.customer_key_arn, cross_account=cfg.kms_key_cross_account
        )  # asks the provider, so before anything is registered
        self.config = cfg
        super().__init__(c.COMPONENT_TYPE, name, None, opts)
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
            kms_key_id=cfg.stream_key_id,
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
        external_id = _external_id(args, cfg)
        if external_id is None:
            trust = json.dumps(trust_policy(cfg.trusted_account_id))
        else:
            trust = pulumi.Output.secret(external_id).apply(
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
            lambda arns: json.dumps(write_policy(arns[0], arns[1], cfg.customer_key_arn))
        )
        self.policy = aws.iam.Policy(
            f"{name}-write",
            name=cfg.policy_name,
            path=cfg.role_path,
            # The description is ForceNew: an adopted policy keeps its own (Amplitude's guide
            # sets none), or importing it would replace it.
            description=None
            if cfg.import_policy
            else f"Lets Amplitude write cohort updates to Kinesis stream {cfg.stream_name}.",
            policy=document,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(import_=cfg.import_policy)
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

        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.destination = pulumi.Output.all(self.stream.name, self.region, self.role.arn).apply(
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


def _external_id(args: Mapping[str, Any], cfg: DestinationConfig) -> pulumi.Input[str] | None:
    """The validated external ID; one passed as an Output (a secret) is validated once known."""
    given = args.get("external_id")
    if not isinstance(given, pulumi.Output):
        return cfg.external_id

    def checked(value: str | None) -> str:
        # Same rule, same message (its length, never its value) as any other input.
        checked_id = parse_config({c.CONFIG_EXTERNAL_ID: value}, stack="").external_id
        if checked_id is None:
            raise ConfigError([f"{c.CONFIG_EXTERNAL_ID}: the Output resolved to no value"])
        return checked_id

    return given.apply(checked)
