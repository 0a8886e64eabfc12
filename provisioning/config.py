"""Stack configuration: raw Pulumi config values in, one validated frozen dataclass out."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning import constants as c
from provisioning.errors import ConfigError


@dataclass(frozen=True)
class DestinationConfig:
    """Everything the CohortDestination component needs, validated against AWS's rules."""

    stream_name: str = c.DEFAULT_STREAM_NAME
    stream_mode: str = "ON_DEMAND"
    shard_count: int | None = None
    retention_hours: int = 24
    encryption: str = "AWS_MANAGED"
    kms_key_arn: str | None = None
    role_name: str = c.DEFAULT_ROLE_NAME
    role_path: str = "/"
    max_session_seconds: int = 3600
    permissions_boundary_arn: str | None = None
    trusted_account_id: str = c.AMPLITUDE_ACCOUNT_ID
    external_id: str | None = field(default=None, repr=False)
    display_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    consumer: ConsumerConfig | None = None  # None: `consumer: none`, no Lambda consumer
    protect_stream: bool = True
    policy_name: str | None = None
    import_stream: str | None = None
    import_role: str | None = None
    import_policy: str | None = None

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


# Characters IAM reads as wildcards or variables in a policy's Resource.
_POLICY_SPECIAL = ("*", "?", "$")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _as_int(key: str, value: Any, problems: list[str]) -> int | None:
    if isinstance(value, bool):
        problems.append(f"{key} {value!r}: must be a whole number")
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        problems.append(f"{key} {value!r}: must be a whole number")
        return None


def _in_range(key: str, value: int | None, bounds: tuple[int, int], problems: list[str]) -> None:
    low, high = bounds
    if value is not None and not low <= value <= high:
        problems.append(f"{key} {value!r}: must be between {low} and {high}")


def _matches(key: str, value: str, pattern: str, rule: str, problems: list[str]) -> None:
    if not re.fullmatch(pattern, value):
        problems.append(f"{key} {value!r}: {rule}")


def _parse_tags(value: Any, problems: list[str]) -> dict[str, str]:
    key = c.CONFIG_TAGS
    if _blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            problems.append(f"{key} {value!r}: must be an object of string keys and values")
            return {}
    if not isinstance(value, Mapping):
        problems.append(f"{key} {value!r}: must be an object of string keys and values")
        return {}
    tags: dict[str, str] = {}
    if len(value) > c.MAX_TAGS:
        problems.append(f"{key}: {len(value)} tags: at most {c.MAX_TAGS} allowed")
    for tag_key, tag_value in value.items():
        if not isinstance(tag_key, str) or not isinstance(tag_value, str):
            problems.append(f"{key}.{tag_key} {tag_value!r}: keys and values must be strings")
            continue
        if not 1 <= len(tag_key) <= c.TAG_KEY_MAX_CHARS or tag_key.lower().startswith("aws:"):
            problems.append(
                f"{key} key {tag_key!r}: 1-{c.TAG_KEY_MAX_CHARS} characters, not 'aws:'-prefixed"
            )
        if len(tag_value) > c.TAG_VALUE_MAX_CHARS:
            problems.append(
                f"{key}.{tag_key} {tag_value!r}: at most {c.TAG_VALUE_MAX_CHARS} characters"
            )
        tags[tag_key] = tag_value
    return tags


@dataclass(frozen=True)
class _Day2:
    protect_stream: bool
    policy_name: str | None
    import_stream: str | None
    import_role: str | None
    import_policy: str | None


