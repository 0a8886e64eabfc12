"""How records are built and sent: one options object, shared by the push and the publisher.

Like s3transfer's `TransferConfig`, the options travel as one frozen object that checks itself
when it is made, so a new knob is added in one place, every caller (CLI, push, publisher,
benchmarks) gets it, and no option is checked anywhere else: the CLI only parses whole numbers
and the publisher reads `options.*`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from sync.errors import InputError
from sync.inputs import range_problem
from sync.limits import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_BACKOFF_CAP_SECONDS,
    DEFAULT_MAX_TRIES,
    DEFAULT_SENDERS,
    DEFAULT_USERS_PER_MESSAGE,
    MAX_PUT_RECORDS_COUNT,
    MAX_TRIES_RANGE,
    SENDERS_RANGE,
    SHARDS_RANGE,
    USERS_PER_MESSAGE_RANGE,
)
from sync.messages import PartitionKeyMode
from sync.pacing import PacingSettings

# Each whole-number option: the command-line flag that sets it and its documented range.
RANGES: Final = {
    "max_users_per_message": ("--max-users-per-message", USERS_PER_MESSAGE_RANGE),
    "senders": ("--senders", SENDERS_RANGE),
    "max_tries": ("--max-tries", MAX_TRIES_RANGE),
    "shards": ("--shards", SHARDS_RANGE),
}


class OptionsError(InputError, ValueError):
    """Delivery options outside their ranges (exit 2, as any refused input)."""

    fix = "use values within the ranges the message names (`cohort-sync push --help` lists them)"


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
            raise OptionsError("; ".join(problems))

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The options' names: what a command's parsed arguments may set."""
        return frozenset(f.name for f in fields(cls))

    def problems(self) -> list[str]:
        """Every option outside its range, each naming the value and the rule."""
        problems = []
        for name, (flag, bounds) in RANGES.items():
            value = getattr(self, name)
            problem = None if value is None else range_problem(flag, value, bounds)
            if problem is not None:
                problems.append(problem)
        if not 0 < self.backoff_base_seconds <= self.backoff_cap_seconds:
            problems.append(
                f"backoff {self.backoff_base_seconds}..{self.backoff_cap_seconds} s: "
                "need 0 < base <= cap"
            )
        if not 1 <= self.max_records_per_request <= MAX_PUT_RECORDS_COUNT:
            problems.append(
                f"max_records_per_request {self.max_records_per_request}: "
                f"must be 1..{MAX_PUT_RECORDS_COUNT} (Kinesis's PutRecords limit)"
            )
        return problems
