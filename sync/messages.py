"""Amplitude's cohort messages assembled straight from pre-serialized users into Kinesis records."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import Literal

from sync.contract import USER_ID, problems_of
from sync.errors import InputError, RecordLimitError
from sync.limits import DEFAULT_USERS_PER_MESSAGE, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES

PartitionKeyMode = Literal["message_id", "cohort_id"]
PARTITION_KEY_MODES: tuple[PartitionKeyMode, ...] = ("message_id", "cohort_id")

_FOOTER = b"]}"
# Users are read ahead in blocks so sizing and joining run in C, not per user in Python.
_READ_AHEAD_USERS = 65_536


@dataclass(frozen=True)
class OutgoingRecord:
    """One Kinesis record: one message's JSON document and the key that picks its shard."""

    message_id: str
    partition_key: str
    data: bytes
    user_count: int
    in_cohort: bool

    @property
    def size_bytes(self) -> int:
        """What the record counts against Kinesis limits: data plus UTF-8 partition key."""
        return len(self.data) + len(self.partition_key.encode())


def message_id(sync_id: str, sequence: int) -> str:
    """The message id Amplitude documents: `<sync id>:<sequence>`."""
    return f"{sync_id}:{sequence}"


def _json(value: str | bool) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _check_inputs(
    *,
    cohort_id: str,
    cohort_name: str,
    in_cohort: bool,
    computed_time: str,
    sync_id: str,
    first_sequence: int,
    max_users_per_message: int,
    max_record_bytes: int,
    partition_key: str,
) -> None:
    header = {
        "cohort_name": cohort_name,
        "cohort_id": cohort_id,
        "in_cohort": in_cohort,
        "computed_time": computed_time,
        "message_id": message_id(sync_id, first_sequence),
        "users": [],
    }
    problems = problems_of(header)
    if not sync_id:
        problems.append("sync_id '': must be a non-empty string")
    if first_sequence < 0:
        problems.append(f"first_sequence {first_sequence}: must be >= 0")
    if max_users_per_message < 1:
        problems.append(f"max_users_per_message {max_users_per_message}: must be >= 1")
    if max_record_bytes < 1:
        problems.append(f"max_record_bytes {max_record_bytes}: must be >= 1")
    if partition_key not in PARTITION_KEY_MODES:
        problems.append(f"partition_key {partition_key!r}: must be one of {PARTITION_KEY_MODES}")
    elif partition_key == "cohort_id" and len(cohort_id) > MAX_PARTITION_KEY_CHARS:
        problems.append(
            f"cohort_id of {len(cohort_id)} characters: a partition key holds at most "
            f"{MAX_PARTITION_KEY_CHARS}"
        )
    if problems:
        raise InputError("cannot build messages: " + "; ".join(problems))


def _too_big(user: bytes, size: int, limit: int) -> RecordLimitError:
    # Only on this error path is a user parsed: its id is what the operator can look up.
    try:
        user_id = json.loads(user).get(USER_ID, "?")
    except (ValueError, AttributeError):
        user_id = "?"
    return RecordLimitError(
        f"user {user_id!r}: a message holding only this user is {size} bytes "
        f"(data plus partition key); a Kinesis record holds at most {limit}"
    )


def build_messages(
    *,
    cohort_id: str,
    cohort_name: str,
    in_cohort: bool,
    computed_time: str,
    sync_id: str,
    first_sequence: int,
    users: Iterable[str],
    max_users_per_message: int = DEFAULT_USERS_PER_MESSAGE,
    max_record_bytes: int = MAX_RECORD_BYTES,
    partition_key: PartitionKeyMode = "message_id",
) -> Iterator[OutgoingRecord]:
    """Pack pre-serialized user objects, in order, into as few records as the limits allow."""
    _check_inputs(
        cohort_id=cohort_id,
        cohort_name=cohort_name,
        in_cohort=in_cohort,
        computed_time=computed_time,
        sync_id=sync_id,
        first_sequence=first_sequence,
        max_users_per_message=max_users_per_message,
        max_record_bytes=max_record_bytes,
        partition_key=partition_key,
    )
    return _assemble(
        prefix=b"".join(
            (
                b'{"cohort_name":',
                _json(cohort_name),
                b',"cohort_id":',
                _json(cohort_id),
                b',"in_cohort":',
                b"true" if in_cohort else b"false",
                b',"computed_time":',
                _json(computed_time),
                b',"message_id":',
            )
        ),
        cohort_id=cohort_id,
        in_cohort=in_cohort,
        sync_id=sync_id,
        sequence=first_sequence,
        users=iter(users),
        max_users=max_users_per_message,
        limit=max_record_bytes,
        key_by_cohort=partition_key == "cohort_id",
    )


def _assemble(
    *,
    prefix: bytes,
    cohort_id: str,
    in_cohort: bool,
    sync_id: str,
    sequence: int,
    users: Iterator[str],
    max_users: int,
    limit: int,
    key_by_cohort: bool,
) -> Iterator[OutgoingRecord]:
    pending: list[bytes] = []  # encoded users read but not yet placed, from `start` on
    # cum[i] = sum(len(u) + 1 for u in pending[:i]): one bisect finds how many users fit.
    cum: list[int] = [0]
    start = 0
    exhausted = False
    while True:
        mid = message_id(sync_id, sequence)
        key = cohort_id if key_by_cohort else mid
        if len(key) > MAX_PARTITION_KEY_CHARS:
            raise RecordLimitError(
                f"partition key {key[:40]!r}... of {len(key)} characters: "
                f"at most {MAX_PARTITION_KEY_CHARS} allowed; use a shorter sync_id"
            )
        head = b"".join((prefix, _json(mid), b',"users":['))
        fixed = len(head) + len(_FOOTER) + len(key.encode())
        # n users cost cum[start + n] - cum[start] - 1 bytes (n - 1 commas).
        budget = limit - fixed + 1 + cum[start]
        end = max(start, min(bisect_right(cum, budget, lo=start) - 1, start + max_users))
        if end == len(pending) and end - start < max_users and not exhausted:
            # More users might still fit: read ahead (doubling, so the work stays linear),
            # dropping placed users so memory stays bounded by about one record's worth.
            want = max(_READ_AHEAD_USERS, len(pending) - start)
            block = list(map(str.encode, islice(users, want)))
            exhausted = len(block) < want
            base = cum[start]
            pending = pending[start:]
            pending.extend(block)
            cum = [c - base for c in cum[start:]]
            cum.extend(islice(accumulate((len(u) + 1 for u in block), initial=cum[-1]), 1, None))
            start = 0
            continue
        if end == start:
            if start == len(pending):
                return
            raise _too_big(pending[start], fixed + len(pending[start]), limit)
        data = b"".join((head, b",".join(pending[start:end]), _FOOTER))
        yield OutgoingRecord(
            message_id=mid,
            partition_key=key,
            data=data,
            user_count=end - start,
            in_cohort=in_cohort,
        )
        start = end
        sequence += 1