def _parse_day2(
    raw: Mapping[str, Any], stream_name: str, role_name: str, problems: list[str]
) -> _Day2:
    """Protection, the policy's fixed name and the import IDs, checked against each other."""

    def text(key: str) -> str | None:
        value = raw.get(key)
        return None if _blank(value) else str(value).strip()

    protect_raw = raw.get(c.CONFIG_PROTECT_STREAM)
    # An invalid value is reported; protection stays on, the safe reading.
    protect = (
        _blank(protect_raw) or _as_bool(c.CONFIG_PROTECT_STREAM, protect_raw, problems) is not False
    )
    policy_name = text(c.CONFIG_POLICY_NAME)
    if policy_name is not None:
        _matches(
            c.CONFIG_POLICY_NAME,
            policy_name,
            c.POLICY_NAME_PATTERN,
            r"1-128 characters, only [\w+=,.@-] allowed",
            problems,
        )
    import_stream = text(c.CONFIG_IMPORT_STREAM)
    if import_stream is not None and import_stream != stream_name:
        # The stream's name is ForceNew: adopting one name while declaring another replaces it.
        problems.append(
            f"{c.CONFIG_IMPORT_STREAM} {import_stream!r}: must equal {c.CONFIG_STREAM_NAME} "
            f"({stream_name!r}); a different name would replace the adopted stream"
        )
    import_role = text(c.CONFIG_IMPORT_ROLE)
    if import_role is not None and import_role != role_name:
        problems.append(
            f"{c.CONFIG_IMPORT_ROLE} {import_role!r}: must equal {c.CONFIG_ROLE_NAME} "
            f"({role_name!r}); a different name would replace the adopted role"
        )
    import_policy = text(c.CONFIG_IMPORT_POLICY)
    if import_policy is not None:
        _matches(
            c.CONFIG_IMPORT_POLICY,
            import_policy,
            c.MANAGED_POLICY_ARN_PATTERN,
            "must be a managed policy ARN, arn:aws:iam::<12-digit account>:policy/<name>",
            problems,
        )
        arn_name = import_policy.rsplit("/", 1)[-1]
        if policy_name != arn_name:
            problems.append(
                f"{c.CONFIG_POLICY_NAME} {policy_name!r}: must be {arn_name!r}, the name of "
                f"{c.CONFIG_IMPORT_POLICY} {import_policy!r} (a policy's name is ForceNew)"
            )
    return _Day2(protect, policy_name, import_stream, import_role, import_policy)


