"""Stack configuration: raw values in, read by the key table, one validated frozen dataclass out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning import aws_rules
from provisioning import constants as c
from provisioning.archive import archive_problem, default_archive
from provisioning.errors import ConfigError
from provisioning.keys import BY_NAME, CONSUMER_KEYS, DESTINATION, KEYS, Key
from provisioning.kms import key_region_problem


@dataclass(frozen=True)
class ConsumerConfig:
    """The Lambda consumer's settings, validated against Lambda's and CloudWatch's rules."""

    archive_path: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None  # None: the account's unreserved concurrency
    batch_size: int
    batching_window_seconds: int
    parallelization_factor: int
    max_retries: int
    max_record_age_seconds: int
    log_retention_days: int
    architecture: str
    alarms: bool


@dataclass(frozen=True)
class DestinationConfig:
    """Everything the program declares, validated against AWS's rules; defaults live in keys.py."""

    stream_name: str
    stream_mode: str
    shard_count: int | None  # None: ON_DEMAND, which scales its own shards
    retention_hours: int
    encryption: str
    kms_key_arn: str | None
    kms_key_cross_account: bool
    role_name: str
    role_path: str
    max_session_seconds: int
    permissions_boundary_arn: str | None
    trusted_account_id: str
    external_id: str | None = field(repr=False)
    display_name: str
    tags: Mapping[str, str]
    protect_stream: bool
    policy_name: str | None
    import_stream: str | None
    import_role: str | None
    import_policy: str | None
    consumer: ConsumerConfig | None  # None: `consumer: none`, no Lambda consumer

    @property
    def attachment_import_id(self) -> str | None:
        """The attachment's import ID (`<role>/<policy ARN>`) when both its ends are adopted."""
        if self.import_role and self.import_policy:
            return f"{self.import_role}/{self.import_policy}"
        return None

    @property
    def trusted_principal_arn(self) -> str:
        """The one principal the role's trust policy names."""
        return f"arn:aws:iam::{self.trusted_account_id}:root"

    @property
    def uses_customer_key(self) -> bool:
        """True when writers need kms:GenerateDataKey on a customer-managed key."""
        return self.encryption == "KMS"

    @property
    def customer_key_arn(self) -> str | None:
        """The customer-managed key writers and readers need a grant on, or None."""
        return self.kms_key_arn if self.uses_customer_key else None

    @property
    def stream_key_id(self) -> str | None:
        """The stream's `kms_key_id`: the customer's key, AWS's managed alias, or none."""
        if self.encryption == "AWS_MANAGED":
            return c.AWS_MANAGED_KINESIS_KEY
        return self.customer_key_arn

    @property
    def encrypted(self) -> bool:
        """True when the stream (and so the consumer's tables) are encrypted at rest by KMS."""
        return self.encryption != "NONE"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def shown(key: Key, value: Any) -> str:
    """How a problem names a key's value: its repr, or only its length for a secret."""
    if key.secret:
        return f"{key.name} (secret, {len(str(value))} characters)"
    return f"{key.name} {value!r}"


def _typed(key: Key, value: Any) -> tuple[Any, str | None]:
    """A raw value (Pulumi passes text; other languages JSON values) as the key's type."""
    if key.type == "string":
        return str(value).strip(), None
    if key.type == "integer":
        if isinstance(value, float) and value.is_integer():
            return int(value), None  # numbers cross the provider's wire as floats
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        try:
            return int(str(value).strip()), None
        except ValueError:
            return None, "must be a whole number"
    if key.type == "boolean":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true", None
        return None, "must be true or false"
    return _object(value)


def _object(value: Any) -> tuple[Any, str | None]:
    rule = "must be an object of string keys and values"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None, rule
    if not isinstance(value, Mapping):
        return None, rule
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None, rule
    return dict(value), None


