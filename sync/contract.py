"""Amplitude's Kinesis cohort payload: one JSON object per record, validated both ways."""

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
_EPOCH_SECONDS = re.compile(r"\d{1,12}")


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
    return repr(value)


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


def decode(data: bytes) -> CohortMessage:
    """Parse and validate one record's data; raise ContractError listing every problem."""
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"record data: not UTF-8 JSON ({exc})") from exc
    problems = problems_of(payload)
    if problems:
        raise ContractError("record breaks the payload contract: " + "; ".join(problems))
    return CohortMessage(
        cohort_name=payload["cohort_name"],
        cohort_id=payload["cohort_id"],
        in_cohort=payload["in_cohort"],
        computed_time=payload["computed_time"],
        message_id=payload["message_id"],
        users=tuple(User(u[USER_ID], u.get(USER_PROPERTIES)) for u in payload["users"]),
    )
