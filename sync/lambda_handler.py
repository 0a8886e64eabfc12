"""Kinesis-triggered Lambda applying cohort messages to a DynamoDB membership table.

Environment: MEMBERSHIP_TABLE (required), IDEMPOTENCY_TABLE (required), and optionally
FAILURE_QUEUE_URL (where poison records are kept, see below) and
IDEMPOTENCY_EXPIRES_AFTER_SECONDS (default 7 days, like the local consumer's dedupe window).
Handler: `sync.lambda_handler.handler`.

Membership table (MEMBERSHIP_TABLE), one item per (cohort, user), exited users kept:
    pk              S     cohort_id                      (partition key)
    sk              S     user_id                        (sort key)
    in_cohort       BOOL  whether the user is in the cohort now
    computed_time   N     the winning update's computed_time (epoch seconds)
    tiebreak        S     "0:<message_id>" entering, "1:<message_id>" exiting
    message_id      S     the winning update's message
    cohort_name     S
    user_properties S     JSON object, absent when the message carried none
Each write is conditional — attribute_not_exists(pk) OR computed_time < :t OR (computed_time = :t
AND tiebreak < :b) — so concurrent invocations and retries keep the newest update: same rule and
ties as sync.membership (exiting beats entering, then the larger message_id).

Idempotency table (IDEMPOTENCY_TABLE): powertools' layout, partition key `id` (S), TTL attribute
`expiration`. Each message_id is applied once through `idempotent_function`; a duplicate delivery
returns the stored result without touching the membership table.

Records that break the payload contract (sync.contract's rules and reasons, as the CLI
consumer's quarantine) are logged and, with FAILURE_QUEUE_URL, sent to that SQS queue as a
`poison-record` message (`poison_message`: the reason, where the record was, and its data,
base64) before being reported as processed: retrying cannot fix them, and a failure would block
the shard until the record expires. If that send fails, the record fails and is retried. Any
other error fails only that record (batchItemFailures), so Lambda retries it; pair the event
source mapping with ReportBatchItemFailures and an on-failure destination (the same queue).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import boto3
from aws_lambda_powertools import Logger
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
from botocore.exceptions import ClientError

from provisioning import constants as c
from sync.contract import CohortMessage, decode
from sync.errors import ConsumerError, ContractError
from sync.limits import SQS_MAX_MESSAGE_BYTES
from sync.membership import DEFAULT_DEDUPE_RETENTION_HOURS, tiebreak_of

MEMBERSHIP_TABLE_ENV: Final = c.MEMBERSHIP_TABLE_ENV
IDEMPOTENCY_TABLE_ENV: Final = c.IDEMPOTENCY_TABLE_ENV
FAILURE_QUEUE_ENV: Final = c.FAILURE_QUEUE_ENV
POISON_KIND: Final = "poison-record"
KIND_ATTRIBUTE: Final = "kind"
# Room for the envelope (reason, ARNs, numbers) around the base64 data in one SQS message.
_POISON_ENVELOPE_BYTES: Final = 16 * 1024
IDEMPOTENCY_EXPIRES_ENV: Final = "IDEMPOTENCY_EXPIRES_AFTER_SECONDS"
DEFAULT_IDEMPOTENCY_EXPIRES_SECONDS: Final = DEFAULT_DEDUPE_RETENTION_HOURS * 3600
LOGGED_DATA_PREFIX_BYTES: Final = 256
_NEWER: Final = (
    "attribute_not_exists(pk) OR computed_time < :t OR (computed_time = :t AND tiebreak < :b)"
)

logger = Logger(service="cohort-sync")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class MembershipTable:
    """Last-writer-wins writes of one message's users to the membership table."""

    dynamodb: Any
    table_name: str

    def apply(self, message: CohortMessage) -> dict[str, int]:
        """Write each user unless a newer update is recorded; count written and stale users."""
        computed = message.computed_time.lstrip("0") or "0"
        tiebreak = tiebreak_of(message.in_cohort, message.message_id)
        written = stale = 0
        for user in message.users:
            item = {
                "pk": {"S": message.cohort_id},
                "sk": {"S": user.user_id},
                "in_cohort": {"BOOL": message.in_cohort},
                "computed_time": {"N": computed},
                "tiebreak": {"S": tiebreak},
                "message_id": {"S": message.message_id},
                "cohort_name": {"S": message.cohort_name},
            }
            if user.user_properties is not None:
                props = json.dumps(user.user_properties, ensure_ascii=False, separators=(",", ":"))
                item["user_properties"] = {"S": props}
            try:
                self.dynamodb.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=_NEWER,
                    ExpressionAttributeValues={":t": {"N": computed}, ":b": {"S": tiebreak}},
                )
                written += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                stale += 1  # a newer update for this user is already recorded
        return {"written": written, "stale": stale}


