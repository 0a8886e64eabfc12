"""The failure queue's messages for what the Lambda consumer keeps rather than applies.

Two kinds: `poison-record` (the record breaks the payload contract) and `poison-users` (users of
a valid record that DynamoDB would refuse). Every message fits the queue's maxMessageSize
(provisioning.constants.FAILURE_QUEUE_MAX_MESSAGE_BYTES), attributes included: the reason is cut
to REASON_MAX_BYTES, the record's data to what is left.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from provisioning import constants as c

POISON_KIND: Final = "poison-record"
POISON_USERS_KIND: Final = "poison-users"
KIND_ATTRIBUTE: Final = "kind"
REASON_MAX_BYTES: Final = 16 * 1024


def poison_message(
    record: KinesisStreamRecord, reason: str, kind: str = POISON_KIND
) -> dict[str, Any]:
    """The failure queue's message for a record kept as poison: why, where, what; always fits.

    The reason is cut to REASON_MAX_BYTES and the data to what the rest leaves of the queue's
    262,144 bytes (message attributes included), so SendMessage never refuses it.
    """
    data = record.kinesis.data_as_bytes()
    message: dict[str, Any] = {
        "kind": kind,
        "reason": _cut(reason, REASON_MAX_BYTES),
        "eventSourceARN": record.event_source_arn,
        "shardId": record.event_id.split(":", 1)[0],
        "sequenceNumber": record.kinesis.sequence_number,
        "partitionKey": record.kinesis.partition_key,
        "approximateArrivalTimestamp": record.kinesis.approximate_arrival_timestamp,
        "dataBytes": len(data),
        # A record too large for one message keeps its start here; the whole record stays
        # readable in the stream at sequenceNumber until the stream's retention ends.
        "dataTruncated": False,
        "data": "",
    }
    room = c.FAILURE_QUEUE_MAX_MESSAGE_BYTES - message_bytes(json.dumps(message), kind)
    limit = max(0, room - 1) // 4 * 3  # base64 grows by 4/3; "false" is the longer boolean
    message["dataTruncated"] = len(data) > limit
    message["data"] = base64.b64encode(data[:limit]).decode()
    return message


def message_bytes(body: str, kind: str) -> int:
    """A queue message's size as SQS counts it: the body plus the `kind` attribute."""
    return len(body.encode()) + len(KIND_ATTRIBUTE) + len("String") + len(kind.encode())


def _cut(text: str, max_bytes: int) -> str:
    """The text within max_bytes of JSON (non-ASCII escapes counted), marked when cut."""
    encoded = json.dumps(text)
    if len(encoded) <= max_bytes:
        return text
    budget = max_bytes - 64
    kept = text[:budget]
    while len(json.dumps(kept)) > budget:
        kept = kept[: len(kept) * 3 // 4]
    return f"{kept}… (cut; {len(text.encode()):,} bytes in all)"
