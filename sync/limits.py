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

# SQS: the largest message body (SendMessage; AWS's long-standing 256 KiB default).
SQS_MAX_MESSAGE_BYTES: Final = 256 * 1024
