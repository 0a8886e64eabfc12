"""One push: validate the snapshot, stage the diff in the outbox, deliver what is pending."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sync import database
from sync.destination import Destination
from sync.errors import InputError, MassExitError, SnapshotError, StateError
from sync.inputs import cohort_id_problems, cohort_name_problems
from sync.limits import (
    COMPUTED_TIME_RANGE,
)
from sync.mass_exit import ExitGuard, mass_exit_refusal
from sync.messages import OutgoingRecord, build_messages
from sync.options import DeliveryOptions as DeliveryOptions  # re-exported: callers import it here
from sync.publisher import DeliveryReport, ProgressEvent, Publisher
from sync.staging import DiffCounts, StagedSync
from sync.state import StateStore

# Acks per durable transaction: about four 5 MiB PutRecords calls of 1000-user messages (14
# acks took 0.62-2.01 s at 1M users, 4 took 0.53-0.77 s), and never held longer than a second.
ACK_GROUP_RECORDS = 250
ACK_GROUP_SECONDS = 1.0

# The publisher decides every re-send (only refused records, paced, counted in the report);
# botocore's own retries would multiply its tries and hide throttles from the report.
PUBLISHER_CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@dataclass(frozen=True)
class PushReport:
    """What a push (or a replay) did, as printed at the end of every run."""

    cohort_id: str | None
    sync_id: str | None
    dry_run: bool
    snapshot_users: int
    entered: int
    exited: int
    messages: int
    records: int
    bytes: int
    put_records_calls: int
    retries: int
    throttles: int
    seconds: float
    failed: tuple[str, ...] = field(default_factory=tuple)
    pending_left: int = 0

    @classmethod
    def delivered(
        cls,
        delivery: DeliveryReport,
        *,
        started: float,
        pending_left: int,
        messages: int,
        cohort_id: str | None = None,
        sync_id: str | None = None,
        snapshot_users: int = 0,
        entered: int = 0,
        exited: int = 0,
    ) -> PushReport:
        """The report of a run that staged `messages` and then delivered as `delivery` says."""
        return cls(
            cohort_id=cohort_id,
            sync_id=sync_id,
            dry_run=False,
            snapshot_users=snapshot_users,
            entered=entered,
            exited=exited,
            messages=messages,
            records=delivery.records_sent,
            bytes=delivery.bytes_sent,
            put_records_calls=delivery.put_records_calls,
            retries=delivery.retries,
            throttles=delivery.throttles,
            seconds=time.perf_counter() - started,
            failed=delivery.failed,
            pending_left=pending_left,
        )

    @property
    def ok(self) -> bool:
        """True when nothing is left undelivered."""
        return not self.failed and self.pending_left == 0

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        payload = asdict(self)
        payload["failed"] = list(self.failed)
        payload["ok"] = self.ok
        return payload

    def render(self) -> str:
        """A few aligned lines for people."""
        head = "dry run (nothing sent)" if self.dry_run else "push"
        lines = [
            f"{head}: cohort {self.cohort_id or '-'} sync {self.sync_id or '-'}",
            f"  snapshot users    {self.snapshot_users:>12,}",
            f"  entered           {self.entered:>12,}",
            f"  exited            {self.exited:>12,}",
            f"  messages          {self.messages:>12,}",
            f"  records sent      {self.records:>12,}",
            f"  bytes sent        {self.bytes:>12,}",
            f"  PutRecords calls  {self.put_records_calls:>12,}",
            f"  retries           {self.retries:>12,}",
            f"  throttles         {self.throttles:>12,}",
            f"  seconds           {self.seconds:>12.2f}",
        ]
        if not self.ok:
            lines.append(
                f"  NOT DELIVERED: {self.pending_left:,} record(s) remain in the outbox "
                f"({len(self.failed):,} exhausted their tries this run); fix the cause, then "
                "run `cohort-sync replay`"
            )
        return "\n".join(lines)


def new_sync_id(cohort_id: str, computed_time: str) -> str:
    """A unique sync id; message ids are `<sync id>:<sequence>`."""
    return f"{cohort_id}-{computed_time}-{secrets.token_hex(4)}"


def _builder(
    cohort_id: str, cohort_name: str, computed_time: str, sync_id: str, options: DeliveryOptions
) -> Callable[[bool, Iterable[str], int], Iterable[OutgoingRecord]]:
    def build(
        in_cohort: bool, users: Iterable[str], first_sequence: int
    ) -> Iterable[OutgoingRecord]:
        return build_messages(
            cohort_id=cohort_id,
            cohort_name=cohort_name,
            in_cohort=in_cohort,
            computed_time=computed_time,
            sync_id=sync_id,
            first_sequence=first_sequence,
            users=users,
            max_users_per_message=options.max_users_per_message,
            partition_key=options.partition_key,
        )

    return build


def load_and_plan(
    store: StateStore,
    snapshot: Path,
    *,
    cohort_id: str,
    cohort_name: str,
    stream_arn: str,
    max_users: int | None = None,
    max_users_rule: str = "",
) -> tuple[int, DiffCounts]:
    """Bind the cohort, validate and load the whole snapshot, and count the diff; sends nothing."""
    store.bind(cohort_id, cohort_name, stream_arn)
    return validate_and_plan(
        store, snapshot, cohort_id=cohort_id, max_users=max_users, max_users_rule=max_users_rule
    )


def validate_and_plan(
    store: StateStore,
    snapshot: Path,
    *,
    cohort_id: str,
    max_users: int | None = None,
    max_users_rule: str = "",
) -> tuple[int, DiffCounts]:
    """Validate and load the whole snapshot and count the diff; writes nothing to the state."""
    summary = store.staging.load_snapshot(snapshot)
    if max_users is not None and summary.users > max_users:
        raise SnapshotError(
            f"snapshot {snapshot}: {summary.users:,} users; {max_users_rule}", fix=max_users_rule
        )
    return summary.users, store.staging.plan(cohort_id)


def check_request(request: PushRequest) -> None:
    """Refuse, with every problem at once, a request whose cohort or guard break their rules."""
    # The delivery options checked themselves when they were made (sync/options.py).
    problems = cohort_id_problems(request.cohort_id) + cohort_name_problems(request.cohort_name)
    guard = request.exit_guard
    if not 0.0 <= guard.max_exit_fraction <= 1.0:
        problems.append(f"--max-exit-fraction {guard.max_exit_fraction}: must be from 0 to 1")
    if request.computed_time is not None and not (
        request.computed_time.isdigit()
        and COMPUTED_TIME_RANGE[0] <= int(request.computed_time) <= COMPUTED_TIME_RANGE[1]
    ):
        problems.append(
            f"--computed-time {request.computed_time!r}: epoch seconds, a whole number from "
            f"{COMPUTED_TIME_RANGE[0]} to {COMPUTED_TIME_RANGE[1]:,}"
        )
    if problems:
        raise InputError("; ".join(problems))


def check_mass_exit(counts: DiffCounts, snapshot_users: int, guard: ExitGuard) -> None:
    """Raise MassExitError when the diff would remove more of the cohort than `guard` allows."""
    refusal = mass_exit_refusal(
        members=counts.unchanged + counts.exiting,
        exiting=counts.exiting,
        snapshot_users=snapshot_users,
        guard=guard,
    )
    if refusal is not None:
        raise MassExitError(refusal)


def default_computed_time(last: int | None) -> str:
    """Now in epoch seconds, or one second after the cohort's `last` sync if that is later."""
    now = int(time.time())
    return str(now if last is None else max(now, last + 1))


