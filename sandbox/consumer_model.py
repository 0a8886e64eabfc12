"""The Lambda consumer at scale on a virtual clock: shards, invocations, writes in flight, DynamoDB.

A 1M-user first sync takes minutes of modelled time but would take an hour to run against moto,
so the bench runs this model instead; `sandbox.dynamodb_limits` supplies DynamoDB's figures and
its write buckets, `sync.lambda_handler` the handler's (writers in flight, the time reserve, the
throttle backoff), and the stack's config the mapping's. Time advances in steps of one DynamoDB
call (the latency): every call takes exactly one step.

What one invocation does, as the handler does it: per record, one idempotency call, then the
record's users written `writers` at a time (a throttled write keeps its writer while it backs off,
with full jitter), then one idempotency call; no record and no write is started with less than
the reserve left, and the unfinished records are retried by the next invocation (records already
applied cost one idempotency call). A batch holds at most `batch_size` records and 6 MB of event
payload (Lambda's synchronous invocation limit). Each shard runs `parallelization` lanes at once,
a record's lane chosen by its partition key (order per key kept). An invocation still running at
the function's timeout is a timeout: the whole batch is retried.

Not modelled: Lambda's polling delay and cold starts (both add seconds, not minutes), Kinesis
read limits (a 1M-user sync is ~60 MB: far under 2 MiB/s per shard for minutes), the
idempotency table's own throughput (a separate table; 2 writes per message).
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.dynamodb_limits import DynamoDBLimits, WriteThroughput

LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous invocation payload (FACTS.md)
EVENT_RECORD_OVERHEAD_BYTES = 600  # one record's envelope in Lambda's Kinesis event


@dataclass(frozen=True)
class Sizing:
    """The consumer's configuration the model runs."""

    shards: int
    parallelization: int
    batch_size: int
    timeout_seconds: float
    writers: int
    reserve_seconds: float
    write_shards: int  # partition keys per cohort (1: pk = cohort_id)
    throttle_base_seconds: float
    throttle_cap_seconds: float


@dataclass(frozen=True)
class Workload:
    """Messages of one cohort, each of `users` distinct users, `record_bytes` of data each."""

    messages: int
    users: int
    record_bytes: int


@dataclass
class ModelReport:
    """What the modelled run did."""

    seconds: float = 0.0
    users: int = 0
    invocations: int = 0
    timeouts: int = 0
    records_retried: int = 0
    throttled: int = 0
    consumed_units: int = 0
    partitions: int = 0

    @property
    def units_per_user(self) -> float:
        """Write units consumed per user update (conditional failures included)."""
        return self.consumed_units / self.users if self.users else 0.0


@dataclass
class _Record:
    first_user: int
    users: int
    bytes: int
    done: bool = False


@dataclass
class _Invocation:
    records: list[_Record]
    deadline: int
    index: int = 0
    phase: str = "begin"
    pending: deque[int] = field(default_factory=deque)
    retries: list[tuple[int, int, int]] = field(default_factory=list)  # (ready, user, attempt)
    busy: list[int] = field(default_factory=list)  # steps until which each writer is taken


@dataclass
class _Lane:
    queue: deque[_Record]
    invocation: _Invocation | None = None
    wait_until: int = 0


