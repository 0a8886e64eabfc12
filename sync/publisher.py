"""Delivers records with PutRecords: re-sends only what Kinesis refused, acks only what it took.

Sends are paced by `sync.pacing.Pacer`, which learns the stream's write capacity from throttling
(seeded from the shard count when the caller knows it), so a push runs near capacity instead of
storming and retrying.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import count
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from sync.batching import pack_put_records, take_batch
from sync.errors import DeliveryRefusedError, PreflightError
from sync.kinesis_errors import Verdict, fix_for, is_known, record_verdict, request_verdict
from sync.limits import (
    MAX_PUT_RECORDS_BYTES,
    SHARD_WRITE_BYTES_PER_SECOND,
    SHARD_WRITE_RECORDS_PER_SECOND,
)
from sync.messages import OutgoingRecord
from sync.options import DeliveryOptions
from sync.pacing import Pacer, record_cost

MAX_UNPROVEN_RENEWALS = 5  # sessions in a row that may expire before carrying any record


@dataclass(frozen=True)
class ProgressEvent:
    """Running totals after one PutRecords call completed; emitted from the calling thread."""

    records_acked: int
    bytes_acked: int
    put_records_calls: int
    retries: int
    throttles: int
    failed: int
    records_waiting: int  # refused records waiting out their backoff


@dataclass(frozen=True)
class DeliveryReport:
    """What one `Publisher.send` did.

    `records_sent`/`bytes_sent` count acknowledged records once each (bytes = data + partition
    key). `put_records_calls` counts every call made, failed ones included. `retries` counts
    record re-sends (a record's second and later tries). `throttles` counts record-tries refused
    for throughput: per-record ProvisionedThroughputExceededException plus every record of a
    request refused whole with a throttling code. `failed` lists records that exhausted their
    tries (never acked). `reconnects` counts sessions replaced after ExpiredToken.
    """

    records_sent: int
    bytes_sent: int
    put_records_calls: int
    retries: int
    throttles: int
    failed: tuple[str, ...]
    seconds: float
    reconnects: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        payload = asdict(self)
        payload["failed"] = list(self.failed)
        return payload


@dataclass
class _Call:
    """One PutRecords call's outcome, handed from a sender thread to the calling thread."""

    batch: list[OutgoingRecord]
    sent_at: float
    generation: int  # which session sent it: one expiry answers every call of that session
    response: Mapping[str, Any] | None = None
    error: Exception | None = None


@dataclass
class _Run:
    """Mutable state of one `send`, touched only by the calling thread."""

    fresh: Iterator[list[OutgoingRecord]]
    queue: deque[OutgoingRecord] = field(default_factory=deque)
    waiting: list[tuple[float, int, list[OutgoingRecord]]] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    fresh_done: bool = False
    acked: int = 0
    acked_bytes: int = 0
    calls: int = 0
    retries: int = 0
    throttles: int = 0
    failed: list[str] = field(default_factory=list)
    reconnects: int = 0
    refusal: DeliveryRefusedError | None = None
    refused: list[OutgoingRecord] = field(default_factory=list)


class Publisher:
    """Sends records to one Kinesis stream as `options` say (senders, tries, pacing, shards).

    The keyword arguments are collaborators, not settings: `sleep`, `clock` and `rng` are
    injectable for tests and model time; `reconnect` returns a fresh Kinesis client when Kinesis
    answers ExpiredToken.
    """

    def __init__(
        self,
        kinesis: Any,
        stream_name: str,
        options: DeliveryOptions = DeliveryOptions(),  # noqa: B008 - frozen, shared safely
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        reconnect: Callable[[], Any] | None = None,
    ) -> None:
        if not stream_name:
            # The options checked themselves when they were made; the stream is the only input.
            raise ValueError("stream_name '': must name a stream or be its ARN")
        self._kinesis = kinesis
        self.stream = stream_name
        # PutRecords takes either; an ARN also pins the account and region.
        key = "StreamARN" if stream_name.startswith("arn:") else "StreamName"
        self._target = {key: stream_name}
        self.options = options
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_progress = on_progress
        self._clock = clock
        self._max_bytes = MAX_PUT_RECORDS_BYTES
        self._order = count()
        self._reconnect = reconnect
        self._generation = 0
        self._unproven_renewals = 0  # renewals in a row whose session carried no record yet
        self.pacer: Pacer | None = None  # the last send's, for callers that report what it learned

    def backoff_seconds(self, tries: int) -> float:
        """Full-jitter delay before a record's next try, after `tries` tries: U(0, base*2^(n-1))."""
        ceiling = min(
            self.options.backoff_cap_seconds, self.options.backoff_base_seconds * 2 ** (tries - 1)
        )
        return self._rng.uniform(0.0, ceiling)

    def send(
        self, records: Iterable[OutgoingRecord], on_acked: Callable[[list[str]], None]
    ) -> DeliveryReport:
        """Deliver every record; `on_acked` runs in the calling thread, once per acked call.

        Raises DeliveryRefusedError (a DeliveryError) when Kinesis refuses for a reason retrying
        cannot fix: calls already in flight finish (and are acked) first; `.unsent` then lists
        every record not acknowledged, the rest of `records` included.
        """
        started = time.perf_counter()
        pacer = (
            None if self.options.pacing is None else Pacer(self.options.shards, self.options.pacing)
        )
        self.pacer = pacer
        run = _Run(
            fresh=pack_put_records(
                records, max_count=self.options.max_records_per_request, max_bytes=self._max_bytes
            )
        )
        in_flight: set[Future[_Call]] = set()
        with ThreadPoolExecutor(self.options.senders, thread_name_prefix="put-records") as pool:
            while True:
                self._release_ready(run)
                paced_until: float | None = None
                while run.refusal is None and len(in_flight) < self._window(pacer):
                    now = self._clock()
                    has_work = bool(run.queue) or not run.fresh_done
                    delay = 0.0 if pacer is None or not has_work else pacer.delay(now)
                    if delay > 0:
                        paced_until = now + delay
                        break
                    batch = self._next_batch(run, pacer)
                    if not batch:
                        break
                    self._count_try(run, batch)
                    if pacer is not None:
                        pacer.spend(sum(record_cost(r.size_bytes) for r in batch), now)
                    in_flight.add(
                        pool.submit(self._put, batch, self._kinesis, now, self._generation)
                    )
                wake = self._wake_at(run, paced_until)
                if not in_flight:
                    if wake is None:
                        break
                    self._sleep(max(0.0, wake - self._clock()))
                    continue
                timeout = None if wake is None else max(0.0, wake - self._clock())
                done, in_flight = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    self._settle(run, future.result(), on_acked, pacer)
        if run.refusal is not None:
            raise self._with_unsent(run)
        return DeliveryReport(
            records_sent=run.acked,
            bytes_sent=run.acked_bytes,
            put_records_calls=run.calls,
            retries=run.retries,
            throttles=run.throttles,
            failed=tuple(run.failed),
            seconds=time.perf_counter() - started,
            reconnects=run.reconnects,
        )

    # --- calling thread: scheduling -------------------------------------------------------

    def _release_ready(self, run: _Run) -> None:
        now = self._clock()
        ready: list[OutgoingRecord] = []
        while run.waiting and run.waiting[0][0] <= now:
            ready.extend(heapq.heappop(run.waiting)[2])
        # Retries go first so they coalesce into the very next request instead of their own.
        run.queue.extendleft(reversed(ready))

    def _window(self, pacer: Pacer | None) -> int:
        """How many calls may be in flight now: the senders, fewer while the pacer probes."""
        limit = None if pacer is None else pacer.max_in_flight()
        return self.options.senders if limit is None else min(self.options.senders, limit)

    def _wake_at(self, run: _Run, paced_until: float | None) -> float | None:
        """When the loop has something to do besides settling calls: a retry or a paced send."""
        if run.refusal is not None:
            return None
        times = [paced_until] if paced_until is not None else []
        if run.waiting:
            times.append(run.waiting[0][0])
        return min(times, default=None)

    def _next_batch(self, run: _Run, pacer: Pacer | None) -> list[OutgoingRecord]:
        if not run.fresh_done and not self._fills_a_batch(run.queue):
            fresh = next(run.fresh, None)
            if fresh is None:
                run.fresh_done = True
            else:
                run.queue.extend(fresh)
        max_count, max_bytes = self.options.max_records_per_request, self._max_bytes
        if pacer is not None and run.queue:
            limit = pacer.batch_limit()
            # Small requests at a steady pace, not one big one per pacing interval: a 5 MiB
            # request to a one-shard stream is mostly throttled however well it is timed.
            max_count = max(1, min(max_count, int(limit * SHARD_WRITE_RECORDS_PER_SECOND)))
            max_bytes = min(max_bytes, int(limit * SHARD_WRITE_BYTES_PER_SECOND))
            max_bytes = max(max_bytes, run.queue[0].size_bytes)
        return take_batch(run.queue, max_count=max_count, max_bytes=max_bytes)

    def _fills_a_batch(self, queue: deque[OutgoingRecord]) -> bool:
        if len(queue) >= self.options.max_records_per_request:
            return True
        total = 0
        for record in queue:
            total += record.size_bytes
            if total > self._max_bytes:
                return True
        return False

    def _count_try(self, run: _Run, batch: list[OutgoingRecord]) -> None:
        run.calls += 1
        for record in batch:
            tries = run.tries.get(record.message_id, 0) + 1
            run.tries[record.message_id] = tries
            if tries > 1:
                run.retries += 1

    def _settle(
        self,
        run: _Run,
        call: _Call,
        on_acked: Callable[[list[str]], None],
        pacer: Pacer | None,
    ) -> None:
        acked: list[OutgoingRecord] = []
        again: list[OutgoingRecord] = []
        throttled = False
        if call.response is not None:
            if call.response.get("FailedRecordCount", 0) == 0:
                acked = call.batch
            else:
                for record, entry in zip(call.batch, call.response["Records"], strict=True):
                    code = entry.get("ErrorCode")
                    if code is None:
                        acked.append(record)
                        continue
                    verdict = record_verdict(code)
                    if verdict is Verdict.THROTTLED:
                        run.throttles += 1
                        throttled = True
                    if verdict is Verdict.FATAL:
                        self._refuse(run, code, entry.get("ErrorMessage", ""), [record])
                    else:
                        again.append(record)
        else:
            code = _code_of(call.error)
            verdict = request_verdict(code)
            if verdict is Verdict.THROTTLED:
                run.throttles += len(call.batch)
                throttled = True
            if verdict in (Verdict.THROTTLED, Verdict.TRANSIENT):
                again = call.batch
            elif verdict is Verdict.EXPIRED and self._reconnect is not None:
                if self._renew_session(run, call, self._reconnect):
                    again = call.batch
            else:
                self._refuse(run, code, str(call.error), call.batch, cause=call.error)
        if pacer is not None:
            now = self._clock()
            if acked:
                pacer.accepted(sum(record_cost(r.size_bytes) for r in acked), now)
            if throttled:
                pacer.throttled(call.sent_at, now)
        if acked:
            if call.generation == self._generation:
                self._unproven_renewals = 0
            run.acked += len(acked)
            run.acked_bytes += sum(r.size_bytes for r in acked)
            for record in acked:
                del run.tries[record.message_id]
            on_acked([r.message_id for r in acked])
        if again:
            self._schedule_retries(run, again)
        if self._on_progress is not None:
            self._on_progress(
                ProgressEvent(
                    records_acked=run.acked,
                    bytes_acked=run.acked_bytes,
                    put_records_calls=run.calls,
                    retries=run.retries,
                    throttles=run.throttles,
                    failed=len(run.failed),
                    records_waiting=sum(len(w[2]) for w in run.waiting),
                )
            )

    def _renew_session(self, run: _Run, call: _Call, reconnect: Callable[[], Any]) -> bool:
        """Replace the client after ExpiredToken; refuses the batch if no session can be had."""
        if call.generation != self._generation:
            return True  # an older session's expiry: the client was already replaced
        if self._unproven_renewals >= MAX_UNPROVEN_RENEWALS:
            # Session after session expired before carrying a single record: renewing again
            # cannot help (a skewed clock, revoked sessions), so stop and say so.
            self._refuse(run, _code_of(call.error), str(call.error), call.batch, cause=call.error)
            return False
        try:
            self._kinesis = reconnect()
        except PreflightError as exc:
            self._refuse(run, "ExpiredTokenException", str(exc), call.batch, cause=exc)
            return False
        self._generation += 1
        self._unproven_renewals += 1
        run.reconnects += 1
        return True

    def _schedule_retries(self, run: _Run, records: list[OutgoingRecord]) -> None:
        # One jittered delay per try count per call: records refused together wait together,
        # so they can travel together in the next request.
        groups: dict[int, list[OutgoingRecord]] = {}
        for record in records:
            tries = run.tries[record.message_id]
            if tries >= self.options.max_tries:
                run.failed.append(record.message_id)
                del run.tries[record.message_id]
            elif run.refusal is not None:
                run.refused.append(record)
            else:
                groups.setdefault(tries, []).append(record)
        now = self._clock()
        for tries in sorted(groups):
            ready_at = now + self.backoff_seconds(tries)
            heapq.heappush(run.waiting, (ready_at, next(self._order), groups[tries]))

    def _refuse(
        self,
        run: _Run,
        code: str,
        detail: str,
        records: list[OutgoingRecord],
        cause: Exception | None = None,
    ) -> None:
        run.refused.extend(records)
        if run.refusal is not None:
            return
        fix = fix_for(code, self.stream)
        refusal = DeliveryRefusedError(
            f"{code} from PutRecords on {self.stream}: {fix} ({detail})",
            code=code,
            stream=self.stream,
            unsent=(),
        )
        refusal.__cause__ = cause
        run.refusal = refusal

    def _with_unsent(self, run: _Run) -> DeliveryRefusedError:
        assert run.refusal is not None
        # Everything not acknowledged, the never-packed rest of the input included, so the
        # report is complete; the outbox keeps them all for the next run.
        unsent = [r.message_id for r in run.refused]
        unsent.extend(run.failed)
        unsent.extend(r.message_id for _, _, group in run.waiting for r in group)
        unsent.extend(r.message_id for r in run.queue)
        unsent.extend(r.message_id for batch in run.fresh for r in batch)
        error = DeliveryRefusedError(
            str(run.refusal), code=run.refusal.code, stream=self.stream, unsent=tuple(unsent)
        )
        error.__cause__ = run.refusal.__cause__
        return error

    # --- sender threads ---------------------------------------------------------------------

    def _put(
        self, batch: list[OutgoingRecord], kinesis: Any, sent_at: float, generation: int
    ) -> _Call:
        entries = [{"Data": r.data, "PartitionKey": r.partition_key} for r in batch]
        try:
            response = kinesis.put_records(Records=entries, **self._target)
        except (ClientError, BotocoreConnectionError, HTTPClientError, PreflightError) as exc:
            # Classified by the calling thread, which owns all bookkeeping.
            return _Call(batch, sent_at, generation, error=exc)
        return _Call(batch, sent_at, generation, response=response)


def _code_of(error: Exception | None) -> str:
    """The error code that decides retry or refusal; transport failures count as transient."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if not is_known(code) and status >= 500:
            return "InternalFailure"
        return code or f"HTTP{status}"
    if isinstance(error, PreflightError):
        # The refreshable credentials could not assume the role again mid-push.
        return "ExpiredTokenException"
    # Connection errors and read timeouts: the request may have landed, so a re-send may
    # duplicate; consumers dedupe on message_id.
    return "InternalFailure"
