"""Kinesis-triggered Lambda applying cohort messages to a DynamoDB membership table.

Environment: MEMBERSHIP_TABLE (required), IDEMPOTENCY_TABLE (required), and optionally
FAILURE_QUEUE_URL (where poison records are kept, see below) and
IDEMPOTENCY_EXPIRES_AFTER_SECONDS (default 7 days, like the local consumer's dedupe window).
Handler: `sync.lambda_handler.handler`.

Membership table (MEMBERSHIP_TABLE), one item per (cohort, user), exited users kept:
    pk              S     "<cohort_id>#<n>", n the user's write shard 0-9 (partition key;
                          sync.membership_items: why, and how to read a cohort back)
    sk              S     user_id                        (sort key)
    in_cohort       BOOL  whether the user is in the cohort now
    computed_time   N     the winning update's computed_time (epoch seconds)
    tiebreak        S     "0:<message_id>" entering, "1:<message_id>" exiting
    message_id      S     the winning update's message
    cohort_name     S
    user_properties S     JSON object, absent when the message carried none
Each write is conditional, so concurrent invocations and retries keep the newest update
(sync.membership_writer: the condition, the writes in flight, throttling).

Idempotency table (IDEMPOTENCY_TABLE): powertools' layout, partition key `id` (S), TTL attribute
`expiration`. Each message_id is applied once through `idempotent_function`; a duplicate delivery
returns the stored result without touching the membership table.

Records that break the payload contract (sync.contract's rules and reasons, as the CLI
consumer's quarantine) are logged and, with FAILURE_QUEUE_URL, sent to that SQS queue as a
`poison-record` message (sync.poison: the reason, where the record was, and its data,
base64) before being reported as processed: retrying cannot fix them, and a failure would block
the shard until the record expires. If that send fails, the record fails and is retried. Any
other error fails only that record (batchItemFailures), so Lambda retries it; pair the event
source mapping with ReportBatchItemFailures and an on-failure destination (the same queue).
Every queue message fits SQS's 262,144 bytes: the reason is summarised (count and first
problems) and cut, the data cut to the room left (sync.poison).

A user whose item DynamoDB would refuse (sort key over 1,024 bytes, item over 400 KB:
sync.membership_items) is not written: the rest of the message is applied and the record is kept
as a `poison-users` message (same shape; the reason names each user by position), so it is never
retried forever.

Throughput and time: each message's writes run WRITERS at a time on one shared thread pool (one
boto3 client, its connection pool sized to match: `_from_environment`); throttled writes are
retried with jittered backoff and counted. Once less than `reserve_ms` (STOP_STARTING_MS, or a
quarter of the invocation's time for short timeouts) is left before the function's timeout, no
record and no write is started: the unfinished records come back as batchItemFailures, so Lambda
retries them instead of killing the invocation (which would fail the whole batch).

Metrics: each invocation prints one CloudWatch embedded-metric-format line (powertools' Metrics,
namespace METRICS_NAMESPACE): users written and stale, poison records and users, throttled
writes retried, and the milliseconds left when it returned.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, Final

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.config import Config

from provisioning import constants as c
from sync.contract import CohortMessage, decode, summary
from sync.errors import ConsumerError, ContractError, OutOfTimeError
from sync.membership import DEFAULT_DEDUPE_RETENTION_HOURS
from sync.membership_writer import WRITERS, MembershipTable, forever
from sync.poison import KIND_ATTRIBUTE, POISON_KIND, POISON_USERS_KIND, poison_message

MEMBERSHIP_TABLE_ENV: Final = c.MEMBERSHIP_TABLE_ENV
IDEMPOTENCY_TABLE_ENV: Final = c.IDEMPOTENCY_TABLE_ENV
FAILURE_QUEUE_ENV: Final = c.FAILURE_QUEUE_ENV
LOGGED_REASON_CHARS: Final = 2048
# No record and no write is started once less than this is left before the function's timeout,
# or a quarter of the time the invocation started with when that is less (a 3 s function).
STOP_STARTING_MS: Final = 5_000
RESERVE_SHARE: Final = 4
IDEMPOTENCY_EXPIRES_ENV: Final = "IDEMPOTENCY_EXPIRES_AFTER_SECONDS"
DEFAULT_IDEMPOTENCY_EXPIRES_SECONDS: Final = DEFAULT_DEDUPE_RETENTION_HOURS * 3600
LOGGED_DATA_PREFIX_BYTES: Final = 256
IDEMPOTENCY_CONNECTIONS: Final = 2

logger = Logger(service="cohort-sync")
# CloudWatch metrics in the embedded metric format (one JSON line per invocation in the logs).
METRICS_NAMESPACE: Final = "CohortSync"
METRIC_USERS_WRITTEN: Final = "UsersWritten"
METRIC_USERS_STALE: Final = "UsersStale"
METRIC_POISON_RECORDS: Final = "PoisonRecords"
METRIC_POISON_USERS: Final = "PoisonUsers"
METRIC_THROTTLED_WRITES: Final = "ThrottledWrites"
METRIC_TIME_LEFT: Final = "RemainingTimeMs"
metrics = Metrics(namespace=METRICS_NAMESPACE, service="cohort-sync")
_metrics_lock = threading.Lock()

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def reserve_ms(invocation_ms: int) -> int:
    """The time kept free at the end of an invocation that starts with `invocation_ms` left."""
    return min(STOP_STARTING_MS, invocation_ms // RESERVE_SHARE)


def _emit_metrics(totals: dict[str, int], time_left_ms: int | None) -> None:
    """One invocation's counts (zeros too: dashboards see quiet invocations) and time left."""
    with _metrics_lock:  # the sandbox runs invocations at once; Lambda runs one per process
        for name in (
            METRIC_USERS_WRITTEN,
            METRIC_USERS_STALE,
            METRIC_POISON_RECORDS,
            METRIC_POISON_USERS,
            METRIC_THROTTLED_WRITES,
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=totals.get(name, 0))
        if time_left_ms is not None:
            metrics.add_metric(
                name=METRIC_TIME_LEFT, unit=MetricUnit.Milliseconds, value=time_left_ms
            )
        metrics.flush_metrics()


