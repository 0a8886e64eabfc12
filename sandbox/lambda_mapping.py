"""A Kinesis event source mapping that does what Lambda's does, run in-process against moto.

What it replaces (moto 5.2.5), and why:

1. moto never polls a stream for a mapping; it invokes the function in Docker inside each put,
   which ``sandbox.moto_fixes`` turns off (no Docker here).
2. Lambda's poller, which moto lacks: ``MappingSimulator.poll`` reads the mapping's and the
   function's configuration over the world's endpoint as the customer's admin
   (GetEventSourceMapping, GetFunctionConfiguration; ``sandbox.moto_fixes`` makes moto's signature
   check pass them under IAM enforcement), and then, like the Lambda service,
   - assumes the function's execution role as ``lambda.amazonaws.com`` (an IAM user of
     ``LAMBDA_SERVICE_ACCOUNT_ID`` listed in ``sandbox.iam_gaps.SERVICE_CALLERS``, so the role's
     trust policy decides) and does everything below with that role's credentials, so its
     least privilege is exercised;
   - reads each shard from TRIM_HORIZON (then from its checkpoint) with ListShards,
     GetShardIterator and GetRecords (Limit = BatchSize);
   - builds each event in Lambda's Kinesis event shape (the fields of AWS's sample events);
   - invokes the handler the function names, in-process, with the function's environment
     variables plus the Lambda runtime's (region, function name, the role session's keys) and
     a cold start per poll (``boto3.DEFAULT_SESSION`` cleared, the handler module's ``reset()``);
   - honours ReportBatchItemFailures (a retry resumes at the lowest reported sequence number; an
     identifier not in the batch fails the whole batch), BisectBatchOnFunctionError (a batch
     whose invocation raised splits in two; splits do not use up retries), MaximumRetryAttempts
     and MaximumRecordAgeInSeconds (expired records are discarded before an invocation);
   - sends what it gives up on to the OnFailure destination (SQS) in AWS's documented shape:
     ``requestContext`` (condition RetryAttemptsExhausted or RecordAgeExceeded),
     ``responseContext`` (when the function was invoked), ``version``, ``timestamp`` and
     ``KinesisBatchInfo`` (shard, first and last sequence numbers, arrival times, batch size).

   - enforces the function's timeout: an invocation that runs past `Timeout` seconds (measured
     on the simulator's `monotonic` clock, injectable) is a function error as a whole, whatever
     it returned (Lambda kills it), counted in `timeouts`, bisected and retried like any error;
   - runs every shard at once, and within a shard `ParallelizationFactor` lanes at once, a
     record's lane chosen by its partition key's hash, so order per partition key is kept (as
     Lambda does); each lane's batches run one after another;
   - caps a batch's event payload at Lambda's 6 MB for a synchronous invocation
     (LAMBDA_PAYLOAD_BYTES): large records shrink the batch below BatchSize.
   The handler's DynamoDB can be given AWS's limits (latency, partition and table throughput,
   item sizes) with ``dynamodb_limits`` (``sandbox.dynamodb_limits``).

Not modelled: the batching window (a batch is what one GetRecords returns now), account and
reserved concurrency limits, resharding (shards are read as ListShards lists them), enhanced
fan-out, filters and tumbling windows. The code
run is this checkout's, not the archive's: the archive holds the same ``sync/`` modules.
Works with an in-process world (or a server in this process): SERVICE_CALLERS is process-local.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3

from provisioning import constants as c
from sandbox import iam_gaps
from sandbox.dynamodb_limits import LimitedTable
from sandbox.errors import SandboxError
from sandbox.world import Credentials, MotoWorld

LAMBDA_SERVICE_ACCOUNT_ID = "000000000042"  # the sandbox's stand-in account for the service
LAMBDA_SERVICE_USER = c.LAMBDA_SERVICE_PRINCIPAL
_SERVICE_POLICY = {
    "Version": c.POLICY_VERSION,
    "Statement": [
        {"Effect": "Allow", "Action": c.ASSUME_ROLE_ACTION, "Resource": "arn:aws:iam::*:role/*"}
    ],
}
RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
# Lambda's synchronous invocation payload limit (FACTS.md "Limits the consumer lives with").
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
GET_RECORDS_MAX = 10_000
# Environment keys the caller's process may hold that a Lambda sandbox would not.
_FOREIGN_ENV_PREFIXES = ("AWS_", "POWERTOOLS_")

Event = dict[str, Any]
Invoke = Callable[[Callable[[Event, Any], Any], Event, Any], Any]


@dataclass(frozen=True)
class MappingConfig:
    """What the simulator reads from GetEventSourceMapping."""

    uuid: str
    stream_arn: str
    function_arn: str
    batch_size: int
    max_retries: int  # -1: until the record expires
    max_record_age_seconds: int  # -1: until the record expires
    bisect: bool
    report_batch_item_failures: bool
    on_failure_arn: str | None
    starting_position: str = c.STARTING_POSITION  # TRIM_HORIZON or LATEST
    parallelization_factor: int = 1

    @classmethod
    def from_api(cls, mapping: Mapping[str, Any]) -> MappingConfig:
        """From a GetEventSourceMapping response."""
        return cls(
            uuid=mapping["UUID"],
            stream_arn=mapping["EventSourceArn"],
            function_arn=mapping["FunctionArn"],
            batch_size=int(mapping["BatchSize"]),
            max_retries=int(mapping.get("MaximumRetryAttempts", -1)),
            max_record_age_seconds=int(mapping.get("MaximumRecordAgeInSeconds", -1)),
            bisect=bool(mapping.get("BisectBatchOnFunctionError")),
            report_batch_item_failures=c.REPORT_BATCH_ITEM_FAILURES
            in (mapping.get("FunctionResponseTypes") or []),
            on_failure_arn=((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination"
            ),
            starting_position=mapping.get("StartingPosition") or c.STARTING_POSITION,
            parallelization_factor=int(mapping.get("ParallelizationFactor") or 1),
        )


@dataclass
class MappingReport:
    """What one poll did."""

    invocations: int = 0
    records_read: int = 0
    function_errors: int = 0
    timeouts: int = 0  # function errors that were the function running past its timeout
    partial_failures: int = 0
    bisections: int = 0
    retries: int = 0
    sent_to_destination: int = 0  # on-failure messages
    records_discarded: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to the counts; lanes and shards run at once."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def render(self) -> str:
        """One line per figure, for the demo."""
        return (
            f"  {self.records_read:,} records read, {self.invocations:,} invocations "
            f"({self.function_errors} function errors of which {self.timeouts} timeouts, "
            f"{self.partial_failures} partial failures, "
            f"{self.bisections} bisections, {self.retries} retries); "
            f"{self.records_discarded} records given up on in {self.sent_to_destination} "
            f"on-failure message(s) ({self.seconds:.2f} s)"
        )


@dataclass
class _Batch:
    records: list[dict[str, Any]]  # GetRecords records
    attempts: int = 0  # invocations so far that failed it


@dataclass(frozen=True)
class _Outcome:
    raised: bool
    failed_from: int | None  # index of the first record to retry, None when all succeeded


class LambdaContext:
    """The part of Lambda's context object handlers read."""

    def __init__(
        self, configuration: Mapping[str, Any], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.function_name = configuration["FunctionName"]
        self.function_version = configuration.get("Version", "$LATEST")
        self.invoked_function_arn = configuration["FunctionArn"]
        self.memory_limit_in_mb = int(configuration.get("MemorySize", 128))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._monotonic = monotonic
        self.started = monotonic()
        self.deadline = self.started + int(configuration.get("Timeout", 3))

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self.deadline - self._monotonic()) * 1000))

    def timed_out(self) -> bool:
        """Whether the function's timeout has passed (Lambda would have killed it)."""
        return self._monotonic() > self.deadline