def check_computed_time(
    last: int | None, cohort_id: str, computed_time: str, counts: DiffCounts
) -> None:
    """Refuse a push that consumers would order before (or level with) what they already have.

    Consumers keep, per user, the update with the latest computed_time, so an earlier one is
    ignored and an equal one can lose to the last sync's; a push with nothing to send is fine.
    """
    if last is None or int(computed_time) > last:
        return
    if int(computed_time) == last and not (counts.entering or counts.exiting):
        return
    raise StateError(
        f"computed_time {computed_time}: not after cohort {cohort_id}'s last sync ({last}); "
        "consumers keep each user's latest computed_time, so this push would be ignored or "
        f"lose ties: use a time after {last} (the default, now, is)",
        fix=f"pass a --computed-time after {last}, or leave it out (now is later)",
    )


def stage(
    store: StateStore,
    *,
    cohort_id: str,
    cohort_name: str,
    computed_time: str,
    options: DeliveryOptions,
    sync_id: str | None = None,
    resend_all: bool = False,
) -> StagedSync:
    """Commit the diff's messages and the new membership together (the loaded snapshot's)."""
    sync_id = sync_id or new_sync_id(cohort_id, computed_time)
    return store.staging.stage(
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        computed_time=computed_time,
        sync_id=sync_id,
        build=_builder(cohort_id, cohort_name, computed_time, sync_id, options),
        resend_all=resend_all,
    )