def read_keys(raw: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Every key of the table typed and checked by its own rule; a bad value is left out."""
    values: dict[str, Any] = {}
    for key in KEYS:
        value = raw.get(key.name)
        if _blank(value) or (key.type == "object" and value == {}):
            values[key.name] = key.default
            continue
        typed, problem = _typed(key, value)
        if problem is None and key.rule is not None:
            problem = key.rule(typed)
        if problem is not None:
            problems.append(f"{shown(key, typed if typed is not None else value)}: {problem}")
            continue
        values[key.name] = typed
    return values


def unknown_key_problems(keys: list[str], known: list[str], namespace: str = "") -> list[str]:
    """`key: unknown key; did you mean X?` for each key the table lacks (values never shown)."""
    return [
        f"{namespace}{key}: unknown key{aws_rules.did_you_mean(key, known)}"
        + ("" if aws_rules.closest(key, known) else f"; known keys are {', '.join(known)}")
        for key in sorted(keys)
    ]


def _optional(values: Mapping[str, Any], name: str) -> Any:
    """A key whose declared default ("" or absent) means "not set"."""
    value = values.get(name)
    return None if value in ("", None) else value


def parse_config(
    raw: Mapping[str, Any],
    stack: str,
    project_dir: Path | None = None,
    region: str | None = None,
) -> DestinationConfig:
    """Validate raw stack config (camelCase keys); raise ConfigError naming every problem.

    With `project_dir`, a Lambda consumer's code archive must exist under it. With `region` (the
    stack's `aws:region`), a customer-managed key must live there.
    """
    problems = unknown_key_problems([k for k in raw if k not in BY_NAME], list(BY_NAME))
    values = read_keys(raw, problems)
    _check_stream(values, problems)
    _check_key(values, region, problems)
    _check_imports(values, problems)
    consumer = _consumer(values, problems, project_dir)
    if c.CONFIG_TAGS in values:
        services: tuple[str, ...] = aws_rules.DESTINATION_SERVICES
        if values.get(c.CONFIG_CONSUMER) == c.CONSUMER_LAMBDA:
            services = aws_rules.CONSUMER_SERVICES
        for problem in aws_rules.tag_problems(values[c.CONFIG_TAGS], services):
            problems.append(f"{c.CONFIG_TAGS}{problem}")
    if problems:
        raise ConfigError(problems)

    fields = {
        key.attribute: _optional(values, key.name) if key.default == "" else values[key.name]
        for key in KEYS
        if key.component == DESTINATION
    }
    shards = values[c.CONFIG_SHARD_COUNT]
    if shards == c.SHARD_COUNT_UNSET:
        shards = 1 if values[c.CONFIG_STREAM_MODE] == "PROVISIONED" else None
    fields["shard_count"] = shards
    fields["display_name"] = fields["display_name"] or c.DEFAULT_DISPLAY_NAME_TEMPLATE.format(
        stack=stack
    )
    return DestinationConfig(**fields, consumer=consumer)


def _check_stream(values: Mapping[str, Any], problems: list[str]) -> None:
    shards = values.get(c.CONFIG_SHARD_COUNT)
    if values.get(c.CONFIG_STREAM_MODE) == "ON_DEMAND" and shards not in (
        None,
        c.SHARD_COUNT_UNSET,
    ):
        problems.append(
            f"{c.CONFIG_SHARD_COUNT} {shards!r}: only allowed with {c.CONFIG_STREAM_MODE} "
            "PROVISIONED (ON_DEMAND streams scale their own shards)"
        )


def _check_key(values: Mapping[str, Any], region: str | None, problems: list[str]) -> None:
    """kmsKeyArn with encryption KMS only, and in the stack's region (Kinesis refuses another)."""
    encryption = values.get(c.CONFIG_ENCRYPTION)
    arn = _optional(values, c.CONFIG_KMS_KEY_ARN)
    if c.CONFIG_KMS_KEY_ARN not in values or encryption is None:
        return  # already reported
    if arn is None:
        if encryption == "KMS":
            problems.append(
                f"{c.CONFIG_KMS_KEY_ARN} not set: required when {c.CONFIG_ENCRYPTION} is KMS"
            )
        return
    if encryption != "KMS":
        problems.append(
            f"{c.CONFIG_KMS_KEY_ARN} {arn!r}: only allowed with {c.CONFIG_ENCRYPTION} KMS "
            f"(it is {encryption!r})"
        )
    problem = None if region is None else key_region_problem(arn, region)
    if problem is not None:
        problems.append(problem)


def _check_imports(values: Mapping[str, Any], problems: list[str]) -> None:
    """Adopted resources must carry the names the program declares (each a ForceNew input)."""
    pairs = (
        (c.CONFIG_IMPORT_STREAM, c.CONFIG_STREAM_NAME),
        (c.CONFIG_IMPORT_ROLE, c.CONFIG_ROLE_NAME),
    )
    for import_key, name_key in pairs:
        adopted = _optional(values, import_key)
        declared = values.get(name_key)
        if adopted is not None and declared is not None and adopted != declared:
            noun = "stream" if import_key == c.CONFIG_IMPORT_STREAM else "role"
            problems.append(
                f"{import_key} {adopted!r}: must equal {name_key} ({declared!r}); a different "
                f"name would replace the adopted {noun}"
            )
    policy_arn = _optional(values, c.CONFIG_IMPORT_POLICY)
    if policy_arn is not None and c.CONFIG_POLICY_NAME in values:
        policy_name = _optional(values, c.CONFIG_POLICY_NAME)
        arn_name = policy_arn.rsplit("/", 1)[-1]
        if policy_name != arn_name:
            problems.append(
                f"{c.CONFIG_POLICY_NAME} {policy_name!r}: must be {arn_name!r}, the name of "
                f"{c.CONFIG_IMPORT_POLICY} {policy_arn!r} (a policy's name is ForceNew)"
            )


def _consumer(
    values: Mapping[str, Any], problems: list[str], project_dir: Path | None
) -> ConsumerConfig | None:
    """The consumer block (None for `consumer: none`); its keys are errors while it is none."""
    choice = values.get(c.CONFIG_CONSUMER)
    if choice is None:
        return None  # already reported; the other values were still checked
    settings = [key for key in CONSUMER_KEYS if key.name != c.CONFIG_CONSUMER]
    if choice != c.CONSUMER_LAMBDA:
        # Pulumi passes each declared default to every stack: a key counts as set when it differs.
        for key in settings:
            value = values.get(key.name, key.default)
            if value != key.default:
                problems.append(
                    f"{shown(key, value)}: only allowed with {c.CONFIG_CONSUMER} lambda "
                    f"(it is {choice!r})"
                )
        return None
    if any(key.name not in values for key in settings):
        return None  # already reported
    fields = {key.attribute: values[key.name] for key in settings}
    if fields["reserved_concurrency"] == c.CONSUMER_RESERVED_CONCURRENCY_UNSET:
        fields["reserved_concurrency"] = None
    architecture = fields["architecture"]
    fields["archive_path"] = fields["archive_path"] or default_archive(architecture)
    if project_dir is not None:
        path = Path(fields["archive_path"])
        problem = archive_problem(path if path.is_absolute() else project_dir / path, architecture)
        if problem is not None:
            problems.append(f"{c.CONFIG_CONSUMER_ARCHIVE} {fields['archive_path']!r}: {problem}")
    return ConsumerConfig(**fields)
