# ruff: noqa: RUF001 - the README cells use en dashes for ranges, as the README always has
"""The program's config keys as one table: parsing, Pulumi.yaml, the README and the schema read it.

Each row is a key of the project namespace: its Pulumi type, the default `Pulumi.yaml` declares
(which the Pulumi CLI passes to every stack that sets nothing), its description (Pulumi.yaml's and
the component schema's), its README cells, the rule a value must meet (a pure check returning what
it breaks), whether it is a secret and which component takes it. Rules that tie two keys together
(shardCount and streamMode, kmsKeyArn and encryption, the import IDs) live in `config.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from provisioning import constants as c

Rule = Callable[[Any], str | None]

DESTINATION: Final = "destination"
CONSUMER: Final = "consumer"


@dataclass(frozen=True)
class Key:
    """One config key: its type, default, words, rule and owner."""

    name: str
    type: str  # Pulumi's type name: string, integer, boolean or object
    default: Any  # as Pulumi.yaml declares it; "" and 0 read as "not set" where the README says so
    description: str
    readme_default: str
    readme_rule: str
    component: str = DESTINATION
    rule: Rule | None = None
    secret: bool = False
    field: str = ""  # the config dataclass's field; derived from the name when empty

    @property
    def attribute(self) -> str:
        """The field it fills: `kmsKeyArn` is `kms_key_arn`, `consumerBatchSize` `batch_size`."""
        if self.field:
            return self.field
        name = self.name
        if self.component == CONSUMER and name != c.CONFIG_CONSUMER:
            name = name.removeprefix("consumer")
        return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def pattern(regex: str, rule: str) -> Rule:
    """A rule: the whole value matches `regex`."""
    return lambda value: None if re.fullmatch(regex, value) else rule


def between(bounds: tuple[int, int], unset: int | None = None) -> Rule:
    """A rule: low <= value <= high (or the value that means "not set")."""
    low, high = bounds
    return lambda value: (
        None if value == unset or low <= value <= high else f"must be between {low} and {high}"
    )


def one_of(choices: tuple[Any, ...], what: str = "") -> Rule:
    """A rule: the value is one of `choices`."""
    listed = ", ".join(map(str, choices))
    return lambda value: None if value in choices else f"must be one of {what}{listed}"


# Characters IAM reads as wildcards or variables in a policy's Resource.
_POLICY_SPECIAL = ("*", "?", "$")


def _role_path(value: str) -> str | None:
    if not re.fullmatch(c.ROLE_PATH_PATTERN, value):
        return "must be '/' or start and end with '/', printable ASCII, at most 512 characters"
    if any(char in value for char in _POLICY_SPECIAL):
        # AWS accepts these in a path, but the role's ARN is a Resource in the write policy,
        # where '*' and '?' are wildcards and '${...}' a variable: they would widen the grant.
        return (
            "'*', '?' and '$' are not allowed "
            "(the role ARN is a policy resource, where they would match other roles)"
        )
    return None


_MANAGED_POLICY_ARN = pattern(
    c.MANAGED_POLICY_ARN_PATTERN,
    "must be a managed policy ARN, arn:aws:iam::<12-digit account>:policy/<name>",
)


def _consumer_range(
    name: str, default: int, bounds: tuple[int, int], words: str, readme_note: str = ""
) -> Key:
    """A consumer key holding a whole number in AWS's range; `{range}` in its words is the range."""
    low, high = bounds
    return Key(
        name, "integer", default, words.format(range=f"{low}-{high}"),
        str(default), f"{low}–{high}{readme_note}",
        component=CONSUMER, rule=between(bounds),
    )  # fmt: skip