def run(sizing: Sizing, workload: Workload, limits: DynamoDBLimits, seed: int = 0) -> ModelReport:
    """Model the consumer applying the workload from an empty stream backlog; what it took."""
    step = limits.latency_seconds
    rng = random.Random(seed)
    throughput = WriteThroughput(limits)
    report = ModelReport(users=workload.messages * workload.users)
    lanes = [_Lane(deque()) for _ in range(sizing.shards * sizing.parallelization)]
    for m in range(workload.messages):
        shard, slot = m % sizing.shards, (m // sizing.shards) % sizing.parallelization
        record = _Record(m * workload.users, workload.users, workload.record_bytes)
        lanes[shard * sizing.parallelization + slot].queue.append(record)
    timeout_steps = math.floor(sizing.timeout_seconds / step)
    reserve_steps = math.ceil(sizing.reserve_seconds / step)
    keys = [f"cohort#{n}" for n in range(sizing.write_shards)]

    def admit(user: int, at: int) -> bool:
        key = keys[zlib.crc32(user.to_bytes(8, "little")) % sizing.write_shards]
        return throughput.admit(key, 1, at * step) is None

    def backoff_steps(attempt: int) -> int:
        cap = min(sizing.throttle_cap_seconds, sizing.throttle_base_seconds * 2**attempt)
        return math.ceil(rng.uniform(0, cap) / step)

    now = 0
    while any(lane.queue or lane.invocation for lane in lanes):
        for lane in lanes:
            if now < lane.wait_until:
                continue
            if lane.invocation is None:
                if not lane.queue:
                    continue
                lane.invocation = _Invocation(_take_batch(lane.queue, sizing), now + timeout_steps)
                report.invocations += 1
            inv = lane.invocation
            if now >= inv.deadline:  # Lambda ends it: the whole batch fails and is retried
                report.timeouts += 1
                lane.queue.extendleft(reversed(inv.records))
                lane.invocation = None
                continue
            _advance(lane, inv, now, sizing, reserve_steps, report, admit, backoff_steps)
        now += 1
    report.seconds = now * step
    report.throttled = throughput.throttled
    report.consumed_units = throughput.consumed_units
    report.partitions = throughput.partitions()
    return report


def _take_batch(queue: deque[_Record], sizing: Sizing) -> list[_Record]:
    batch: list[_Record] = []
    payload = 0
    while queue and len(batch) < sizing.batch_size:
        size = math.ceil(queue[0].bytes * 4 / 3) + EVENT_RECORD_OVERHEAD_BYTES
        if batch and payload + size > LAMBDA_PAYLOAD_BYTES:
            break
        payload += size
        batch.append(queue.popleft())
    return batch


def _advance(
    lane: _Lane,
    inv: _Invocation,
    now: int,
    sizing: Sizing,
    reserve_steps: int,
    report: ModelReport,
    admit: Callable[[int, int], bool],
    backoff_steps: Callable[[int], int],
) -> None:
    out_of_time = inv.deadline - now < reserve_steps
    if inv.phase == "begin":
        if inv.index == len(inv.records):
            lane.invocation = None
            return
        if out_of_time:  # not started: reported as batch item failures, retried next
            report.records_retried += len(inv.records) - inv.index
            lane.queue.extendleft(reversed(inv.records[inv.index :]))
            lane.invocation = None
            return
        record = inv.records[inv.index]
        lane.wait_until = now + 1  # the idempotency check
        if record.done:
            inv.index += 1
            return
        inv.pending = deque(range(record.first_user, record.first_user + record.users))
        inv.phase = "writes"
        return
    if inv.phase == "writes":
        inv.busy = [until for until in inv.busy if until > now]
        free = sizing.writers - len(inv.busy)
        ready = [r for r in inv.retries if r[0] <= now]
        inv.retries = [r for r in inv.retries if r[0] > now]
        attempts = [(user, attempt) for _, user, attempt in ready]
        free -= len(attempts)  # their writers were kept while backing off
        while free > 0 and inv.pending and not out_of_time:
            attempts.append((inv.pending.popleft(), 0))
            free -= 1
        for user, attempt in attempts:
            if admit(user, now):
                inv.busy.append(now + 1)
            elif out_of_time:  # the handler gives up a throttled write once time runs short
                inv.busy.append(now + 1)
                inv.pending.appendleft(user)
            else:
                wait = 1 + backoff_steps(attempt)
                inv.busy.append(now + wait)
                inv.retries.append((now + wait, user, attempt + 1))
        if inv.retries or any(until > now + 1 for until in inv.busy):
            return
        if inv.pending:  # out of time with users left: the record fails, retried next time
            if not inv.busy:
                report.records_retried += len(inv.records) - inv.index
                lane.queue.extendleft(reversed(inv.records[inv.index :]))
                lane.invocation = None
            return
        inv.phase = "end"
        lane.wait_until = now + 1  # the last writes complete
        return
    # "end": the idempotency record is completed
    inv.records[inv.index].done = True
    inv.index += 1
    inv.phase = "begin"
    lane.wait_until = now + 1
