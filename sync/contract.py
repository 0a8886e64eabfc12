"""Amplitude's Kinesis cohort payload: one JSON object per record, validated both ways.

Rules beyond the field types, shared by the CLI consumer (through `sync.raw_records`, which
defers to this module) and the Lambda consumer:
- the data is UTF-8 with no byte-order mark (Amplitude sends UTF-8; a BOM or UTF-16/32 is refused
  rather than guessed);
- strict JSON: NaN, Infinity and -Infinity are refused anywhere in the record (they are not JSON
  and could not be stored or read back as JSON);
- `computed_time` is 1 to 12 ASCII digits (`\\d` would also match other scripts' digits);
- a user listed twice in one message: the first listing counts, later ones are ignored (both
  listings carry the message's version, so no order between them exists; `first_listings` is the
  rule, the CLI consumer's upsert applies it in SQL: the first of equal versions wins).
A record's problems are summarised (their count and the first `SHOWN_PROBLEMS`), and each value is
shown at most `SHOWN_VALUE_CHARS` long, so a reason stays small whatever the record holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.errors import ContractError

FIELDS = ("cohort_name", "cohort_id", "in_cohort", "computed_time", "message_id", "users")
USER_ID = "user_id"
USER_PROPERTIES = "user_properties"
_EPOCH_SECONDS = re.compile(r"[0-9]{1,12}")
SHOWN_PROBLEMS = 10
SHOWN_VALUE_CHARS = 64
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")  # UTF-8, UTF-16/32 LE, UTF-16/32 BE


@dataclass(frozen=True)
class User:
    """One user in a message; properties are optional in the contract."""

    user_id: str
    user_properties: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The user's JSON object; `user_properties` left out when there are none."""
        if self.user_properties is None:
            return {USER_ID: self.user_id}
        return {USER_ID: self.user_id, USER_PROPERTIES: dict(self.user_properties)}


@dataclass(frozen=True)
class CohortMessage:
    """One Kinesis record's payload: only entering or only exiting users of one cohort."""

    cohort_name: str
    cohort_id: str
    in_cohort: bool
    computed_time: str
    message_id: str
    users: Sequence[User] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The payload as Amplitude documents it, fields in the documented order."""
        return {
            "cohort_name": self.cohort_name,
            "cohort_id": self.cohort_id,
            "in_cohort": self.in_cohort,
            "computed_time": self.computed_time,
            "message_id": self.message_id,
            "users": [user.to_json() for user in self.users],
        }


def encode(message: CohortMessage) -> bytes:
    """Serialize compactly as UTF-8 JSON: one document per record, never aggregated."""
    return json.dumps(message.to_json(), ensure_ascii=False, separators=(",", ":")).encode()


def problems_of(payload: Any) -> list[str]:
    """Every way a decoded JSON value breaks the contract (empty when it follows it)."""
    if not isinstance(payload, Mapping):
        return [f"payload {type(payload).__name__}: must be a JSON object"]
    problems = [f"{name}: missing" for name in FIELDS if name not in payload]
    for name in ("cohort_name", "cohort_id", "message_id"):
        value = payload.get(name)
        if name in payload and (not isinstance(value, str) or not value):
            problems.append(f"{name} {_shown(value)}: must be a non-empty string")
    if "in_cohort" in payload and not isinstance(payload["in_cohort"], bool):
        problems.append(f"in_cohort {_shown(payload['in_cohort'])}: must be true or false")
    computed = payload.get("computed_time")
    if "computed_time" in payload and not (
        isinstance(computed, str) and _EPOCH_SECONDS.fullmatch(computed)
    ):
        problems.append(
            f"computed_time {_shown(computed)}: must be epoch seconds as a string of digits"
        )
    users = payload.get("users")
    if "users" in payload:
        if not isinstance(users, list):
            problems.append(f"users {type(users).__name__}: must be a list")
        else:
            for index, user in enumerate(users):
                problems.extend(f"users[{index}] {p}" for p in _user_problems(user))
    return problems


def _shown(value: Any) -> str:
    """A decoded JSON value as a problem names it: null, true, false in JSON's spelling."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    shown = repr(value)
    if len(shown) <= SHOWN_VALUE_CHARS:
        return shown
    return f"{shown[: SHOWN_VALUE_CHARS - 1]}… ({len(shown):,} characters)"


def _user_problems(user: Any) -> list[str]:
    if not isinstance(user, Mapping):
        return [f"{type(user).__name__}: must be an object"]
    problems = []
    user_id = user.get(USER_ID)
    if not isinstance(user_id, str) or not user_id:
        problems.append(f"{USER_ID} {_shown(user_id)}: must be a non-empty string")
    props = user.get(USER_PROPERTIES)
    if props is not None and not isinstance(props, Mapping):
        problems.append(f"{USER_PROPERTIES} {type(props).__name__}: must be an object")
    return problems


def first_listings(users: Sequence[User]) -> list[tuple[int, User]]:
    """Each user's first listing in a message, with its position: later listings are ignored."""
    seen: set[str] = set()
    kept = []
    for index, user in enumerate(users):
        if user.user_id not in seen:
            seen.add(user.user_id)
            kept.append((index, user))
    return kept


def summary(problems: Sequence[str]) -> str:
    """The problems as one reason: all of them when few, else their count and the first ones."""
    if len(problems) <= SHOWN_PROBLEMS:
        return "; ".join(problems)
    return f"{len(problems):,} problems, the first {SHOWN_PROBLEMS}: " + "; ".join(
        problems[:SHOWN_PROBLEMS]
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (the contract is strict JSON)")


def loads(data: bytes) -> Any:
    """Strict JSON from UTF-8 bytes without a BOM; raise ContractError naming the rule broken."""
    if data.startswith(_BOMS):
        raise ContractError(
            f"record data: starts with a byte-order mark ({data[:3]!r}); the contract is UTF-8"
            " JSON without a BOM"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"record data: not UTF-8 ({exc})") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, and NaN/Infinity refused above
        raise ContractError(f"record data: not JSON ({exc})") from exc


def decode(data: bytes) -> CohortMessage:
    """Parse and validate one record's data; raise ContractError summarising every problem."""
    payload = loads(data)
    problems = problems_of(payload)
    if problems:
        raise ContractError("record breaks the payload contract: " + summary(problems))
    return CohortMessage(
        cohort_name=payload["cohort_name"],
        cohort_id=payload["cohort_id"],
        in_cohort=payload["in_cohort"],
        computed_time=payload["computed_time"],
        message_id=payload["message_id"],
        users=tuple(User(u[USER_ID], u.get(USER_PROPERTIES)) for u in payload["users"]),
    )