class GroupedAcks:
    """Acks in groups: one durable transaction per `min_records` acknowledged, or per second.

    Each ack is a DuckDB commit (a WAL fsync) on the sender loop's thread; grouping a few
    PutRecords calls' acks into one keeps that off the critical path. Only records Kinesis
    acknowledged are ever acked; a crash before a flush re-sends them under the same ids.
    """

    def __init__(
        self,
        ack: Callable[[list[str]], None],
        *,
        min_records: int = ACK_GROUP_RECORDS,
        max_seconds: float = ACK_GROUP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ack = ack
        self._min = min_records
        self._max_seconds = max_seconds
        self._clock = clock
        self._ids: list[str] = []
        self._since = 0.0

    def __call__(self, message_ids: list[str]) -> None:
        if not self._ids:
            self._since = self._clock()
        self._ids.extend(message_ids)
        if len(self._ids) >= self._min or self._clock() - self._since >= self._max_seconds:
            self.flush()

    def flush(self) -> None:
        """Ack everything held; durable on return."""
        if self._ids:
            ids, self._ids = self._ids, []
            self._ack(ids)


def deliver_pending(
    store: StateStore,
    kinesis: Any,
    stream: str,
    options: DeliveryOptions,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    reconnect: Callable[[], Any] | None = None,
) -> DeliveryReport:
    """Send everything the outbox holds; only acknowledged records leave it.

    `reconnect` returns a fresh Kinesis client; without it ExpiredToken stops the delivery.
    """
    publisher = Publisher(kinesis, stream, options, on_progress=on_progress, reconnect=reconnect)
    acks = GroupedAcks(store.outbox.ack)
    try:
        report = publisher.send(store.outbox.pending(), on_acked=acks)
    finally:
        # What Kinesis took is acked whatever happens next (a refusal, an interrupt).
        acks.flush()
    if report.failed:
        store.outbox.record_failure(list(report.failed), "exhausted tries")
    return report


ProgressFactory = Callable[[int], AbstractContextManager[Callable[[ProgressEvent], None] | None]]


@contextmanager
def no_progress(total: int) -> Iterator[None]:
    """The progress factory that shows nothing."""
    yield None


@dataclass(frozen=True)
class PushRequest:
    """Everything one push needs besides credentials."""

    destination: Destination
    snapshot: Path
    cohort_id: str
    cohort_name: str
    state: Path
    # Epoch seconds as a string; None means now, or one second after the cohort's last sync
    # when that is later (two pushes in one second must still be ordered).
    computed_time: str | None = None
    options: DeliveryOptions = field(default_factory=DeliveryOptions)
    dry_run: bool = False
    skip_preflight: bool = False
    resend_all: bool = False  # every snapshot user enters again, whatever the state says
    max_users: int | None = None
    max_users_rule: str = ""
    exit_guard: ExitGuard = field(default_factory=ExitGuard)


def run_push(
    request: PushRequest,
    *,
    connect: Callable[[], boto3.Session],
    check: Callable[[boto3.Session], object] | None = None,
    endpoint_url: str | None = None,
    progress: ProgressFactory = no_progress,
) -> PushReport:
    """Validate, (preflight,) stage and deliver one snapshot.

    `connect` assumes the role and is called once the snapshot is valid, unless it is a dry run
    (even when the diff is empty: the outbox may hold a killed push's records); `check` is the
    preflight, run before anything is staged so a role that cannot write stages nothing.
    """
    dest = request.destination
    started = time.perf_counter()
    check_request(request)
    state = _FreshState(request.state)
    with database.disk_failures(str(state.path), staged=lambda: state.staged), closing(state):
        store = state.open()
        # Everything below up to bind() only reads the state: a refusal leaves it as it was.
        users, counts = validate_and_plan(
            store,
            request.snapshot,
            cohort_id=request.cohort_id,
            max_users=request.max_users,
            max_users_rule=request.max_users_rule,
        )
        store.check_binding(request.cohort_id, request.cohort_name, dest.stream_arn)
        check_mass_exit(counts, users, request.exit_guard)
        last = store.last_computed_time(request.cohort_id)
        computed_time = request.computed_time or default_computed_time(last)
        check_computed_time(last, request.cohort_id, computed_time, counts)
        if request.dry_run:
            # A sync id of the push's own shape: message ids are in every record (and are the
            # partition key), so "dry-run" counted 6 bytes fewer per record than the push sent.
            sync_id = new_sync_id(request.cohort_id, computed_time)
            planned = store.staging.preview(
                cohort_id=request.cohort_id,
                sync_id=sync_id,
                build=_builder(
                    request.cohort_id, request.cohort_name, computed_time, sync_id, request.options
                ),
                resend_all=request.resend_all,
            )
            return PushReport(
                cohort_id=request.cohort_id,
                sync_id=None,
                dry_run=True,
                snapshot_users=users,
                entered=planned.entering,
                exited=planned.exiting,
                messages=planned.messages,
                records=0,
                bytes=planned.bytes,
                put_records_calls=0,
                retries=0,
                throttles=0,
                seconds=time.perf_counter() - started,
            )
        session = connect()
        if check is not None and not request.skip_preflight:
            check(session)
        # The first write: only now, every check and the preflight passed, is the cohort bound.
        state.written = True
        store.bind(request.cohort_id, request.cohort_name, dest.stream_arn)
        staged = stage(
            store,
            cohort_id=request.cohort_id,
            cohort_name=request.cohort_name,
            computed_time=computed_time,
            options=request.options,
            resend_all=request.resend_all,
        )
        state.staged = True
        delivery, left = deliver_outbox(
            store,
            dest,
            connect=connect,
            session=session,
            options=request.options,
            endpoint_url=endpoint_url,
            progress=progress,
        )
    return PushReport.delivered(
        delivery,
        started=started,
        pending_left=left,
        messages=staged.messages,
        cohort_id=request.cohort_id,
        sync_id=staged.sync_id if staged.messages else None,  # nothing staged: no sync
        snapshot_users=users,
        entered=staged.entering,
        exited=staged.exiting,
    )


def deliver_outbox(
    store: StateStore,
    destination: Destination,
    *,
    connect: Callable[[], boto3.Session],
    options: DeliveryOptions,
    session: boto3.Session | None = None,
    endpoint_url: str | None = None,
    progress: ProgressFactory = no_progress,
) -> tuple[DeliveryReport, int]:
    """The one delivery path of push and replay: send the outbox, then compact the file.

    Returns the delivery and the records still pending. `session` is the one a push already
    assumed; without it (a replay) the role is assumed here.
    """

    def reconnect(session: boto3.Session | None = None) -> Any:
        # Also when Kinesis says the keys expired before the session thought so.
        return (session or connect()).client(
            "kinesis",
            region_name=destination.region,
            endpoint_url=endpoint_url,
            config=PUBLISHER_CLIENT_CONFIG,
        )

    kinesis = reconnect(session)
    with progress(store.outbox.counts().pending) as on_progress:
        delivery = deliver_pending(
            store,
            kinesis,
            destination.stream_arn,
            options,
            on_progress=on_progress,
            reconnect=reconnect,
        )
    left = store.outbox.counts().pending
    store.compact()  # acked records are deleted: the file follows the live data
    return delivery, left


class _FreshState:
    """The state store of one push, whether the push has written to it yet, and staged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created = not path.exists()
        self._store: StateStore | None = None
        self.written = False
        self.staged = False  # the sync is committed: a later failure leaves it to be delivered

    def open(self) -> StateStore:
        """Open (or create) the state file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._store = StateStore(self.path)
        return self._store

    def close(self) -> None:
        """Close; a file this run created but never wrote to (a refusal, a dry run) goes."""
        if self._store is not None:
            self._store.close()
        if self.created and not self.written:
            for leftover in (self.path, self.path.with_name(self.path.name + ".wal")):
                leftover.unlink(missing_ok=True)


def run_replay(
    state: Path,
    destination: Destination,
    *,
    connect: Callable[[], boto3.Session],
    options: DeliveryOptions,
    endpoint_url: str | None = None,
    progress: ProgressFactory = no_progress,
) -> PushReport:
    """Re-send whatever the outbox still holds."""
    if not state.exists():
        raise StateError(
            f"--state {state}: no such publisher state file; nothing to replay",
            fix="pass the --state file the push that left records wrote",
        )
    started = time.perf_counter()
    # Whatever a replay finds is staged already: a full disk leaves it there (exit 1).
    with database.disk_failures(str(state), staged=lambda: True), StateStore(state) as store:
        waiting = store.outbox.counts().pending
        if waiting == 0:
            return PushReport.delivered(
                DeliveryReport(0, 0, 0, 0, 0, (), 0.0), started=started, pending_left=0, messages=0
            )
        delivery, left = deliver_outbox(
            store,
            destination,
            connect=connect,
            options=options,
            endpoint_url=endpoint_url,
            progress=progress,
        )
    return PushReport.delivered(delivery, started=started, pending_left=left, messages=waiting)