def parse_config(
    raw: Mapping[str, Any], stack: str, project_dir: Path | None = None
) -> DestinationConfig:
    """Validate raw stack config (camelCase keys); raise ConfigError naming every problem.

    With `project_dir`, a Lambda consumer's code archive must exist under it.
    """
    problems: list[str] = []
    known = set(c.PROGRAM_CONFIG_KEYS)
    for key in sorted(set(raw) - known):
        problems.append(
            f"{key} {raw[key]!r}: unknown key; known keys are {', '.join(sorted(known))}"
        )

    def text(key: str, default: str | None) -> str | None:
        value = raw.get(key)
        return default if _blank(value) else str(value).strip()

    stream_name = text(c.CONFIG_STREAM_NAME, c.DEFAULT_STREAM_NAME) or ""
    _matches(
        c.CONFIG_STREAM_NAME,
        stream_name,
        c.STREAM_NAME_PATTERN,
        "1-128 characters, only [a-zA-Z0-9_.-] allowed",
        problems,
    )

    stream_mode = text(c.CONFIG_STREAM_MODE, "ON_DEMAND") or ""
    if stream_mode not in c.STREAM_MODES:
        problems.append(
            f"{c.CONFIG_STREAM_MODE} {stream_mode!r}: must be one of {', '.join(c.STREAM_MODES)}"
        )

    shard_count: int | None = None
    if not _blank(raw.get(c.CONFIG_SHARD_COUNT)):
        shard_count = _as_int(c.CONFIG_SHARD_COUNT, raw[c.CONFIG_SHARD_COUNT], problems)
        if shard_count == c.SHARD_COUNT_UNSET:
            shard_count = 1 if stream_mode == "PROVISIONED" else None
        elif stream_mode == "ON_DEMAND" and shard_count is not None:
            problems.append(
                f"{c.CONFIG_SHARD_COUNT} {shard_count!r}: only allowed with {c.CONFIG_STREAM_MODE} "
                "PROVISIONED (ON_DEMAND streams scale their own shards)"
            )
            shard_count = None
        _in_range(c.CONFIG_SHARD_COUNT, shard_count, c.SHARD_COUNT_RANGE, problems)
    elif stream_mode == "PROVISIONED":
        shard_count = 1

    retention = raw.get(c.CONFIG_RETENTION_HOURS)
    retention_hours = (
        24 if _blank(retention) else _as_int(c.CONFIG_RETENTION_HOURS, retention, problems)
    )
    _in_range(c.CONFIG_RETENTION_HOURS, retention_hours, c.RETENTION_HOURS_RANGE, problems)

    encryption = text(c.CONFIG_ENCRYPTION, "AWS_MANAGED") or ""
    if encryption not in c.ENCRYPTIONS:
        problems.append(
            f"{c.CONFIG_ENCRYPTION} {encryption!r}: must be one of {', '.join(c.ENCRYPTIONS)}"
        )
    kms_key_arn = text(c.CONFIG_KMS_KEY_ARN, None)
    if kms_key_arn is not None:
        if encryption != "KMS":
            problems.append(
                f"{c.CONFIG_KMS_KEY_ARN} {kms_key_arn!r}: "
                f"only allowed with {c.CONFIG_ENCRYPTION} KMS "
                f"(it is {encryption!r})"
            )
        _matches(
            c.CONFIG_KMS_KEY_ARN,
            kms_key_arn,
            c.KMS_KEY_ARN_PATTERN,
            "must be a KMS key ARN, arn:aws:kms:<region>:<12-digit account>:key/<key id>",
            problems,
        )
    elif encryption == "KMS":
        problems.append(
            f"{c.CONFIG_KMS_KEY_ARN} not set: required when {c.CONFIG_ENCRYPTION} is KMS"
        )

    role_name = text(c.CONFIG_ROLE_NAME, c.DEFAULT_ROLE_NAME) or ""
    _matches(
        c.CONFIG_ROLE_NAME,
        role_name,
        c.ROLE_NAME_PATTERN,
        r"1-64 characters, only [\w+=,.@-] allowed",
        problems,
    )
    role_path = text(c.CONFIG_ROLE_PATH, "/") or ""
    _matches(
        c.CONFIG_ROLE_PATH,
        role_path,
        c.ROLE_PATH_PATTERN,
        "must be '/' or start and end with '/', printable ASCII, at most 512 characters",
        problems,
    )
    if any(char in role_path for char in _POLICY_SPECIAL):
        # AWS accepts these in a path, but the role's ARN is a Resource in the write policy,
        # where '*' and '?' are wildcards and '${...}' a variable: they would widen the grant.
        problems.append(
            f"{c.CONFIG_ROLE_PATH} {role_path!r}: '*', '?' and '$' are not allowed "
            "(the role ARN is a policy resource, where they would match other roles)"
        )

    session = raw.get(c.CONFIG_MAX_SESSION_SECONDS)
    max_session = (
        3600 if _blank(session) else _as_int(c.CONFIG_MAX_SESSION_SECONDS, session, problems)
    )
    _in_range(c.CONFIG_MAX_SESSION_SECONDS, max_session, c.MAX_SESSION_SECONDS_RANGE, problems)

    boundary = text(c.CONFIG_PERMISSIONS_BOUNDARY_ARN, None)
    if boundary is not None:
        _matches(
            c.CONFIG_PERMISSIONS_BOUNDARY_ARN,
            boundary,
            c.MANAGED_POLICY_ARN_PATTERN,
            "must be a managed policy ARN, arn:aws:iam::<12-digit account>:policy/<name>",
            problems,
        )

    trusted = text(c.CONFIG_TRUSTED_ACCOUNT_ID, c.AMPLITUDE_ACCOUNT_ID) or ""
    _matches(
        c.CONFIG_TRUSTED_ACCOUNT_ID,
        trusted,
        c.ACCOUNT_ID_PATTERN,
        "must be a 12-digit AWS account ID",
        problems,
    )

    external_id = text(c.CONFIG_EXTERNAL_ID, None)
    if external_id is not None and not re.fullmatch(c.EXTERNAL_ID_PATTERN, external_id):
        # The value is a secret: name its length, never the value itself.
        problems.append(
            f"{c.CONFIG_EXTERNAL_ID} (secret, {len(external_id)} characters): "
            r"2-1224 characters, only [\w+=,.@:/-] allowed"
        )

    display_name = text(c.CONFIG_DISPLAY_NAME, None) or c.DEFAULT_DISPLAY_NAME_TEMPLATE.format(
        stack=stack
    )
    tags = _parse_tags(raw.get(c.CONFIG_TAGS), problems)
    consumer = parse_consumer(raw, problems, project_dir)
    day2 = _parse_day2(raw, stream_name, role_name, problems)

    if problems:
        raise ConfigError(problems)
    assert retention_hours is not None and max_session is not None
    return DestinationConfig(
        stream_name=stream_name,
        stream_mode=stream_mode,
        shard_count=shard_count,
        retention_hours=retention_hours,
        encryption=encryption,
        kms_key_arn=kms_key_arn,
        role_name=role_name,
        role_path=role_path,
        max_session_seconds=max_session,
        permissions_boundary_arn=boundary,
        trusted_account_id=trusted,
        external_id=external_id,
        display_name=display_name,
        tags=tags,
        consumer=consumer,
        protect_stream=day2.protect_stream,
        policy_name=day2.policy_name,
        import_stream=day2.import_stream,
        import_role=day2.import_role,
        import_policy=day2.import_policy,
    )