def build_handler(
    *,
    dynamodb: Any,
    membership_table: str,
    idempotency_table: str,
    idempotency_expires_seconds: int = DEFAULT_IDEMPOTENCY_EXPIRES_SECONDS,
    sqs: Any = None,
    failure_queue_url: str | None = None,
    table: MembershipTable | None = None,
) -> Handler:
    """A Lambda handler bound to one DynamoDB client and the two tables (and the failure queue)."""
    table = table or MembershipTable(dynamodb, membership_table)
    config = IdempotencyConfig(
        event_key_jmespath="message_id",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=idempotency_expires_seconds,
    )
    persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=dynamodb)
    # The invocation's clock, per thread: Lambda runs one invocation per process, the sandbox's
    # mapping several at once in one process.
    invocation = threading.local()

    def budget_ms() -> int:
        budget: Callable[[], int] = getattr(invocation, "budget", forever)
        return budget()

    def count(name: str, value: int) -> None:
        invocation.totals[name] = invocation.totals.get(name, 0) + value

    def keep(record: KinesisStreamRecord, reason: str, kind: str) -> None:
        logger.error(
            f"{kind} kept",
            extra={
                "reason": reason[:LOGGED_REASON_CHARS],
                "event_source_arn": record.event_source_arn,
                "sequence_number": record.kinesis.sequence_number,
                "partition_key": record.kinesis.partition_key,
                "data_prefix": record.kinesis.data_as_bytes()[:LOGGED_DATA_PREFIX_BYTES].decode(
                    errors="replace"
                ),
            },
        )
        if sqs is not None and failure_queue_url:
            # Raises on failure: the record then fails and is retried, never dropped.
            sqs.send_message(
                QueueUrl=failure_queue_url,
                MessageBody=json.dumps(poison_message(record, reason, kind)),
                MessageAttributes={KIND_ATTRIBUTE: {"DataType": "String", "StringValue": kind}},
            )

    def apply(*, message: CohortMessage, record: KinesisStreamRecord) -> dict[str, int]:
        # This thread's clock itself: the writes run on the pool's threads.
        applied = table.apply(message, getattr(invocation, "budget", forever))
        count(METRIC_USERS_WRITTEN, applied.written)
        count(METRIC_USERS_STALE, applied.stale)
        count(METRIC_THROTTLED_WRITES, applied.throttled)
        count(METRIC_POISON_USERS, len(applied.poison))
        if applied.poison:
            reason = "users DynamoDB refuses, kept here, the rest applied: " + summary(
                [u.problem or "" for u in applied.poison]
            )
            keep(record, reason, POISON_USERS_KIND)
        return applied.counts()

    apply_once: Callable[..., dict[str, int]] = idempotent_function(
        apply, data_keyword_argument="message", persistence_store=persistence, config=config
    )

    def record_handler(record: KinesisStreamRecord) -> None:
        if budget_ms() <= 0:
            raise OutOfTimeError(f"record {record.kinesis.sequence_number}: not started")
        try:
            message = decode(record.kinesis.data_as_bytes())
        except ContractError as exc:
            keep(record, str(exc), POISON_KIND)
            count(METRIC_POISON_RECORDS, 1)
            return
        apply_once(message=message, record=record)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        invocation.budget = forever
        invocation.totals = {}
        if context is not None:
            config.register_lambda_context(context)
            remaining = context.get_remaining_time_in_millis
            reserve = reserve_ms(remaining())
            invocation.budget = lambda: remaining() - reserve
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        response = dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )
        left = None if context is None else context.get_remaining_time_in_millis()
        _emit_metrics(invocation.totals, left)
        return response

    return handler


_handler: Handler | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point; the client and tables are set up on the first invocation."""
    global _handler
    if _handler is None:
        _handler = _from_environment()
    return _handler(event, context)


def reset() -> None:
    """Forget the cached handler, so the next invocation re-reads the environment."""
    global _handler
    _handler = None


def _from_environment() -> Handler:
    missing = [
        name for name in (MEMBERSHIP_TABLE_ENV, IDEMPOTENCY_TABLE_ENV) if not os.environ.get(name)
    ]
    if missing:
        raise ConsumerError(
            f"environment {', '.join(missing)}: not set; name the DynamoDB tables (membership:"
            " pk cohort_id S, sk user_id S; idempotency: id S) in the function's configuration"
        )
    raw_expiry = os.environ.get(IDEMPOTENCY_EXPIRES_ENV, str(DEFAULT_IDEMPOTENCY_EXPIRES_SECONDS))
    if not raw_expiry.isdigit() or int(raw_expiry) == 0:
        raise ConsumerError(
            f"environment {IDEMPOTENCY_EXPIRES_ENV} {raw_expiry!r}: must be a positive number of"
            " seconds"
        )
    queue_url = os.environ.get(FAILURE_QUEUE_ENV) or None
    return build_handler(
        dynamodb=boto3.client(
            "dynamodb", config=Config(max_pool_connections=WRITERS + IDEMPOTENCY_CONNECTIONS)
        ),
        membership_table=os.environ[MEMBERSHIP_TABLE_ENV],
        idempotency_table=os.environ[IDEMPOTENCY_TABLE_ENV],
        idempotency_expires_seconds=int(raw_expiry),
        sqs=boto3.client("sqs") if queue_url else None,
        failure_queue_url=queue_url,
    )
