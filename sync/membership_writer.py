"""Last-writer-wins writes of a message's users to the Lambda consumer's membership table.

Each write is conditional — attribute_not_exists(pk) OR computed_time < :t OR (computed_time = :t
AND tiebreak < :b) — so concurrent invocations and retries keep the newest update: same rule and
ties as sync.membership (exiting beats entering, then the larger message_id). Many writes are in
flight at once (WRITERS, one shared thread pool and boto3 client); a throttled write is retried
with jittered backoff and counted; no write is started once the caller's time budget is spent.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from sync.contract import CohortMessage
from sync.errors import OutOfTimeError
from sync.membership import tiebreak_of
from sync.membership_items import Item, UserItem, computed_number, items_of

# Writes in flight per invocation (boto3 clients are thread-safe; the pool is sized to match).
WRITERS: Final = 32
# DynamoDB's throttling codes (provisioned and on-demand), retried with backoff and counted.
THROTTLE_CODES: Final = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException"})
THROTTLE_TRIES: Final = 10
THROTTLE_BASE_SECONDS: Final = 0.025
THROTTLE_CAP_SECONDS: Final = 1.0
_NEWER: Final = (
    "attribute_not_exists(pk) OR computed_time < :t OR (computed_time = :t AND tiebreak < :b)"
)


@dataclass(frozen=True)
class Applied:
    """What applying one message did: each user counts once; throttled writes were retried."""

    written: int = 0
    stale: int = 0
    throttled: int = 0
    poison: tuple[UserItem, ...] = ()

    def counts(self) -> dict[str, int]:
        """The figures, JSON-ready (what idempotency stores for the message)."""
        return {
            "written": self.written,
            "stale": self.stale,
            "throttled": self.throttled,
            "poison": len(self.poison),
        }


# Made on first use, never at import; a warm Lambda keeps the threads between invocations.
@functools.cache
def writer_pool() -> ThreadPoolExecutor:
    """The process's writer threads, shared by every table as the one boto3 client is."""
    return ThreadPoolExecutor(WRITERS, thread_name_prefix="membership-writer")


def forever() -> int:
    """A budget that never runs out (no Lambda context: tests, tools)."""
    return 2**31


@dataclass(frozen=True)
class MembershipTable:
    """Last-writer-wins writes of one message's users, many in flight, within the time left."""

    dynamodb: Any
    table_name: str
    executor: Executor = field(default_factory=lambda: writer_pool())
    sleep: Callable[[float], None] = time.sleep

    def apply(self, message: CohortMessage, budget_ms: Callable[[], int] = forever) -> Applied:
        """Write each user unless a newer update is recorded; raise OutOfTimeError when time ends.

        A user DynamoDB would refuse is not written and comes back in `poison`. Writes run on
        the shared executor; once `budget_ms()` (the time left to start work) is spent none is
        started, the running ones finish, and OutOfTimeError fails the message so Lambda retries
        it (conditional writes make the users already written stale, never wrong).
        """
        users = list(items_of(message))
        values = {
            ":t": {"N": computed_number(message)},
            ":b": {"S": tiebreak_of(message.in_cohort, message.message_id)},
        }
        stop = threading.Event()

        def write(item: Item) -> tuple[bool, int]:
            if stop.is_set() or budget_ms() <= 0:
                stop.set()
                raise OutOfTimeError(f"message {message.message_id!r}: out of time")
            return self._put(item, values, budget_ms)

        futures = [self.executor.submit(write, u.item) for u in users if u.item is not None]
        wait(futures)
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, OutOfTimeError)), errors[0])
        results = [f.result() for f in futures]
        written = sum(1 for fresh, _ in results if fresh)
        return Applied(
            written=written,
            stale=len(results) - written,
            throttled=sum(throttles for _, throttles in results),
            poison=tuple(u for u in users if u.item is None),
        )

    def _put(
        self, item: Item, values: dict[str, Any], budget_ms: Callable[[], int]
    ) -> tuple[bool, int]:
        """(written, throttles): one conditional write, retried while DynamoDB throttles it."""
        for attempt in range(THROTTLE_TRIES):
            try:
                self.dynamodb.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=_NEWER,
                    ExpressionAttributeValues=values,
                )
                return True, attempt
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ConditionalCheckFailedException":
                    return False, attempt  # a newer update for this user is already recorded
                if code not in THROTTLE_CODES or attempt == THROTTLE_TRIES - 1:
                    raise
                if budget_ms() <= 0:
                    raise OutOfTimeError("throttled write not retried: out of time") from exc
            # Full jitter (AWS's backoff advice): throttled writers do not retry in step.
            self.sleep(
                random.uniform(0, min(THROTTLE_CAP_SECONDS, THROTTLE_BASE_SECONDS * 2**attempt))
            )
        raise AssertionError("unreachable")  # pragma: no cover
