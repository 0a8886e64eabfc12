"""Kinesis and Amplitude limits the sync engine obeys; each figure is defined here once."""

from typing import Final

MAX_RECORD_BYTES: Final = 1024 * 1024  # data plus partition key, default per-stream limit
MAX_PUT_RECORDS_COUNT: Final = 500
MAX_PUT_RECORDS_BYTES: Final = 5 * 1024 * 1024  # data plus partition keys, whole request
MAX_PARTITION_KEY_CHARS: Final = 256
SHARD_WRITE_BYTES_PER_SECOND: Final = 1024 * 1024
SHARD_WRITE_RECORDS_PER_SECOND: Final = 1000
SHARD_READ_BYTES_PER_SECOND: Final = 2 * 1024 * 1024
SHARD_READ_CALLS_PER_SECOND: Final = 5
GET_RECORDS_MAX_RECORDS: Final = 10_000

# Amplitude's partner cohort sync defaults.
DEFAULT_USERS_PER_MESSAGE: Final = 1000
DEFAULT_SENDERS: Final = 4
DEFAULT_MAX_TRIES: Final = 8
DEFAULT_BACKOFF_BASE_SECONDS: Final = 1.0
DEFAULT_BACKOFF_CAP_SECONDS: Final = 128.0
REAL_TIME_MAX_COHORT_USERS: Final = 1_000_000

# The engine's own bounds on what it accepts (sync/inputs.py applies them; README documents them).
# Amplitude's cohort ids are short alphanumerics (`gs72ns`); 64 characters of these leave room for
# the sync id and sequence that make a message_id, which must fit a 256-character partition key.
COHORT_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MAX_COHORT_ID_CHARS: Final = 64
MAX_COHORT_NAME_CHARS: Final = 1024
SENDERS_RANGE: Final = (1, 64)
MAX_TRIES_RANGE: Final = (1, 100)
SHARDS_RANGE: Final = (1, 10_000)  # provisioning.constants.SHARD_COUNT_RANGE: what a stack makes
USERS_PER_MESSAGE_RANGE: Final = (1, 100_000)
TICKS_RANGE: Final = (1, 1_000_000_000)
COMPUTED_TIME_RANGE: Final = (1, 999_999_999_999)  # the contract's 1-12 digits, zero excluded
# A CSV snapshot's header may name at most this many columns (user_id included).
MAX_CSV_COLUMNS: Final = 10_000
# Parquet property columns keep their own types, so they cannot share the CSV's one-list path and
# cost O(N^2) to plan (5,000 columns: 13 s); wider data fits one `user_properties` struct column.
MAX_PARQUET_COLUMNS: Final = 2_000
# The mass-exit guard: refuse a push that would remove more than this share of a cohort.
DEFAULT_MAX_EXIT_FRACTION: Final = 0.5
# DynamoDB (developer guide, "Service, account, and table quotas" and "Item sizes"): an item is at
# most 400 KB counting attribute names and values; a partition key value at most 2,048 bytes, a
# sort key value at most 1,024 bytes (UTF-8).
DYNAMODB_MAX_ITEM_BYTES: Final = 400 * 1024
DYNAMODB_MAX_PARTITION_KEY_BYTES: Final = 2048
DYNAMODB_MAX_SORT_KEY_BYTES: Final = 1024
# A number attribute takes up to 21 bytes ("Item sizes"): the bound this engine counts.
DYNAMODB_MAX_NUMBER_BYTES: Final = 21
