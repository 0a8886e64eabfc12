"""Bad days for moto's Kinesis: throttling, partial failures, errors, lost responses, pulled rugs.

moto never throttles, never fails a record and never loses a response, so a green suite says nothing
about what a sender does when Kinesis pushes back. While `faults_installed(plan)` is active,
these attributes of `moto.kinesis.responses.KinesisResponse` are shadowed (and deleted again on
exit, which restores the class exactly; nothing else in moto is touched):

- `call_action` (inherited from moto's `BaseResponse`): counts every Kinesis call; on targeted calls
  runs scheduled actions (delete the stream, detach the caller's role policies) through moto's
  backends, answers `ExpiredTokenException` before moto authorizes (AWS authenticates first), and
  drops the connection either before moto processes the call (`timeout`, `reset`: nothing lands)
  or after it did (`timeout-landed`, `reset-landed`: records stored, response lost).
- `put_records`, `put_record`, `get_records`: per-shard throughput (`sandbox.throughput`) and
  per-record `InternalFailure`; records moto would store beyond their shard's budget are not stored.
- every other targeted operation's method: raises the chosen whole-request error. Raising inside
  the operation method, after moto's authorization, lets moto serialize the error like its own.

A lost response reaches the client as a transport error. In-process (`mock_aws`) the patch raises
botocore's `ReadTimeoutError` / `ConnectionClosedError` out of moto's `before-send` stub, where
botocore's endpoint catches it exactly as it catches a real socket error: retries and all. Under a
`ThreadedMotoServer` in this process the patch shuts the request's socket and raises
`ConnectionResetError`, which werkzeug treats as a dropped connection; the client sees
`ConnectionClosedError` for timeouts too (a real read timeout would cost the client's full
read_timeout in wall time).

Call numbers count server-side attempts, so a botocore retry is a new call. ON_DEMAND streams get
the shard count moto gives them (4), each at the provisioned per-shard limits: 4 MiB/s of writes,
as a fresh on-demand stream has.
"""

import base64
import binascii
import math
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import StrEnum
from functools import cache
from typing import Any, Final, cast

import botocore.session
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores
from moto.iam.exceptions import NotFoundException
from moto.iam.models import get_account_id_from, iam_backends
from moto.kinesis.models import Stream
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.utilities.utils import get_partition

from sandbox.throughput import Clock, ScaledClock, ThroughputModel, record_size_bytes
from sync.limits import MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES


class FaultKind(StrEnum):
    """Every injectable fault and action; the value is its key in a spec string."""

    RECORD_INTERNAL = "record-internal"
    THROTTLE = "throttle"
    KMS_THROTTLE = "kms-throttle"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    EXPIRED_TOKEN = "expired-token"
    TIMEOUT = "timeout"
    RESET = "reset"
    TIMEOUT_LANDED = "timeout-landed"
    RESET_LANDED = "reset-landed"
    DELETE_STREAM = "delete-stream"
    DETACH_POLICY = "detach-policy"

    @property
    def field_name(self) -> str:
        """Return the FaultPlan field holding this kind's trigger."""
        return self.value.replace("-", "_")


ACTIONS: Final = (FaultKind.DELETE_STREAM, FaultKind.DETACH_POLICY)
# When several call-level faults fire on one call, the first listed wins; every trigger is still
# drawn on every call so a seed gives the same sequence whatever else is configured.
CALL_FAULTS: Final = (
    FaultKind.EXPIRED_TOKEN,
    FaultKind.TIMEOUT,
    FaultKind.RESET,
    FaultKind.THROTTLE,
    FaultKind.KMS_THROTTLE,
    FaultKind.UNAVAILABLE,
    FaultKind.INTERNAL,
    FaultKind.TIMEOUT_LANDED,
    FaultKind.RESET_LANDED,
)
LOST_BEFORE_LANDING: Final = (FaultKind.TIMEOUT, FaultKind.RESET)
LOST_AFTER_LANDING: Final = (FaultKind.TIMEOUT_LANDED, FaultKind.RESET_LANDED)

WRITE_OPERATIONS: Final = frozenset({"PutRecord", "PutRecords"})
READ_OPERATIONS: Final = frozenset({"GetRecords", "GetShardIterator"})
ALL_OPERATIONS: Final = "*"
TARGET_ALIASES: Final = {
    "write": WRITE_OPERATIONS,
    "read": READ_OPERATIONS,
    "all": frozenset({ALL_OPERATIONS}),
}

