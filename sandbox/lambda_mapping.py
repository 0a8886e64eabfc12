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

Not modelled: the batching window (a batch is what one GetRecords returns now), a
ParallelizationFactor above 1 (a shard's batches run one at a time, which keeps the
per-partition-key order the factor preserves), concurrency limits and timeouts, resharding
(shards are read in ListShards order), enhanced fan-out, filters and tumbling windows. The code
run is this checkout's, not the archive's: the archive holds the same ``sync/`` modules.
Works with an in-process world (or a server in this process): SERVICE_CALLERS is process-local.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3

from provisioning import constants as c
from sandbox import iam_gaps
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
        )


@dataclass
class MappingReport:
    """What one poll did."""

    invocations: int = 0
    records_read: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    bisections: int = 0
    retries: int = 0
    sent_to_destination: int = 0  # on-failure messages
    records_discarded: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        """One line per figure, for the demo."""
        return (
            f"  {self.records_read:,} records read, {self.invocations:,} invocations "
            f"({self.function_errors} function errors, {self.partial_failures} partial failures, "
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

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        self.function_name = configuration["FunctionName"]
        self.function_version = configuration.get("Version", "$LATEST")
        self.invoked_function_arn = configuration["FunctionArn"]
        self.memory_limit_in_mb = int(configuration.get("MemorySize", 128))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + int(configuration.get("Timeout", 3))

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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
    ) -> None:
        self._world = world
        self._clock = clock
        self._invoke = invoke
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
        handler = self._cold_start()
        shards = self._kinesis.list_shards(StreamARN=self.mapping.stream_arn)["Shards"]
        for shard in shards:
            for records in self._read(shard["ShardId"]):
                report.records_read += len(records)
                self._process(shard["ShardId"], records, handler, report)
                self._checkpoints[shard["ShardId"]] = records[-1]["SequenceNumber"]
        report.seconds = time.perf_counter() - started
        return report

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
                Limit=self.mapping.batch_size,
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
                report.bisections += 1
                work.appendleft(_Batch(batch.records[half:], batch.attempts))
                work.appendleft(_Batch(batch.records[:half], batch.attempts))
                continue
            remaining = _Batch(batch.records[outcome.failed_from :], batch.attempts + 1)
            if 0 <= self.mapping.max_retries < remaining.attempts:
                self._give_up(shard_id, remaining, RETRY_EXHAUSTED, outcome, report)
                continue
            report.retries += 1
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
        report.invocations += 1
        with self._environment():
            try:
                response = self._invoke(handler, event, LambdaContext(self.function))
            except Exception:  # noqa: BLE001 - any exception is a function error to Lambda
                report.function_errors += 1
                return _Outcome(raised=True, failed_from=0)
        if not self.mapping.report_batch_item_failures:
            return _Outcome(raised=False, failed_from=None)
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return _Outcome(raised=False, failed_from=None)
        report.partial_failures += 1
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
        report.records_discarded += len(batch.records)
        message = self.failure_message(shard_id, batch.records, condition, batch.attempts, outcome)
        self.destination_messages.append(message)
        if self.mapping.on_failure_arn is None:
            return
        report.sent_to_destination += 1
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