# --- The Lambda consumer (`consumer: lambda`) -----------------------------------------------


@dataclass(frozen=True)
class ConsumerConfig:
    """The Lambda consumer's settings, validated against Lambda's and CloudWatch's rules."""

    archive_path: str
    memory_mb: int = c.DEFAULT_CONSUMER_MEMORY_MB
    timeout_seconds: int = c.DEFAULT_CONSUMER_TIMEOUT_SECONDS
    reserved_concurrency: int | None = None
    batch_size: int = c.DEFAULT_CONSUMER_BATCH_SIZE
    batching_window_seconds: int = c.DEFAULT_CONSUMER_BATCHING_WINDOW_SECONDS
    parallelization_factor: int = c.DEFAULT_CONSUMER_PARALLELIZATION_FACTOR
    max_retries: int = c.DEFAULT_CONSUMER_MAX_RETRIES
    max_record_age_seconds: int = c.DEFAULT_CONSUMER_MAX_RECORD_AGE_SECONDS
    log_retention_days: int = c.DEFAULT_CONSUMER_LOG_RETENTION_DAYS
    architecture: str = c.DEFAULT_CONSUMER_ARCHITECTURE
    alarms: bool = True


# (key, default, allowed range) of every whole-number consumer key.
_CONSUMER_INTS: tuple[tuple[str, int, tuple[int, int] | None], ...] = (
    (c.CONFIG_CONSUMER_MEMORY_MB, c.DEFAULT_CONSUMER_MEMORY_MB, c.CONSUMER_MEMORY_MB_RANGE),
    (
        c.CONFIG_CONSUMER_TIMEOUT_SECONDS,
        c.DEFAULT_CONSUMER_TIMEOUT_SECONDS,
        c.CONSUMER_TIMEOUT_SECONDS_RANGE,
    ),
    (
        c.CONFIG_CONSUMER_RESERVED_CONCURRENCY,
        c.CONSUMER_RESERVED_CONCURRENCY_UNSET,
        c.CONSUMER_RESERVED_CONCURRENCY_RANGE,
    ),
    (c.CONFIG_CONSUMER_BATCH_SIZE, c.DEFAULT_CONSUMER_BATCH_SIZE, c.CONSUMER_BATCH_SIZE_RANGE),
    (
        c.CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS,
        c.DEFAULT_CONSUMER_BATCHING_WINDOW_SECONDS,
        c.CONSUMER_BATCHING_WINDOW_SECONDS_RANGE,
    ),
    (
        c.CONFIG_CONSUMER_PARALLELIZATION_FACTOR,
        c.DEFAULT_CONSUMER_PARALLELIZATION_FACTOR,
        c.CONSUMER_PARALLELIZATION_FACTOR_RANGE,
    ),
    (c.CONFIG_CONSUMER_MAX_RETRIES, c.DEFAULT_CONSUMER_MAX_RETRIES, c.CONSUMER_MAX_RETRIES_RANGE),
    (
        c.CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS,
        c.DEFAULT_CONSUMER_MAX_RECORD_AGE_SECONDS,
        c.CONSUMER_MAX_RECORD_AGE_SECONDS_RANGE,
    ),
    (c.CONFIG_CONSUMER_LOG_RETENTION_DAYS, c.DEFAULT_CONSUMER_LOG_RETENTION_DAYS, None),
)


def _as_bool(key: str, value: Any, problems: list[str]) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    problems.append(f"{key} {value!r}: must be true or false")
    return None