RATE_RULE: Final = "a rate is a number from 0 to 1"
SCHEDULE_RULE: Final = (
    "a schedule is '@' then N, N-M or N- joined by '+' (1-based, e.g. @3+7+10-20)"
)


class FaultSpecError(ValueError):
    """A fault plan or spec string breaks a rule; lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid fault plan: " + "; ".join(problems))


@dataclass(frozen=True)
class Rate:
    """Fires on each call (or record) independently with `probability`, from the plan's rng."""

    probability: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.probability) and 0 <= self.probability <= 1):
            raise ValueError(RATE_RULE)

    def fires(self, number: int, rng: random.Random) -> bool:
        """Draw once; the call number is irrelevant to a rate."""
        return rng.random() < self.probability

    def to_spec(self) -> str:
        """Return the spec text for this trigger."""
        return f"{self.probability:g}"


@dataclass(frozen=True)
class Schedule:
    """Fires on listed 1-based call (or record) numbers; a span's end of None means forever."""

    spans: tuple[tuple[int, int | None], ...]

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError(SCHEDULE_RULE)
        for first, last in self.spans:
            if first < 1 or (last is not None and last < first):
                raise ValueError(SCHEDULE_RULE)

    def fires(self, number: int, rng: random.Random) -> bool:
        """Whether `number` falls in a span; consumes no randomness."""
        return any(
            first <= number and (last is None or number <= last) for first, last in self.spans
        )

    def to_spec(self) -> str:
        """Return the spec text for this trigger."""
        parts = []
        for first, last in self.spans:
            parts.append(str(first) if last == first else f"{first}-{'' if last is None else last}")
        return "@" + "+".join(parts)


Trigger = Rate | Schedule


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong, when: throughput limits, fault triggers and actions, over a seeded rng."""

    throughput: bool = False
    scale: float = 1.0  # model seconds per real second; shards refill this many times faster
    seed: int = 0
    targets: frozenset[str] = WRITE_OPERATIONS  # operations call-level faults apply to
    expire_after_seconds: float | None = None  # model seconds until assumed-role keys expire
    record_internal: Trigger | None = None  # numbers count PutRecords records, not calls
    throttle: Trigger | None = None
    kms_throttle: Trigger | None = None
    unavailable: Trigger | None = None
    internal: Trigger | None = None
    expired_token: Trigger | None = None
    timeout: Trigger | None = None
    reset: Trigger | None = None
    timeout_landed: Trigger | None = None
    reset_landed: Trigger | None = None
    delete_stream: Schedule | None = None
    detach_policy: Schedule | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.scale) and self.scale > 0):
            problems.append(f"scale={self.scale!r}: must be a number > 0")
        if self.expire_after_seconds is not None and not (
            math.isfinite(self.expire_after_seconds) and self.expire_after_seconds >= 0
        ):
            problems.append(
                f"expire-after-s={self.expire_after_seconds!r}: must be model seconds >= 0"
            )
        unknown = sorted(self.targets - known_operations() - {ALL_OPERATIONS})
        if unknown or not self.targets:
            problems.append(f"targets={'+'.join(sorted(self.targets))!r}: {_targets_rule(unknown)}")
        for kind in ACTIONS:
            trigger = self.trigger(kind)
            if trigger is not None and not isinstance(trigger, Schedule):
                problems.append(
                    f"{kind}={trigger.to_spec()!r}: an action takes a schedule, not a rate"
                )
        if problems:
            raise FaultSpecError(problems)

    def trigger(self, kind: FaultKind) -> Trigger | None:
        """Return the trigger configured for `kind`, if any."""
        return cast(Trigger | None, getattr(self, kind.field_name))

    def targets_operation(self, operation: str) -> bool:
        """Whether call-level faults apply to `operation`."""
        return ALL_OPERATIONS in self.targets or operation in self.targets

    @classmethod
    def parse(cls, spec: str) -> "FaultPlan":
        """Build a plan from `key=value,...`; see `SPEC_HELP`. Reports every bad item at once."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep:
                problems.append(f"{item!r}: expected key=value")
                continue
            if key in seen:
                problems.append(f"{key}={value!r}: {key} is given more than once")
                continue
            seen.add(key)
            parser = _PARSERS.get(key)
            if parser is None:
                problems.append(f"{key}={value!r}: unknown key; known: {', '.join(_PARSERS)}")
                continue
            try:
                values[_FIELD_FOR_KEY[key]] = parser(value)
            except ValueError as exc:
                problems.append(f"{key}={value!r}: {exc}")
        if problems:
            raise FaultSpecError(problems)
        return cls(**values)

    def to_spec(self) -> str:
        """Return a spec string that parses back to this plan."""
        default = FaultPlan()
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            key = _KEY_FOR_FIELD[f.name]
            if isinstance(value, Rate | Schedule):
                items.append(f"{key}={value.to_spec()}")
            elif isinstance(value, bool):
                items.append(f"{key}={'on' if value else 'off'}")
            elif isinstance(value, frozenset):
                items.append(f"{key}={'+'.join(sorted(value))}")
            else:
                items.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        return ",".join(items)


