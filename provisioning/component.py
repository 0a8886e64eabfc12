"""The CohortDestination component: stream, trusted role, write policy and its attachment.

Also a Pulumi component package (component/PulumiPlugin.yaml): Pulumi's analyzer reads the
schema from the annotations and docstrings below, so they stay evaluated (no postponed
annotations) and every input is documented where it is declared.
"""

import json
from collections.abc import Mapping
from typing import Any, TypedDict, cast

import pulumi
import pulumi_aws as aws

from provisioning import constants as c
from provisioning.config import DestinationConfig, parse_config
from provisioning.errors import ConfigError
from provisioning.policies import trust_policy, write_policy


class CohortDestinationArgs(TypedDict, total=False):
    """Inputs of CohortDestination: the stack config keys, validated by the component itself.

    Each key is a DestinationConfig field; its camelCase form is the config key and the schema
    input. Adding a key is one line here (and its docstring, as Pulumi.yaml words it). Values are
    plain, since every key is checked before any resource is declared; only the external ID may
    be an Output, so a secret can be passed.
    """

    stream_name: str
    """Kinesis stream name; 1-128 of [a-zA-Z0-9_.-]."""
    stream_mode: str
    """ON_DEMAND or PROVISIONED."""
    shard_count: int
    """Shards for a PROVISIONED stream, 1-10000; 0 (the default) means 1 for PROVISIONED and none for ON_DEMAND; any other value is an error with ON_DEMAND."""  # noqa: E501
    retention_hours: int
    """Record retention, 24-8760 hours."""
    encryption: str
    """NONE, AWS_MANAGED (alias/aws/kinesis) or KMS (customer-managed key, needs kmsKeyArn)."""
    kms_key_arn: str
    """ARN of the customer-managed KMS key; required with encryption KMS, an error otherwise."""
    role_name: str
    r"""Name of the IAM role Amplitude assumes; 1-64 of [\w+=,.@-]."""
    role_path: str
    """IAM path of the role and policy; "/" or /segments/ ending in "/"."""
    max_session_seconds: int
    """Role maximum session duration, 3600-43200 seconds."""
    permissions_boundary_arn: str
    """Optional managed-policy ARN set as the role's permissions boundary."""
    trusted_account_id: str
    """The AWS account allowed to assume the role (Amplitude's exporting account)."""
    external_id: pulumi.Input[str]
    r"""Optional sts:ExternalId the trust policy requires (set it as a secret); 2-1224 of [\w+=,.@:/-]. Must be matched on the Amplitude side."""  # noqa: E501
    display_name: str
    """Display name for the destination in Amplitude; defaults to "Kinesis cohorts (<stack>)"."""
    tags: dict[str, str]
    """Tags applied to every resource, an object of string keys and values (default none)."""
    protect_stream: bool
    """Sets Pulumi's protect on the stream, so no up or destroy can replace or delete it (and its data) until this is false."""  # noqa: E501
    policy_name: str
    r"""Fixed name of the write policy (1-128 of [\w+=,.@-]); empty (the default) lets Pulumi auto-name it. Required with importPolicy."""  # noqa: E501
    import_stream: str
    """Name of an existing stream to adopt (Pulumi's import option); must equal streamName."""
    import_role: str
    """Name of an existing role to adopt (Pulumi's import option); must equal roleName."""
    import_policy: str
    """ARN of an existing managed policy to adopt (Pulumi's import option); needs policyName set to its name."""  # noqa: E501


def config_key(field: str) -> str:
    """The stack config key (and schema input) of an Args field: `kms_key_arn` → `kmsKeyArn`."""
    first, *rest = field.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def args_from_config(config: pulumi.Config) -> CohortDestinationArgs:
    """The component's inputs read from stack config, one per Args field."""
    read: dict[str, Any] = {}
    for field in CohortDestinationArgs.__annotations__:
        key = config_key(field)
        read[field] = config.get_object(key) if key == c.CONFIG_TAGS else config.get(key)
    present = {field: value for field, value in read.items() if value is not None}
    return cast(CohortDestinationArgs, present)


def read_config(args: Mapping[str, Any], stack: str) -> DestinationConfig:
    """Validate the inputs with the program's own rules, whatever language passed them."""
    raw = {config_key(field): _whole(field, value) for field, value in args.items()}
    secret = raw.pop(c.CONFIG_EXTERNAL_ID, None)
    outputs = sorted(key for key, value in raw.items() if isinstance(value, pulumi.Output))
    if outputs:
        raise ConfigError(
            [
                f"{key}: must be a plain value, not an Output (every key is validated before "
                "any resource is declared); only externalId may be an Output"
                for key in outputs
            ]
        )
    if not isinstance(secret, pulumi.Output):
        raw[c.CONFIG_EXTERNAL_ID] = secret
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
        cfg = read_config(args, stack=pulumi.get_stack())
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
            lambda arns: json.dumps(write_policy(arns[0], arns[1], _customer_key(cfg)))
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


def _whole(field: str, value: Any) -> Any:
    """Numbers cross the wire as floats (and the SDK's host passes them on): 3.0 is 3."""
    integer = CohortDestinationArgs.__annotations__.get(field) is int
    if integer and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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


def _stream_key(cfg: DestinationConfig) -> str | None:
    if cfg.encryption == "AWS_MANAGED":
        return c.AWS_MANAGED_KINESIS_KEY
    return cfg.kms_key_arn if cfg.encryption == "KMS" else None


def _customer_key(cfg: DestinationConfig) -> str | None:
    return cfg.kms_key_arn if cfg.uses_customer_key else None
