"""Reads every shard of a cohort stream into a MembershipStore, following resharding.

Where a shard without a checkpoint starts: with `from_start`, at TRIM_HORIZON. Without it, the
first contact with a stream fixes a start time (now, minus a small margin for clock skew) in the
store, and such shards are read AT_TIMESTAMP from it — Kinesis's usual LATEST, except that a run
that read nothing does not move the start forward and lose what arrived between runs. Child
shards created by resharding after that start hold only newer records, so they are read whole.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from sync.errors import ConsumerError
from sync.limits import GET_RECORDS_MAX_RECORDS, SHARD_READ_CALLS_PER_SECOND
from sync.membership_store import (
    Checkpoint,
    MembershipStore,
    RawRecord,
)

THROTTLE_BACKOFF_BASE_SECONDS: Final = 0.5
THROTTLE_BACKOFF_CAP_SECONDS: Final = 10.0
IDLE_SLEEP_SECONDS: Final = 1.0  # between empty passes when not stopping at idle
START_MARGIN_SECONDS: Final = 300.0  # re-reading a few minutes is harmless; missing them is not
_MIN_CALL_INTERVAL_SECONDS: Final = 1.0 / SHARD_READ_CALLS_PER_SECOND
_THROTTLED: Final = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)
_READ_ACTIONS: Final = (
    "kinesis:DescribeStreamSummary, kinesis:ListShards, kinesis:GetShardIterator and"
    " kinesis:GetRecords"
)


@dataclass(frozen=True)
class ConsumeReport:
    """What one consume() did; records = applied + duplicates + stale + quarantined."""

    records: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    quarantined: int = 0
    shards: int = 0
    get_records_calls: int = 0
    throttles: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return asdict(self)

    def render(self) -> str:
        """Aligned lines for people; invalid records are pointed at, never silently counted."""
        lines = [
            f"  {key:<18}{value:>12,}" for key, value in asdict(self).items() if key != "seconds"
        ]
        lines.append(f"  {'seconds':<18}{self.seconds:>12.2f}")
        if self.quarantined:
            lines.append(
                f"  {self.quarantined:,} invalid record(s) quarantined with their reasons in the "
                "state file; valid records around them were applied"
            )
        return "\n".join(["consume:", *lines])


@dataclass(frozen=True)
class _Shard:
    shard_id: str
    parents: tuple[str, ...]
    ending_sequence_number: str | None  # set once the shard is closed


@dataclass
class _Tally:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    quarantined: int = 0
    get_records_calls: int = 0
    throttles: int = 0
    shards_read: set[str] = field(default_factory=set)

    def report(self, seconds: float) -> ConsumeReport:
        return ConsumeReport(
            self.records,
            self.applied,
            self.duplicates,
            self.stale,
            self.quarantined,
            len(self.shards_read),
            self.get_records_calls,
            self.throttles,
            seconds,
        )


@dataclass(frozen=True)
class _Page:
    records: int
    millis_behind_latest: int
    finished: bool


class _Deadline(Exception):
    """Raised internally when max_seconds runs out mid-wait."""


class Consumer:
    """Applies a Kinesis cohort stream to a MembershipStore; see the module docstring."""

    def __init__(
        self,
        kinesis: Any,
        stream: str,
        store: MembershipStore,
        *,
        from_start: bool,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[ConsumeReport], None] | None = None,
    ) -> None:
        self._kinesis = kinesis
        self._stream = stream  # a stream name or ARN
        self._store = store
        self._from_start = from_start
        self._sleep = sleep
        self._clock = clock
        self._on_progress = on_progress

    def consume(self, until_idle: bool = True, max_seconds: float | None = None) -> ConsumeReport:
        """Read and apply until idle (or for max_seconds); return what was done."""
        started = self._clock()
        deadline = None if max_seconds is None else started + max_seconds
        tally = _Tally()
        arn = self._stream_arn()
        self._store.prune_seen()
        start_epoch = self._store.stream_start(
            arn, from_start=self._from_start, now_epoch_seconds=time.time() - START_MARGIN_SECONDS
        )
        reader = _ShardReader(self, arn, start_epoch, tally, deadline, started)
        # max_seconds ends the run between pages; everything committed so far stays.
        with contextlib.suppress(_Deadline):
            reader.run(until_idle)
        return tally.report(self._clock() - started)

    def _stream_arn(self) -> str:
        try:
            summary = self._kinesis.describe_stream_summary(**self._stream_param())
        except ClientError as exc:
            raise self._translate(exc, "DescribeStreamSummary") from exc
        return str(summary["StreamDescriptionSummary"]["StreamARN"])

    def _stream_param(self) -> dict[str, str]:
        if self._stream.startswith("arn:"):
            return {"StreamARN": self._stream}
        return {"StreamName": self._stream}

    def _translate(
        self, exc: ClientError, action: str, shard_id: str | None = None
    ) -> ConsumerError:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        where = f"stream {self._stream!r}" + (f" shard {shard_id}" if shard_id else "")
        region = getattr(getattr(self._kinesis, "meta", None), "region_name", "?")
        if code == "ResourceNotFoundException":
            return ConsumerError(
                f"{where}: not found in region {region} ({action}); check the stream name and"
                " region, or provision the destination first"
            )
        if code in {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}:
            return ConsumerError(
                f"{where}: access denied on {action}; grant the reading identity {_READ_ACTIONS}"
                " on the stream ARN (and kms:Decrypt on its key if it uses a customer key)"
            )
        if code.startswith("KMS"):
            return ConsumerError(
                f"{where}: {code} on {action}; grant kms:Decrypt on the stream's KMS key"
            )
        return ConsumerError(f"{where}: {action} failed with {code}: {message}")


class _ShardReader:
    """One consume() run's mutable state: iterators, pacing and counts."""

    def __init__(
        self,
        consumer: Consumer,
        arn: str,
        start_epoch: float,
        tally: _Tally,
        deadline: float | None,
        started: float,
    ) -> None:
        self.c = consumer
        self.arn = arn
        self.start_epoch = start_epoch
        self.tally = tally
        self.deadline = deadline
        self.started = started
        self.iterators: dict[str, str] = {}
        self.last_call: dict[str, float] = {}

    def run(self, until_idle: bool) -> None:
        shards: list[_Shard] = []
        relist = True
        while True:
            if relist:
                shards = list(self._list_shards())
            checkpoints = self.c._store.checkpoints(self.arn)
            finished = {sid for sid, cp in checkpoints.items() if cp.shard_closed}
            known = {s.shard_id for s in shards}
            # A parent gone from ListShards was trimmed past retention: nothing left to wait for.
            ready = [
                s
                for s in shards
                if s.shard_id not in finished
                and all(p in finished or p not in known for p in s.parents)
            ]
            if not ready:
                return  # every shard is closed and fully read
            progressed = False
            caught_up = True
            any_finished = False
            for shard in ready:
                page = self._read_page(shard, checkpoints.get(shard.shard_id))
                progressed = progressed or page.records > 0 or page.finished
                caught_up = caught_up and page.millis_behind_latest == 0
                any_finished = any_finished or page.finished
            # Re-list after a shard finished (its children may now be ready) and when idle (a
            # shard we believe open may have been closed by resharding meanwhile).
            relist = any_finished or not progressed
            if not progressed and caught_up:
                if until_idle:
                    return
                self._wait(IDLE_SLEEP_SECONDS)

    def _list_shards(self) -> Iterator[_Shard]:
        params: dict[str, Any] = {"StreamARN": self.arn}
        attempt = 0
        while True:
            try:
                response = self.c._kinesis.list_shards(**params)
            except ClientError as exc:
                if _code(exc) in _THROTTLED:
                    attempt = self._backoff(attempt)
                    continue
                raise self.c._translate(exc, "ListShards") from exc
            attempt = 0
            for shard in response.get("Shards", []):
                parents = tuple(
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                )
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                yield _Shard(shard["ShardId"], parents, ending)
            token = response.get("NextToken")
            if not token:
                return
            # The token identifies the listing; StreamName must not accompany it, StreamARN may
            # (and moto requires it to match the first call).
            params = {"StreamARN": self.arn, "NextToken": token}

    def _iterator(self, shard: _Shard, sequence_number: str | None) -> str:
        params: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard.shard_id}
        if sequence_number is not None:
            params |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": sequence_number,
            }
        elif self.start_epoch == 0.0:
            params["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            params |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.start_epoch}
        attempt = 0
        while True:
            try:
                return str(self.c._kinesis.get_shard_iterator(**params)["ShardIterator"])
            except ClientError as exc:
                if _code(exc) in _THROTTLED:
                    attempt = self._backoff(attempt)
                    continue
                raise self.c._translate(exc, "GetShardIterator", shard.shard_id) from exc

    def _read_page(self, shard: _Shard, checkpoint: Checkpoint | None) -> _Page:
        sid = shard.shard_id
        store = self.c._store
        if sid not in self.iterators:
            self.iterators[sid] = self._iterator(shard, _sequence_of(checkpoint))
        attempt = 0
        while True:
            self._pace(sid)
            self.tally.get_records_calls += 1
            self.tally.shards_read.add(sid)
            try:
                response = self.c._kinesis.get_records(
                    StreamARN=self.arn,
                    ShardIterator=self.iterators[sid],
                    Limit=GET_RECORDS_MAX_RECORDS,
                )
                break
            except ClientError as exc:
                code = _code(exc)
                if code in _THROTTLED:
                    self.tally.throttles += 1
                    attempt = self._backoff(attempt)
                elif code == "ExpiredIteratorException":
                    # Resume from what is committed, never from what was merely fetched.
                    current = store.checkpoints(self.arn).get(sid)
                    self.iterators[sid] = self._iterator(shard, _sequence_of(current))
                else:
                    raise self.c._translate(exc, "GetRecords", sid) from exc
        records = response.get("Records", [])
        behind = int(response.get("MillisBehindLatest", 0))
        next_iterator = response.get("NextShardIterator")
        # Kinesis ends a closed shard with a null iterator; moto never does, so a closed shard
        # that returns nothing while at the tip counts as fully read too.
        finished = next_iterator is None or (
            shard.ending_sequence_number is not None and not records and behind == 0
        )
        # The store checks each record against the contract, in bulk, inside SQLite.
        entries = [RawRecord(str(r["SequenceNumber"]), bytes(r["Data"])) for r in records]
        outcome = store.apply_page(self.arn, sid, entries, shard_closed=finished)
        if next_iterator is not None:
            self.iterators[sid] = next_iterator
        tally = self.tally
        tally.records += len(records)
        tally.applied += outcome.applied
        tally.duplicates += outcome.duplicates
        tally.stale += outcome.stale
        tally.quarantined += outcome.quarantined
        if self.c._on_progress is not None and (records or finished):
            self.c._on_progress(tally.report(self.c._clock() - self.started))
        return _Page(len(records), behind, finished)

    def _pace(self, shard_id: str) -> None:
        """At most SHARD_READ_CALLS_PER_SECOND GetRecords calls per shard."""
        if self.deadline is not None and self.c._clock() >= self.deadline:
            raise _Deadline
        previous = self.last_call.get(shard_id)
        if previous is not None:
            wait = previous + _MIN_CALL_INTERVAL_SECONDS - self.c._clock()
            if wait > 0:
                self._wait(wait)
        self.last_call[shard_id] = self.c._clock()

    def _backoff(self, attempt: int) -> int:
        """Capped exponential backoff; returns the next attempt number."""
        self._wait(min(THROTTLE_BACKOFF_CAP_SECONDS, THROTTLE_BACKOFF_BASE_SECONDS * 2**attempt))
        return attempt + 1

    def _wait(self, seconds: float) -> None:
        if self.deadline is not None and self.c._clock() + seconds > self.deadline:
            raise _Deadline
        self.c._sleep(seconds)


def _sequence_of(checkpoint: Checkpoint | None) -> str | None:
    return None if checkpoint is None else checkpoint.sequence_number


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