def poison_message(record: KinesisStreamRecord, reason: str) -> dict[str, Any]:
    """The failure queue's message for a record that breaks the contract: why, where, what."""
    data = record.kinesis.data_as_bytes()
    limit = (SQS_MAX_MESSAGE_BYTES - _POISON_ENVELOPE_BYTES) // 4 * 3  # base64 grows by 4/3
    return {
        "kind": POISON_KIND,
        "reason": reason,
        "eventSourceARN": record.event_source_arn,
        "shardId": record.event_id.split(":", 1)[0],
        "sequenceNumber": record.kinesis.sequence_number,
        "partitionKey": record.kinesis.partition_key,
        "approximateArrivalTimestamp": record.kinesis.approximate_arrival_timestamp,
        "dataBytes": len(data),
        # A record too large for one message keeps its start here; the whole record stays
        # readable in the stream at sequenceNumber until the stream's retention ends.
        "dataTruncated": len(data) > limit,
        "data": base64.b64encode(data[:limit]).decode(),
    }


def build_handler(
    *,
    dynamodb: Any,
    membership_table: str,
    idempotency_table: str,
    idempotency_expires_seconds: int = DEFAULT_IDEMPOTENCY_EXPIRES_SECONDS,
    sqs: Any = None,
    failure_queue_url: str | None = None,
) -> Handler:
    """A Lambda handler bound to one DynamoDB client and the two tables (and the failure queue)."""
    table = MembershipTable(dynamodb, membership_table)
    config = IdempotencyConfig(
        event_key_jmespath="message_id",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=idempotency_expires_seconds,
    )
    persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=dynamodb)

    def apply(*, message: CohortMessage) -> dict[str, int]:
        return table.apply(message)

    apply_once: Callable[..., dict[str, int]] = idempotent_function(
        apply, data_keyword_argument="message", persistence_store=persistence, config=config
    )

    def record_handler(record: KinesisStreamRecord) -> None:
        data = record.kinesis.data_as_bytes()
        try:
            message = decode(data)
        except ContractError as exc:
            logger.error(
                "poison record skipped",
                extra={
                    "reason": str(exc),
                    "event_source_arn": record.event_source_arn,
                    "sequence_number": record.kinesis.sequence_number,
                    "partition_key": record.kinesis.partition_key,
                    "data_prefix": data[:LOGGED_DATA_PREFIX_BYTES].decode(errors="replace"),
                },
            )
            if sqs is not None and failure_queue_url:
                # Raises on failure: the record then fails and is retried, never dropped.
                sqs.send_message(
                    QueueUrl=failure_queue_url,
                    MessageBody=json.dumps(poison_message(record, str(exc))),
                    MessageAttributes={
                        KIND_ATTRIBUTE: {"DataType": "String", "StringValue": POISON_KIND}
                    },
                )
            return
        apply_once(message=message)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if context is not None:
            config.register_lambda_context(context)
        processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )

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
        dynamodb=boto3.client("dynamodb"),
        membership_table=os.environ[MEMBERSHIP_TABLE_ENV],
        idempotency_table=os.environ[IDEMPOTENCY_TABLE_ENV],
        idempotency_expires_seconds=int(raw_expiry),
        sqs=boto3.client("sqs") if queue_url else None,
        failure_queue_url=queue_url,
    )
