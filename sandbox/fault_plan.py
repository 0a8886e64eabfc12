"""The fault grammar: what goes wrong in the sandbox's Kinesis, and when, as a plan or a spec.

A spec is comma-separated `key=value` items (`SPEC_HELP` lists every key), e.g.
`throughput=on,scale=50,throttle=0.02,seed=7` or `targets=write,reset-landed=@3,seed=1`:

- `throughput=on|off` turns on per-shard write/read limits; `scale` runs model time faster
  (shards refill `scale` times per real second); `seed` fixes every random draw.
- each fault (`record-internal`, `throttle`, `kms-throttle`, `unavailable`, `internal`,
  `expired-token`, `timeout`, `reset`, `timeout-landed`, `reset-landed`) takes a rate (0..1, drawn
  per call, or per record for `record-internal`) or a schedule of 1-based call numbers
  (`@3+7+10-20`, `@5-` for "from the 5th on");
- the actions `delete-stream` and `detach-policy` take a schedule only;
- `targets` picks the operations call-level faults apply to (`write`, `read`, `all` or Kinesis
  operation names joined by `+`), `expire-after-s` when assumed-role keys expire (model seconds).

`FaultPlan.parse` reports every bad item at once; `to_spec` prints a plan back. Pure data: the
injection into moto is `sandbox.faults`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from functools import cache
from typing import Any, Final, cast

import botocore.session


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
    def parse(cls, spec: str) -> FaultPlan:
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
