"""How records are built and sent: one options object, shared by the push and the publisher.

Like s3transfer's `TransferConfig`, the options travel as one frozen object, so a new knob is
added in one place and every caller (CLI, push, publisher, benchmarks) gets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.limits import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_BACKOFF_CAP_SECONDS,
    DEFAULT_MAX_TRIES,
    DEFAULT_SENDERS,
    DEFAULT_USERS_PER_MESSAGE,
    MAX_PUT_RECORDS_COUNT,
)
from sync.messages import PartitionKeyMode
from sync.pacing import PacingSettings


@dataclass(frozen=True)
class DeliveryOptions:
    """How records are built and sent; defaults follow Amplitude's partner cohort sync."""

    max_users_per_message: int = DEFAULT_USERS_PER_MESSAGE
    partition_key: PartitionKeyMode = "message_id"
    senders: int = DEFAULT_SENDERS
    max_tries: int = DEFAULT_MAX_TRIES
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_cap_seconds: float = DEFAULT_BACKOFF_CAP_SECONDS
    shards: int | None = None  # the stream's shard count, if known: seeds the publisher's pacing
    max_records_per_request: int = MAX_PUT_RECORDS_COUNT
    # None sends unpaced (tests and benchmarks that measure the transport alone).
    pacing: PacingSettings | None = PacingSettings()  # noqa: RUF009 - frozen, shared safely

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """Every option outside its range, each naming the value and the rule."""
        problems = []
        if self.max_users_per_message < 1:
            problems.append(f"max_users_per_message {self.max_users_per_message}: must be >= 1")
        if self.senders < 1:
            problems.append(f"senders {self.senders}: must be >= 1")
        if self.max_tries < 1:
            problems.append(f"max_tries {self.max_tries}: must be >= 1")
        if not 0 < self.backoff_base_seconds <= self.backoff_cap_seconds:
            problems.append(
                f"backoff {self.backoff_base_seconds}..{self.backoff_cap_seconds} s: "
                "need 0 < base <= cap"
            )
        if self.shards is not None and self.shards < 1:
            problems.append(f"shards {self.shards}: must be >= 1")
        if not 1 <= self.max_records_per_request <= MAX_PUT_RECORDS_COUNT:
            problems.append(
                f"max_records_per_request {self.max_records_per_request}: "
                f"must be 1..{MAX_PUT_RECORDS_COUNT} (Kinesis's PutRecords limit)"
            )
        return problems
