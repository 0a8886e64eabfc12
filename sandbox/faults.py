"""Bad days for moto's Kinesis, injected: a FaultPlan (`sandbox.fault_plan`, the grammar) applied.

moto never throttles, never fails a record and never loses a response, so a green suite says nothing
about what a sender does when Kinesis pushes back. While `faults_installed(plan)` is active,
these attributes of `moto.kinesis.responses.KinesisResponse` are shadowed through a
`sandbox.patching.PatchSet` (which restores the class exactly on exit; nothing else in moto is
touched):

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
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

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

from sandbox.fault_plan import (
    ACTIONS,
    ALL_OPERATIONS,
    CALL_FAULTS,
    LOST_AFTER_LANDING,
    LOST_BEFORE_LANDING,
    FaultKind,
    FaultPlan,
    known_operations,
)
from sandbox.patching import PatchSet
from sandbox.throughput import Clock, ScaledClock, ThroughputModel, record_size_bytes
from sync.limits import MAX_PUT_RECORDS_BYTES, MAX_PUT_RECORDS_COUNT, MAX_RECORD_BYTES


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


_install_lock = threading.Lock()
_installed: list[FaultController] = []


@contextmanager
def faults_installed(plan: FaultPlan, clock: Clock | None = None) -> Iterator[FaultController]:
    """Patch moto's Kinesis responses with `plan` for the duration; restore them exactly after."""
    controller = FaultController(plan, clock)
    patches = PatchSet(
        [(KinesisResponse, name, function) for name, function in _patches(controller).items()]
    )
    with _install_lock:
        if _installed:
            raise RuntimeError(
                "faults are already installed; exit the active faults_installed first"
            )
        _installed.append(controller)
        patches.install()
    try:
        yield controller
    finally:
        with _install_lock:
            patches.uninstall()
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