SPEC_HELP: Final = (
    "comma-separated key=value items: "
    "throughput=on|off; scale=<model seconds per real second, > 0>; seed=<int>; "
    "targets=write|read|all|<Kinesis operations joined by '+'> "
    "(default write = PutRecord+PutRecords); "
    "expire-after-s=<model seconds>; "
    f"{'|'.join(k for k in FaultKind if k not in ACTIONS)}=<rate 0..1>|<schedule>; "
    f"{'|'.join(ACTIONS)}=<schedule>. {SCHEDULE_RULE}. "
    "record-internal counts PutRecords records; everything else counts targeted calls."
)


@cache
def known_operations() -> frozenset[str]:
    """Return Kinesis operation names from botocore's service model (loaded once, lazily)."""
    model = botocore.session.get_session().get_service_model("kinesis")
    return frozenset(model.operation_names)


def _targets_rule(unknown: list[str]) -> str:
    rule = "must be write, read, all or Kinesis operation names joined by '+'"
    return f"{rule} (unknown: {', '.join(unknown)})" if unknown else rule


def _parse_number(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _parse_switch(value: str) -> bool:
    if value not in ("on", "off"):
        raise ValueError("must be on or off")
    return value == "on"


def _parse_scale(value: str) -> float:
    try:
        scale = _parse_number(value)
    except ValueError:
        scale = 0.0
    if scale <= 0:
        raise ValueError("must be a number > 0")
    return scale


def _parse_seed(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("must be an integer") from None


def _parse_seconds(value: str) -> float:
    try:
        seconds = _parse_number(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError("must be model seconds >= 0")
    return seconds


def _parse_targets(value: str) -> frozenset[str]:
    names: set[str] = set()
    for part in value.split("+"):
        names |= TARGET_ALIASES.get(part, {part})
    unknown = sorted(names - known_operations() - {ALL_OPERATIONS})
    if unknown or not value:
        raise ValueError(_targets_rule(unknown))
    return frozenset(names)


def _parse_schedule(value: str) -> Schedule:
    if not value.startswith("@"):
        raise ValueError(SCHEDULE_RULE)
    spans: list[tuple[int, int | None]] = []
    for part in value[1:].split("+"):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(SCHEDULE_RULE)
        spans.append((int(first), (int(last) if last else None) if dash else int(first)))
    return Schedule(tuple(spans))


def _parse_trigger(value: str) -> Trigger:
    if value.startswith("@"):
        return _parse_schedule(value)
    try:
        probability = float(value)
    except ValueError:
        raise ValueError(f"{RATE_RULE}, or {SCHEDULE_RULE}") from None
    return Rate(probability)


def _parse_action(value: str) -> Schedule:
    if not value.startswith("@"):
        raise ValueError(f"an action takes a schedule, not a rate; {SCHEDULE_RULE}")
    return _parse_schedule(value)


_PARSERS: Final[dict[str, Callable[[str], object]]] = {
    "throughput": _parse_switch,
    "scale": _parse_scale,
    "seed": _parse_seed,
    "targets": _parse_targets,
    "expire-after-s": _parse_seconds,
    **{kind.value: _parse_action if kind in ACTIONS else _parse_trigger for kind in FaultKind},
}
_FIELD_FOR_KEY: Final = {
    **{key: key.replace("-", "_") for key in _PARSERS},
    "expire-after-s": "expire_after_seconds",
}
_KEY_FOR_FIELD: Final = {name: key for key, name in _FIELD_FOR_KEY.items()}


@dataclass(frozen=True)
class LandedRecord:
    """A record moto stored although the client never saw the response that says so."""

    operation: str
    stream_name: str
    partition_key: str
    data: bytes


@dataclass(frozen=True)
class ActionEvent:
    """An action the plan performed (or could not perform) just before call `call_number`."""

    kind: FaultKind
    call_number: int
    target: str
    outcome: str


class FaultController:
    """What the installed plan did: counters and records for tests and truthful reports."""

    def __init__(self, plan: FaultPlan, clock: Clock | None = None) -> None:
        self.plan = plan
        self.clock: Clock = clock if clock is not None else ScaledClock(plan.scale)
        self.throughput = ThroughputModel(self.clock) if plan.throughput else None
        self.calls_seen: Counter[str] = Counter()  # every Kinesis call, by operation
        self.targeted_calls = 0
        self.records_seen = 0  # records offered by PutRecord and PutRecords
        self.records_written = 0  # records moto stored
        self.records_throttled = 0  # records refused by the throughput model
        self.reads_throttled = 0  # GetRecords calls refused by the throughput model
        self.faults: Counter[FaultKind] = Counter()  # records for record-internal, else calls
        self.landed: list[LandedRecord] = []
        self.actions: list[ActionEvent] = []
        self._rng = random.Random(plan.seed)
        self._started_at = self.clock.now()
        self._put_records_ordinal = 0
        # moto server mode serves calls on several threads; counters and draws must not race.
        self._lock = threading.RLock()
        # call_action and the operation method run on the same thread for one call.
        self._call = threading.local()

    @property
    def landed_data(self) -> list[bytes]:
        """Return the data of every landed-but-unacknowledged record, in landing order."""
        return [record.data for record in self.landed]

    def summary(self) -> dict[str, int]:
        """Return every counter as a flat mapping, for reports."""
        with self._lock:
            counts = {
                "calls": sum(self.calls_seen.values()),
                "targeted_calls": self.targeted_calls,
                "records_seen": self.records_seen,
                "records_written": self.records_written,
                "records_throttled": self.records_throttled,
                "reads_throttled": self.reads_throttled,
                "landed_records": len(self.landed),
            }
            counts.update({f"fault:{kind}": self.faults[kind] for kind in FaultKind})
            return counts

    # The methods below run inside moto, once per Kinesis call.

    def _call_action(self, resp: KinesisResponse, original: Callable[..., TYPE_RESPONSE]) -> Any:
        operation = resp._get_action()
        chosen = self._admit(resp, operation)
        self._call.pending = None
        self._call.written = []
        if chosen is FaultKind.EXPIRED_TOKEN:
            return _error_response(resp, _error(chosen, resp))
        if chosen in LOST_BEFORE_LANDING:
            raise _transport_error(resp, chosen)
        if chosen is not None and chosen not in LOST_AFTER_LANDING:
            self._call.pending = _error(chosen, resp)
        response = original(resp)
        if self._call.pending is not None:
            # moto answered before the operation ran (authorization failed): nothing was injected.
            self._call.pending = None
            with self._lock:
                self.faults[cast(FaultKind, chosen)] -= 1
        if chosen in LOST_AFTER_LANDING:
            with self._lock:
                self.landed.extend(self._call.written)
            raise _transport_error(resp, chosen)
        return response

    def _admit(self, resp: KinesisResponse, operation: str) -> FaultKind | None:
        """Count the call, run due actions and pick at most one call-level fault."""
        with self._lock:
            self.calls_seen[operation] += 1
            role_arn = _assumed_role_arn(resp)
            expiry = self.plan.expire_after_seconds
            if (
                role_arn is not None
                and expiry is not None
                and self.clock.now() - self._started_at >= expiry
            ):
                self.faults[FaultKind.EXPIRED_TOKEN] += 1
                return FaultKind.EXPIRED_TOKEN
            if not self.plan.targets_operation(operation):
                return None
            self.targeted_calls += 1
            number = self.targeted_calls
            for kind in ACTIONS:
                trigger = self.plan.trigger(kind)
                if trigger is not None and trigger.fires(number, self._rng):
                    self._act(kind, number, resp, role_arn)
            chosen = None
            for kind in CALL_FAULTS:
                trigger = self.plan.trigger(kind)
                fired = trigger is not None and trigger.fires(number, self._rng)
                if kind is FaultKind.EXPIRED_TOKEN and role_arn is None:
                    fired = False
                if fired and chosen is None:
                    chosen = kind
            if chosen is not None:
                self.faults[chosen] += 1
            return chosen

    def _act(
        self, kind: FaultKind, number: int, resp: KinesisResponse, role_arn: str | None
    ) -> None:
        if kind is FaultKind.DELETE_STREAM:
            target, outcome = _delete_stream(resp)
        else:
            target, outcome = _detach_policies(role_arn)
        self.actions.append(ActionEvent(kind, number, target, outcome))
        if not outcome.startswith("skipped"):
            self.faults[kind] += 1

    def _raise_pending(self) -> None:
        pending: JsonRESTError | None = getattr(self._call, "pending", None)
        if pending is not None:
            self._call.pending = None
            raise pending

    def _put_records(self, resp: KinesisResponse, original: Callable[..., Any]) -> Any:
        self._raise_pending()
        stream_arn = resp._get_param("StreamARN")
        stream_name = resp._get_param("StreamName")
        records: list[dict[str, Any]] = resp._get_param("Records") or []
        decoded = [_decode(record.get("Data", "")) for record in records]
        sizes = [
            record_size_bytes(data, record.get("PartitionKey", ""))
            for data, record in zip(decoded, records, strict=True)
        ]
        if (
            len(records) > MAX_PUT_RECORDS_COUNT
            or sum(sizes) > MAX_PUT_RECORDS_BYTES
            or any(size > MAX_RECORD_BYTES for size in sizes)
        ):
            return original(resp)  # moto's own validation answers oversize requests
        backend = resp.kinesis_backend
        stream = backend.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        entries: list[dict[str, str] | None] = []
        accepted: list[dict[str, Any]] = []
        with self._lock:
            self.records_seen += len(records)
            for record, size in zip(records, sizes, strict=True):
                self._put_records_ordinal += 1
                trigger = self.plan.record_internal
                if trigger is not None and trigger.fires(self._put_records_ordinal, self._rng):
                    self.faults[FaultKind.RECORD_INTERNAL] += 1
                    entries.append(
                        {
                            "ErrorCode": "InternalFailure",
                            "ErrorMessage": "Internal service failure.",
                        }
                    )
                    continue
                shard_id = self._over_budget(stream, record, size)
                if shard_id is not None:
                    self.records_throttled += 1
                    entries.append(
                        {
                            "ErrorCode": "ProvisionedThroughputExceededException",
                            "ErrorMessage": _rate_exceeded(stream, shard_id),
                        }
                    )
                    continue
                entries.append(None)
                accepted.append(record)
        written: list[dict[str, str]] = []
        if accepted:
            written = backend.put_records(stream_arn, stream_name, accepted)["Records"]
        landed = iter(written)
        response = [entry if entry is not None else next(landed) for entry in entries]
        with self._lock:
            self.records_written += len(written)
        self._call.written = [
            LandedRecord("PutRecords", stream.stream_name, record["PartitionKey"], data)
            for record, data, entry in zip(records, decoded, entries, strict=True)
            if entry is None
        ]
        failed = sum(1 for entry in entries if entry is not None)
        return ActionResult({"FailedRecordCount": failed, "Records": response})

    def _over_budget(self, stream: Stream, record: dict[str, Any], size: int) -> str | None:
        """Return the record's shard id if the throughput model refuses it, else None."""
        if self.throughput is None:
            return None
        # moto's own routing (MD5 of the key within each shard's HashKeyRange), so the budget
        # charged is the one of the shard moto will store the record in.
        shard = stream.get_shard_for_key(
            cast(str, record.get("PartitionKey")), cast(str, record.get("ExplicitHashKey"))
        )
        if shard is None or self.throughput.try_write((stream.arn, shard.shard_id), size):
            return None
        return str(shard.shard_id)

    def _put_record(self, resp: KinesisResponse, original: Callable[..., Any]) -> Any:
        self._raise_pending()
        record = {
            "PartitionKey": resp._get_param("PartitionKey"),
            "ExplicitHashKey": resp._get_param("ExplicitHashKey"),
            "Data": resp._get_param("Data") or "",
        }
        data = _decode(record["Data"])
        size = record_size_bytes(data, record["PartitionKey"] or "")
        stream = resp.kinesis_backend.describe_stream(
            stream_arn=resp._get_param("StreamARN"), stream_name=resp._get_param("StreamName")
        )
        with self._lock:
            self.records_seen += 1
            shard_id = self._over_budget(stream, record, size) if size <= MAX_RECORD_BYTES else None
            if shard_id is not None:
                self.records_throttled += 1
        if shard_id is not None:
            raise _kinesis_error(
                "ProvisionedThroughputExceededException", _rate_exceeded(stream, shard_id)
            )
        result = original(resp)
        with self._lock:
            self.records_written += 1
        self._call.written = [
            LandedRecord("PutRecord", stream.stream_name, record["PartitionKey"], data)
        ]
        return result

    def _get_records(self, resp: KinesisResponse, original: Callable[..., Any]) -> Any:
        self._raise_pending()
        if self.throughput is None:
            return original(resp)
        try:
            stream_name, shard_id, _ = decompose_shard_iterator(resp._get_param("ShardIterator"))
        except (ValueError, binascii.Error, AttributeError):
            return original(resp)  # moto answers a malformed iterator its own way
        stream = resp.kinesis_backend.describe_stream(
            stream_arn=resp._get_param("StreamARN"), stream_name=stream_name
        )
        key = (stream.arn, shard_id)
        if not self.throughput.try_read(key):
            with self._lock:
                self.reads_throttled += 1
            raise _kinesis_error(
                "ProvisionedThroughputExceededException",
                f"Rate exceeded for Shard - {shard_id} in stream {stream.stream_name} "
                f"under account {stream.account_id}.",
            )
        result = original(resp)
        body = cast(dict[str, Any], result.result)
        returned = sum(
            record_size_bytes(record["Data"], record["PartitionKey"]) for record in body["Records"]
        )
        self.throughput.charge_read(key, returned)
        return result

    def _guarded(self, resp: KinesisResponse, original: Callable[..., Any]) -> Any:
        self._raise_pending()
        return original(resp)


_MISSING: Final = object()
_install_lock = threading.Lock()
_installed: list[FaultController] = []


@contextmanager
def faults_installed(plan: FaultPlan, clock: Clock | None = None) -> Iterator[FaultController]:
    """Patch moto's Kinesis responses with `plan` for the duration; restore them exactly after."""
    controller = FaultController(plan, clock)
    patches = _patches(controller)
    with _install_lock:
        if _installed:
            raise RuntimeError(
                "faults are already installed; exit the active faults_installed first"
            )
        _installed.append(controller)
        saved = {name: KinesisResponse.__dict__.get(name, _MISSING) for name in patches}
        for name, function in patches.items():
            setattr(KinesisResponse, name, function)
    try:
        yield controller
    finally:
        with _install_lock:
            for name, original in saved.items():
                if original is _MISSING:
                    delattr(KinesisResponse, name)
                else:
                    setattr(KinesisResponse, name, original)
            _installed.clear()


def _patches(controller: FaultController) -> dict[str, Callable[..., Any]]:
    """Return the shadowing functions by attribute name, each closing over the original."""
    handlers: dict[str, Callable[[KinesisResponse, Callable[..., Any]], Any]] = {
        "call_action": controller._call_action,
        "put_records": controller._put_records,
        "put_record": controller._put_record,
        "get_records": controller._get_records,
    }
    targets = controller.plan.targets
    operations = known_operations() if ALL_OPERATIONS in targets else targets
    for operation in operations:
        name = camelcase_to_underscores(operation)
        if name not in handlers and callable(getattr(KinesisResponse, name, None)):
            handlers[name] = controller._guarded
    return {
        name: _bind(handler, getattr(KinesisResponse, name)) for name, handler in handlers.items()
    }


def _bind(
    handler: Callable[[KinesisResponse, Callable[..., Any]], Any], original: Callable[..., Any]
) -> Callable[[KinesisResponse], Any]:
    def patched(self: KinesisResponse) -> Any:
        return handler(self, original)

    patched.__name__ = getattr(original, "__name__", "patched")
    return patched


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return data.encode("utf-8")  # not base64: charge its raw length, moto will reject it


def _kinesis_error(code: str, message: str, status: int = 400) -> JsonRESTError:
    error = JsonRESTError(error_type=code, message=message)
    error.code = status
    return error


def _rate_exceeded(stream: Stream, shard_id: str) -> str:
    return (
        f"Rate exceeded for shard {shard_id} in stream {stream.stream_name} "
        f"under account {stream.account_id}."
    )


def _error(kind: FaultKind, resp: KinesisResponse) -> JsonRESTError:
    """Return the whole-request error AWS answers for `kind`."""
    account = resp.current_account
    if kind is FaultKind.THROTTLE:
        name = _stream_name(resp) or "unknown"
        return _kinesis_error(
            "ProvisionedThroughputExceededException",
            f"Rate exceeded for stream {name} under account {account}.",
        )
    if kind is FaultKind.KMS_THROTTLE:
        return _kinesis_error(
            "KMSThrottlingException",
            "The request was denied due to request throttling. (Service: AWSKMS; "
            "Status Code: 400; Error Code: ThrottlingException)",
        )
    if kind is FaultKind.UNAVAILABLE:
        return _kinesis_error(
            "ServiceUnavailable", "The service is unavailable. Please try again.", 503
        )
    if kind is FaultKind.INTERNAL:
        return _kinesis_error("InternalFailure", "Internal service failure.", 500)
    if kind is FaultKind.EXPIRED_TOKEN:
        return _kinesis_error(
            "ExpiredTokenException", "The security token included in the request is expired"
        )
    raise ValueError(f"{kind}: not a whole-request error")


def _error_response(resp: KinesisResponse, error: JsonRESTError) -> TYPE_RESPONSE:
    """Serialize `error` the way moto's call_action serializes an operation's HTTPException."""
    headers: dict[str, Any] = dict(error.get_headers())
    headers["status"] = error.code
    status, out_headers, body = resp._transform_response(
        resp.response_headers, (error.description, headers)
    )
    out_headers, body = resp._enrich_response(out_headers, body)
    return status, out_headers, body


def _transport_error(resp: KinesisResponse, kind: FaultKind) -> Exception:
    """Return what to raise so the client sees a lost response instead of moto's answer."""
    if resp.is_werkzeug_request:
        # Server mode: werkzeug swallows ConnectionError as a dropped connection; shutting the
        # socket first makes the server close it rather than wait for the next keep-alive request.
        sock = resp.normalized_request.environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        return ConnectionResetError(f"harness fault {kind}: connection dropped")
    url = resp.normalized_request.url
    error: Exception
    if kind in (FaultKind.TIMEOUT, FaultKind.TIMEOUT_LANDED):
        error = ReadTimeoutError(endpoint_url=url)
    else:
        error = ConnectionClosedError(endpoint_url=url)
    return error


def _stream_name(resp: KinesisResponse) -> str | None:
    name = resp._get_param("StreamName")
    if name:
        return str(name)
    arn = resp._get_param("StreamARN")
    if arn:
        return str(arn).split("/", 1)[1]
    iterator = resp._get_param("ShardIterator")
    if iterator:
        try:
            return decompose_shard_iterator(iterator)[0]
        except (ValueError, binascii.Error):
            return None
    return None


def _delete_stream(resp: KinesisResponse) -> tuple[str, str]:
    name = _stream_name(resp)
    backend = resp.kinesis_backend
    stream = backend.streams.get(name) if name else None
    if stream is None:
        return name or "unknown", "skipped: stream not found"
    backend.delete_stream(stream_arn=None, stream_name=stream.stream_name)
    return stream.arn, "deleted"


def _assumed_role_arn(resp: KinesisResponse) -> str | None:
    """Return the role ARN behind the request's access key if it came from sts:AssumeRole."""
    access_key = resp.get_access_key()
    if not access_key:
        return None
    account = get_account_id_from(access_key)
    key = iam_backends[account][get_partition(resp.region)].access_keys.get(access_key)
    role_arn = getattr(key, "role_arn", None)
    return str(role_arn) if role_arn else None


def _detach_policies(role_arn: str | None) -> tuple[str, str]:
    if role_arn is None:
        return "unknown", "skipped: caller is not an assumed role"
    account = role_arn.split(":")[4]
    iam = iam_backends[account][role_arn.split(":")[1]]
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        role = iam.get_role(role_name)
    except NotFoundException:
        return role_arn, "skipped: role not found"
    removed = []
    for policy_arn in list(role.managed_policies):
        iam.detach_role_policy(policy_arn, role_name)
        removed.append(policy_arn)
    for policy_name in list(role.policies):
        iam.delete_role_policy(role_name, policy_name)
        removed.append(policy_name)
    if not removed:
        return role_arn, "skipped: no policies"
    return role_arn, "detached: " + ", ".join(removed)