def lambda_service(world: MotoWorld) -> Credentials:
    """The sandbox's Lambda service principal in this world (created once per world)."""
    found = _SERVICES.get(world)
    if found is None:
        found = world.new_principal(LAMBDA_SERVICE_ACCOUNT_ID, LAMBDA_SERVICE_USER, _SERVICE_POLICY)
        arn = f"arn:aws:iam::{LAMBDA_SERVICE_ACCOUNT_ID}:user/{LAMBDA_SERVICE_USER}"
        iam_gaps.SERVICE_CALLERS[arn] = c.LAMBDA_SERVICE_PRINCIPAL
        _SERVICES[world] = found
    return found


_SERVICES: dict[MotoWorld, Credentials] = {}


def _default_invoke(handler: Callable[[Event, Any], Any], event: Event, context: Any) -> Any:
    return handler(event, context)


class MappingSimulator:
    """Polls one Kinesis event source mapping's stream and invokes its function, as Lambda does."""

    def __init__(
        self,
        world: MotoWorld,
        mapping_uuid: str,
        *,
        clock: Callable[[], float] = time.time,
        invoke: Invoke = _default_invoke,
        monotonic: Callable[[], float] = time.monotonic,
        dynamodb_limits: LimitedTable | None = None,
    ) -> None:
        self._world = world
        self._clock = clock
        self._invoke = invoke
        self._monotonic = monotonic
        self.dynamodb_limits = dynamodb_limits
        lambda_ = world.client("lambda", world.customer_admin)
        try:
            found = lambda_.get_event_source_mapping(UUID=mapping_uuid)
        except lambda_.exceptions.ResourceNotFoundException as exc:
            raise SandboxError(
                f"event source mapping {mapping_uuid!r}: not found in the world's Lambda"
            ) from exc
        self.mapping = MappingConfig.from_api(found)
        self.function = lambda_.get_function_configuration(FunctionName=self.mapping.function_arn)
        self.role_credentials = self._assume_function_role()
        self._kinesis = world.client("kinesis", self.role_credentials)
        self._sqs = world.client("sqs", self.role_credentials)
        self._checkpoints: dict[str, str] = {}  # shard id -> last sequence number done with
        self.destination_messages: list[dict[str, Any]] = []
        # Shards give up at once: the list keeps the queue's order.
        self._destination_lock = threading.Lock()

    def _assume_function_role(self) -> Credentials:
        sts = self._world.client("sts", lambda_service(self._world))
        response = sts.assume_role(
            RoleArn=self.function["Role"], RoleSessionName=self.function["FunctionName"]
        )
        return Credentials.from_assume_role(response)

    # --- reading ------------------------------------------------------------------------

    def poll(self) -> MappingReport:
        """Read every shard to its tip, invoking the function for each batch; what happened."""
        started = time.perf_counter()
        report = MappingReport()
        shards = self._kinesis.list_shards(StreamARN=self.mapping.stream_arn)["Shards"]
        with ExitStack() as stack:
            stack.enter_context(self._environment())
            if self.dynamodb_limits is not None:
                stack.enter_context(self.dynamodb_limits.on_new_clients())
            handler = self._cold_start()
            with ThreadPoolExecutor(max(1, len(shards))) as pool:
                done = [
                    pool.submit(self._poll_shard, s["ShardId"], handler, report) for s in shards
                ]
                for future in done:
                    future.result()
        report.seconds = time.perf_counter() - started
        return report

    def _poll_shard(
        self, shard_id: str, handler: Callable[[Event, Any], Any], report: MappingReport
    ) -> None:
        factor = self.mapping.parallelization_factor
        with ThreadPoolExecutor(factor) as lanes:
            for records in self._read(shard_id):
                report.add(records_read=len(records))
                # A partition key's records share a lane, in order: Lambda's per-key ordering.
                by_lane: list[list[dict[str, Any]]] = [[] for _ in range(factor)]
                for record in records:
                    by_lane[zlib.crc32(record["PartitionKey"].encode()) % factor].append(record)
                runs = [
                    lanes.submit(self._process_lane, shard_id, lane, handler, report)
                    for lane in by_lane
                    if lane
                ]
                for run in runs:
                    run.result()
                self._checkpoints[shard_id] = records[-1]["SequenceNumber"]

    def _process_lane(
        self,
        shard_id: str,
        records: list[dict[str, Any]],
        handler: Callable[[Event, Any], Any],
        report: MappingReport,
    ) -> None:
        size = self.mapping.batch_size
        for start in range(0, len(records), size):
            for batch in self._payload_batches(shard_id, records[start : start + size]):
                self._process(shard_id, batch, handler, report)

    def _payload_batches(
        self, shard_id: str, records: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """The records in order, in batches whose event stays within LAMBDA_PAYLOAD_BYTES."""
        batch: list[dict[str, Any]] = []
        payload = len(json.dumps({"Records": []}))
        for record in records:
            size = len(json.dumps(self.event(shard_id, [record])["Records"][0])) + 2
            if batch and payload + size > LAMBDA_PAYLOAD_BYTES:
                yield batch
                batch, payload = [], len(json.dumps({"Records": []}))
            batch.append(record)
            payload += size
        if batch:
            yield batch

    def _read(self, shard_id: str) -> Iterator[list[dict[str, Any]]]:
        request: dict[str, Any] = {"StreamARN": self.mapping.stream_arn, "ShardId": shard_id}
        if shard_id in self._checkpoints:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = self._checkpoints[shard_id]
        else:
            request["ShardIteratorType"] = self.mapping.starting_position
        iterator = self._kinesis.get_shard_iterator(**request)["ShardIterator"]
        while iterator:
            response = self._kinesis.get_records(
                ShardIterator=iterator,
                # Enough for a batch in every lane (GetRecords returns at most 10,000).
                Limit=min(
                    GET_RECORDS_MAX,
                    self.mapping.batch_size * self.mapping.parallelization_factor,
                ),
                StreamARN=self.mapping.stream_arn,
            )
            if response["Records"]:
                yield response["Records"]
            if not response["Records"] and not response.get("MillisBehindLatest"):
                return
            iterator = response.get("NextShardIterator")

    # --- invoking -----------------------------------------------------------------------

    def _process(
        self,
        shard_id: str,
        records: list[dict[str, Any]],
        handler: Callable[[Event, Any], Any],
        report: MappingReport,
    ) -> None:
        work: deque[_Batch] = deque([_Batch(records)])
        while work:
            batch = work.popleft()
            batch.records = self._drop_expired(shard_id, batch, report)
            if not batch.records:
                continue
            outcome = self._call(handler, shard_id, batch.records, report)
            if outcome.failed_from is None:
                continue
            if outcome.raised and self.mapping.bisect and len(batch.records) > 1:
                half = len(batch.records) // 2
                report.add(bisections=1)
                work.appendleft(_Batch(batch.records[half:], batch.attempts))
                work.appendleft(_Batch(batch.records[:half], batch.attempts))
                continue
            remaining = _Batch(batch.records[outcome.failed_from :], batch.attempts + 1)
            if 0 <= self.mapping.max_retries < remaining.attempts:
                self._give_up(shard_id, remaining, RETRY_EXHAUSTED, outcome, report)
                continue
            report.add(retries=1)
            work.appendleft(remaining)

    def _drop_expired(
        self, shard_id: str, batch: _Batch, report: MappingReport
    ) -> list[dict[str, Any]]:
        limit = self.mapping.max_record_age_seconds
        if limit < 0:
            return batch.records
        now = self._clock()
        expired = [r for r in batch.records if now - _arrival(r) > limit]
        if expired:
            self._give_up(
                shard_id, _Batch(expired, batch.attempts), RECORD_AGE_EXCEEDED, None, report
            )
        return [r for r in batch.records if now - _arrival(r) <= limit]

    def _call(
        self,
        handler: Callable[[Event, Any], Any],
        shard_id: str,
        records: list[dict[str, Any]],
        report: MappingReport,
    ) -> _Outcome:
        event = self.event(shard_id, records)
        report.add(invocations=1)
        context = LambdaContext(self.function, self._monotonic)
        try:
            response = self._invoke(handler, event, context)
        except Exception:  # noqa: BLE001 - any exception is a function error to Lambda
            report.add(function_errors=1, timeouts=int(context.timed_out()))
            return _Outcome(raised=True, failed_from=0)
        if context.timed_out():  # Lambda killed it: its response never counted
            report.add(function_errors=1, timeouts=1)
            return _Outcome(raised=True, failed_from=0)
        if not self.mapping.report_batch_item_failures:
            return _Outcome(raised=False, failed_from=None)
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return _Outcome(raised=False, failed_from=None)
        report.add(partial_failures=1)
        sequence = [r["SequenceNumber"] for r in records]
        identifiers = [f.get("itemIdentifier") for f in failures]
        if any(i not in sequence for i in identifiers):
            return _Outcome(raised=False, failed_from=0)  # AWS: an unknown identifier fails all
        return _Outcome(raised=False, failed_from=min(sequence.index(i) for i in identifiers))

    def event(self, shard_id: str, records: Sequence[Mapping[str, Any]]) -> Event:
        """Lambda's Kinesis event for these GetRecords records of one shard."""
        return {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r["PartitionKey"],
                        "sequenceNumber": r["SequenceNumber"],
                        "data": base64.b64encode(r["Data"]).decode(),
                        "approximateArrivalTimestamp": round(_arrival(r), 3),
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{shard_id}:{r['SequenceNumber']}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": self.function["Role"],
                    "awsRegion": self._world.region,
                    "eventSourceARN": self.mapping.stream_arn,
                }
                for r in records
            ]
        }

    def _cold_start(self) -> Callable[[Event, Any], Any]:
        module_name, _, attribute = self.function["Handler"].rpartition(".")
        module = importlib.import_module(module_name)
        reset = getattr(module, "reset", None)
        if callable(reset):
            reset()
        boto3.DEFAULT_SESSION = None  # a new sandbox: no client survives from another one
        handler: Callable[[Event, Any], Any] = getattr(module, attribute)
        return handler

    @contextmanager
    def _environment(self) -> Iterator[None]:
        env = {
            **dict((self.function.get("Environment") or {}).get("Variables") or {}),
            "AWS_ACCESS_KEY_ID": self.role_credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.role_credentials.secret_access_key,
            "AWS_SESSION_TOKEN": self.role_credentials.session_token or "",
            "AWS_REGION": self._world.region,
            "AWS_DEFAULT_REGION": self._world.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.function["FunctionName"],
            "AWS_LAMBDA_FUNCTION_VERSION": self.function.get("Version", "$LATEST"),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.function.get("MemorySize", 128)),
            "_HANDLER": self.function["Handler"],
        }
        if self._world.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self._world.endpoint_url
        foreign = [k for k in os.environ if k.startswith(_FOREIGN_ENV_PREFIXES) and k not in env]
        with mock.patch.dict(os.environ, env):
            for key in foreign:
                del os.environ[key]
            yield

    # --- giving up ----------------------------------------------------------------------

    def _give_up(
        self,
        shard_id: str,
        batch: _Batch,
        condition: str,
        outcome: _Outcome | None,
        report: MappingReport,
    ) -> None:
        report.add(records_discarded=len(batch.records))
        message = self.failure_message(shard_id, batch.records, condition, batch.attempts, outcome)
        with self._destination_lock:
            self.destination_messages.append(message)
            if self.mapping.on_failure_arn is None:
                return
            report.add(sent_to_destination=1)
            self._sqs.send_message(
                QueueUrl=_queue_url(self.mapping.on_failure_arn), MessageBody=json.dumps(message)
            )

    def failure_message(
        self,
        shard_id: str,
        records: Sequence[Mapping[str, Any]],
        condition: str,
        invocations: int,
        outcome: _Outcome | None,
    ) -> dict[str, Any]:
        """The OnFailure destination's message, in the shape AWS documents for Kinesis."""
        message: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function["FunctionArn"],
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "version": "1.0",
            "timestamp": _iso(self._clock()),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(_arrival(records[0])),
                "approximateArrivalOfLastRecord": _iso(_arrival(records[-1])),
                "batchSize": len(records),
                "streamArn": self.mapping.stream_arn,
            },
        }
        if outcome is not None:
            response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
            if outcome.raised:
                response["functionError"] = "Unhandled"
            message["responseContext"] = response
        return message


def _arrival(record: Mapping[str, Any]) -> float:
    value = record["ApproximateArrivalTimestamp"]
    return float(value.timestamp()) if isinstance(value, datetime) else float(value)


def _iso(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _queue_url(queue_arn: str) -> str:
    _, _, _, region, account, name = queue_arn.split(":", 5)
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"