def _holds_handler(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return c.LAMBDA_HANDLER_FILE in archive.namelist()


def archive_command(architecture: str) -> str:
    """The documented command that builds the function's code archive."""
    return f"make lambda-archive ARCH={architecture}"


def parse_consumer(
    raw: Mapping[str, Any], problems: list[str], project_dir: Path | None = None
) -> ConsumerConfig | None:
    """The consumer block of the stack config (None for `consumer: none`); adds to `problems`."""
    consumer = (
        c.CONSUMER_NONE if _blank(raw.get(c.CONFIG_CONSUMER)) else str(raw[c.CONFIG_CONSUMER])
    )
    consumer = consumer.strip()
    known_choice = consumer in c.CONSUMERS
    if not known_choice:
        problems.append(
            f"{c.CONFIG_CONSUMER} {consumer!r}: must be one of {', '.join(c.CONSUMERS)}"
        )
    enabled = consumer == c.CONSUMER_LAMBDA
    # Pulumi passes each declared default to every stack: a key counts as set when it differs.
    changed: list[str] = []

    ints: dict[str, int] = {}
    for key, default, bounds in _CONSUMER_INTS:
        value = raw.get(key)
        number = default if _blank(value) else _as_int(key, value, problems)
        if number is None:
            continue
        if number != default:
            changed.append(key)
        if key == c.CONFIG_CONSUMER_RESERVED_CONCURRENCY and number == default:
            pass  # 0: no reserved concurrency
        elif bounds is not None:
            _in_range(key, number, bounds, problems)
        elif number not in c.LOG_RETENTION_DAYS:
            problems.append(
                f"{key} {number!r}: must be one of CloudWatch Logs' retentions "
                f"({', '.join(map(str, c.LOG_RETENTION_DAYS))})"
            )
        ints[key] = number

    architecture_raw = raw.get(c.CONFIG_CONSUMER_ARCHITECTURE)
    architecture = (
        c.DEFAULT_CONSUMER_ARCHITECTURE
        if _blank(architecture_raw)
        else str(architecture_raw).strip()
    )
    if architecture not in c.CONSUMER_ARCHITECTURES:
        problems.append(
            f"{c.CONFIG_CONSUMER_ARCHITECTURE} {architecture!r}: must be one of "
            f"{', '.join(c.CONSUMER_ARCHITECTURES)}"
        )
    elif architecture != c.DEFAULT_CONSUMER_ARCHITECTURE:
        changed.append(c.CONFIG_CONSUMER_ARCHITECTURE)

    alarms_raw = raw.get(c.CONFIG_CONSUMER_ALARMS)
    alarms = (
        True if _blank(alarms_raw) else _as_bool(c.CONFIG_CONSUMER_ALARMS, alarms_raw, problems)
    )
    if alarms is False:
        changed.append(c.CONFIG_CONSUMER_ALARMS)

    archive_raw = raw.get(c.CONFIG_CONSUMER_ARCHIVE)
    if not _blank(archive_raw):
        changed.append(c.CONFIG_CONSUMER_ARCHIVE)
    archive = (
        c.DEFAULT_CONSUMER_ARCHIVE.format(architecture=architecture)
        if _blank(archive_raw)
        else str(archive_raw).strip()
    )

    if not known_choice:
        return None  # the values were still checked, so every problem is reported at once
    if not enabled:
        for key in changed:
            problems.append(
                f"{key} {raw.get(key)!r}: only allowed with {c.CONFIG_CONSUMER} lambda "
                f"(it is {consumer!r})"
            )
        return None
    if project_dir is not None and architecture in c.CONSUMER_ARCHITECTURES:
        path = Path(archive) if Path(archive).is_absolute() else project_dir / archive
        if not path.is_file():
            problems.append(
                f"{c.CONFIG_CONSUMER_ARCHIVE} {archive!r}: no code archive at {path}; build it "
                f"with `{archive_command(architecture)}` (the function is never deployed without "
                "its code)"
            )
        elif not _holds_handler(path):
            problems.append(
                f"{c.CONFIG_CONSUMER_ARCHIVE} {archive!r}: {path} is not a zip holding "
                f"{c.LAMBDA_HANDLER_FILE}; rebuild it with `{archive_command(architecture)}`"
            )
    if len(ints) != len(_CONSUMER_INTS) or alarms is None:
        return None  # already reported
    reserved = ints[c.CONFIG_CONSUMER_RESERVED_CONCURRENCY]
    return ConsumerConfig(
        archive_path=archive,
        memory_mb=ints[c.CONFIG_CONSUMER_MEMORY_MB],
        timeout_seconds=ints[c.CONFIG_CONSUMER_TIMEOUT_SECONDS],
        reserved_concurrency=None
        if reserved == c.CONSUMER_RESERVED_CONCURRENCY_UNSET
        else reserved,
        batch_size=ints[c.CONFIG_CONSUMER_BATCH_SIZE],
        batching_window_seconds=ints[c.CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS],
        parallelization_factor=ints[c.CONFIG_CONSUMER_PARALLELIZATION_FACTOR],
        max_retries=ints[c.CONFIG_CONSUMER_MAX_RETRIES],
        max_record_age_seconds=ints[c.CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS],
        log_retention_days=ints[c.CONFIG_CONSUMER_LOG_RETENTION_DAYS],
        architecture=architecture,
        alarms=alarms,
    )