KEYS: Final = (
    Key(
        c.CONFIG_STREAM_NAME, "string", c.DEFAULT_STREAM_NAME,
        "Kinesis stream name; 1-128 of [a-zA-Z0-9_.-].",
        f"`{c.DEFAULT_STREAM_NAME}`", "1–128 of `[a-zA-Z0-9_.-]`",
        rule=pattern(c.STREAM_NAME_PATTERN, "1-128 characters, only [a-zA-Z0-9_.-] allowed"),
    ),
    Key(
        c.CONFIG_STREAM_MODE, "string", "ON_DEMAND",
        "ON_DEMAND or PROVISIONED.",
        "`ON_DEMAND`", "`ON_DEMAND` or `PROVISIONED`",
        rule=one_of(c.STREAM_MODES),
    ),
    Key(
        c.CONFIG_SHARD_COUNT, "integer", c.SHARD_COUNT_UNSET,
        "Shards for a PROVISIONED stream, 1-10000; 0 (the default) means 1 for PROVISIONED and "
        "none for ON_DEMAND; any other value is an error with ON_DEMAND.",
        "`0`, meaning not set: 1 with `PROVISIONED`", "1–10000; an error with `ON_DEMAND`",
        rule=between(c.SHARD_COUNT_RANGE, unset=c.SHARD_COUNT_UNSET),
    ),
    Key(
        c.CONFIG_RETENTION_HOURS, "integer", 24,
        "Record retention, 24-8760 hours.",
        "24", "24–8760",
        rule=between(c.RETENTION_HOURS_RANGE),
    ),
    Key(
        c.CONFIG_ENCRYPTION, "string", "AWS_MANAGED",
        "NONE, AWS_MANAGED (alias/aws/kinesis) or KMS (customer-managed key, needs kmsKeyArn).",
        "`AWS_MANAGED` (`alias/aws/kinesis`)", "`NONE`, `AWS_MANAGED` or `KMS`",
        rule=one_of(c.ENCRYPTIONS),
    ),
    Key(
        c.CONFIG_KMS_KEY_ARN, "string", "",
        "ARN of the customer-managed KMS key, in the stack's region and account unless "
        "kmsKeyCrossAccount is true; required with encryption KMS, an error otherwise.",
        "—", "a KMS key ARN in the stack's region (and account); required with `KMS`, an error "
        "otherwise",
        rule=pattern(
            c.KMS_KEY_ARN_PATTERN,
            "must be a KMS key ARN, arn:aws:kms:<region>:<12-digit account>:key/<key id>",
        ),
    ),
    Key(
        c.CONFIG_KMS_KEY_CROSS_ACCOUNT, "boolean", False,
        "States that kmsKeyArn belongs to another AWS account on purpose (its key policy must "
        "grant this account); false (the default) requires the stack's own account.",
        "`false`", "`true` lets `kmsKeyArn` name another account's key",
    ),
    Key(
        c.CONFIG_ROLE_NAME, "string", c.DEFAULT_ROLE_NAME,
        r"Name of the IAM role Amplitude assumes; 1-64 of [\w+=,.@-].",
        f"`{c.DEFAULT_ROLE_NAME}`", r"1–64 of `[\w+=,.@-]`",
        rule=pattern(c.ROLE_NAME_PATTERN, r"1-64 characters, only [\w+=,.@-] allowed"),
    ),
    Key(
        c.CONFIG_ROLE_PATH, "string", "/",
        'IAM path of the role and policy; "/" or /segments/ ending in "/".',
        "`/`", "`/` or `/…/`, printable ASCII, no `*`, `?` or `$`",
        rule=_role_path,
    ),
    Key(
        c.CONFIG_MAX_SESSION_SECONDS, "integer", 3600,
        "Role maximum session duration, 3600-43200 seconds.",
        "3600", "3600–43200",
        rule=between(c.MAX_SESSION_SECONDS_RANGE),
    ),
    Key(
        c.CONFIG_PERMISSIONS_BOUNDARY_ARN, "string", "",
        "Optional managed-policy ARN set as the role's permissions boundary.",
        "—", "a managed policy ARN",
        rule=_MANAGED_POLICY_ARN,
    ),
    Key(
        c.CONFIG_TRUSTED_ACCOUNT_ID, "string", c.AMPLITUDE_ACCOUNT_ID,
        "The AWS account allowed to assume the role (Amplitude's exporting account).",
        f"`{c.AMPLITUDE_ACCOUNT_ID}` (Amplitude)", "12 digits",
        rule=pattern(c.ACCOUNT_ID_PATTERN, "must be a 12-digit AWS account ID"),
    ),
    Key(
        c.CONFIG_EXTERNAL_ID, "string", "",
        r"Optional sts:ExternalId the trust policy requires (set it as a secret); 2-1224 of "
        r"[\w+=,.@:/-]. Must be matched on the Amplitude side.",
        "— (secret)", r"2–1224 of `[\w+=,.@:/-]`",
        rule=pattern(c.EXTERNAL_ID_PATTERN, r"2-1224 characters, only [\w+=,.@:/-] allowed"),
        secret=True,
    ),
    Key(
        c.CONFIG_DISPLAY_NAME, "string", "",
        'Display name for the destination in Amplitude; defaults to "Kinesis cohorts (<stack>)".',
        "`Kinesis cohorts (<stack>)`", "shown in Amplitude's form",
    ),
    Key(
        c.CONFIG_TAGS, "object", {},
        "Tags applied to every resource, an object of string keys and values (default none); "
        "the rules of every service that receives them apply: letters, digits, spaces and "
        "_./=+-@ (IAM's and Kinesis's; no @ with consumer lambda, for DynamoDB), key 1-128 and "
        "value 0-256 characters, at most 50, no aws: prefix.",
        "none", "object of strings, applied to every resource (`pulumi config set --path "
        "tags.team growth`); letters, digits, spaces and `_./=+-@` (IAM's and Kinesis's "
        "characters; no `@` with `consumer: lambda`, for DynamoDB), key 1–128, value 0–256, at "
        "most 50, no `aws:`",
    ),
    Key(
        c.CONFIG_PROTECT_STREAM, "boolean", True,
        "Sets Pulumi's protect on the stream, so no up or destroy can replace or delete it (and "
        "its data) until this is false.",
        "`true`", "Pulumi's `protect` on the stream: no `up` or `destroy` may replace or delete it",
    ),
    Key(
        c.CONFIG_POLICY_NAME, "string", "",
        r"Fixed name of the write policy (1-128 of [\w+=,.@-]); empty (the default) lets Pulumi "
        r"auto-name it. Required with importPolicy.",
        "— (auto-named)", r"1–128 of `[\w+=,.@-]`; a fixed name for the write policy, required "
        "with `importPolicy`",
        rule=pattern(c.POLICY_NAME_PATTERN, r"1-128 characters, only [\w+=,.@-] allowed"),
    ),
    Key(
        c.CONFIG_IMPORT_STREAM, "string", "",
        "Name of an existing stream to adopt (Pulumi's import option); must equal streamName.",
        "—", "adopt an existing stream; must equal `streamName`",
        rule=pattern(c.STREAM_NAME_PATTERN, "1-128 characters, only [a-zA-Z0-9_.-] allowed"),
    ),
    Key(
        c.CONFIG_IMPORT_ROLE, "string", "",
        "Name of an existing role to adopt (Pulumi's import option); must equal roleName.",
        "—", "adopt an existing role; must equal `roleName`",
        rule=pattern(c.ROLE_NAME_PATTERN, r"1-64 characters, only [\w+=,.@-] allowed"),
    ),
    Key(
        c.CONFIG_IMPORT_POLICY, "string", "",
        "ARN of an existing managed policy to adopt (Pulumi's import option); needs policyName "
        "set to its name.",
        "—", "adopt an existing policy by ARN; needs `policyName` (see [Adopting a hand-made "
        "destination](#adopting-a-hand-made-destination))",
        rule=_MANAGED_POLICY_ARN,
    ),
    Key(
        c.CONFIG_CONSUMER, "string", c.CONSUMER_NONE,
        "none (the default; the stream, role and policy only) or lambda (also a Lambda consumer "
        "writing membership to DynamoDB, with its tables, failure queue, logs and alarms).",
        "`none`", "`none` or `lambda` (see [`consumer: lambda`](#consumer-lambda-the-consumer-in-"
        "the-same-pulumi-up))",
        component=CONSUMER,
        rule=one_of(c.CONSUMERS),
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_MEMORY_MB,
        c.DEFAULT_CONSUMER_MEMORY_MB,
        c.CONSUMER_MEMORY_MB_RANGE,
        "Lambda consumer memory, {range} MB.",
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_TIMEOUT_SECONDS,
        c.DEFAULT_CONSUMER_TIMEOUT_SECONDS,
        c.CONSUMER_TIMEOUT_SECONDS_RANGE,
        "Lambda consumer timeout, {range} seconds.",
    ),
    Key(
        c.CONFIG_CONSUMER_RESERVED_CONCURRENCY, "integer", c.CONSUMER_RESERVED_CONCURRENCY_UNSET,
        "Reserved concurrency of the Lambda consumer, 1-1000; 0 (the default) reserves none.",
        "`0`, meaning none reserved", "1–1000",
        component=CONSUMER,
        rule=between(
            c.CONSUMER_RESERVED_CONCURRENCY_RANGE, unset=c.CONSUMER_RESERVED_CONCURRENCY_UNSET
        ),
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_BATCH_SIZE,
        c.DEFAULT_CONSUMER_BATCH_SIZE,
        c.CONSUMER_BATCH_SIZE_RANGE,
        "Records per invocation (event source mapping BatchSize), {range}.",
        " records per invocation",
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS,
        c.DEFAULT_CONSUMER_BATCHING_WINDOW_SECONDS,
        c.CONSUMER_BATCHING_WINDOW_SECONDS_RANGE,
        "Seconds the mapping gathers records before invoking "
        "(MaximumBatchingWindowInSeconds), {range}.",
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_PARALLELIZATION_FACTOR,
        c.DEFAULT_CONSUMER_PARALLELIZATION_FACTOR,
        c.CONSUMER_PARALLELIZATION_FACTOR_RANGE,
        "Concurrent batches per shard (ParallelizationFactor), {range}.",
        " concurrent batches per shard",
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_MAX_RETRIES,
        c.DEFAULT_CONSUMER_MAX_RETRIES,
        c.CONSUMER_MAX_RETRIES_RANGE,
        "Retries of a failing batch before it goes to the failure queue "
        "(MaximumRetryAttempts), {range}.",
        " retries of a failing batch",
    ),
    _consumer_range(
        c.CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS,
        c.DEFAULT_CONSUMER_MAX_RECORD_AGE_SECONDS,
        c.CONSUMER_MAX_RECORD_AGE_SECONDS_RANGE,
        "Oldest record the mapping still sends to the function "
        "(MaximumRecordAgeInSeconds), {range}.",
        ' (AWS\'s "forever", -1, is refused: a bounded age is the point)',
    ),
    Key(
        c.CONFIG_CONSUMER_LOG_RETENTION_DAYS, "integer", c.DEFAULT_CONSUMER_LOG_RETENTION_DAYS,
        "Retention of the consumer's log group, one of CloudWatch Logs' values (1, 3, 5, 7, 14, "
        "30, 60, 90, ...).",
        str(c.DEFAULT_CONSUMER_LOG_RETENTION_DAYS),
        "one of CloudWatch Logs' values (1, 3, 5, 7, 14, 30, 60, 90, …, 3653)",
        component=CONSUMER,
        rule=one_of(c.LOG_RETENTION_DAYS, "CloudWatch Logs' retentions "),
    ),
    Key(
        c.CONFIG_CONSUMER_ARCHITECTURE, "string", c.DEFAULT_CONSUMER_ARCHITECTURE,
        "x86_64 or arm64; the code archive must be built for it "
        "(cohort-lambda-archive --arch ...).",
        f"`{c.DEFAULT_CONSUMER_ARCHITECTURE}`", "`x86_64` or `arm64`",
        component=CONSUMER,
        rule=one_of(c.CONSUMER_ARCHITECTURES),
    ),
    Key(
        c.CONFIG_CONSUMER_ALARMS, "boolean", True,
        "CloudWatch alarms on the mapping's iterator age and on the failure queue's depth.",
        "`true`", "alarms on iterator age and failure-queue depth",
        component=CONSUMER,
    ),
    Key(
        c.CONFIG_CONSUMER_ARCHIVE, "string", "",
        'Path of the function\'s code archive, relative to the project; "" (the default) means '
        "dist/lambda-<consumerArchitecture>.zip, built by cohort-lambda-archive.",
        "`dist/lambda-<architecture>.zip`",
        "the function's code: a zip holding `sync/lambda_handler.py` (`cohort-lambda-archive`)",
        component=CONSUMER,
        field="archive_path",
    ),
)  # fmt: skip

BY_NAME: Final = {key.name: key for key in KEYS}
DESTINATION_KEYS: Final = tuple(key for key in KEYS if key.component == DESTINATION)
CONSUMER_KEYS: Final = tuple(key for key in KEYS if key.component == CONSUMER)
DESTINATION_KEY_NAMES: Final = tuple(key.name for key in DESTINATION_KEYS)
# Every consumer key but `consumer` itself: each is an error while `consumer` is none.
CONSUMER_SETTING_NAMES: Final = tuple(
    key.name for key in CONSUMER_KEYS if key.name != c.CONFIG_CONSUMER
)
