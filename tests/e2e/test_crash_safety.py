"""`cohort-sync push` killed with SIGKILL at every transaction boundary, resumed, loses nothing.

The moto server runs in this process, so the kill can be pulled from inside the server at exact
points (the n-th PutRecords, before or after its records land) as well as on timers during
validation and staging. Each snapshot's push is also killed twice inside the staging
transaction itself, deterministically: once with outbox rows written, once with membership
rewritten (the push runs under a wrapper that kills itself there). Resumption is `push` of the
same snapshot again, or `replay`.

The plan (PLAN) is chosen, not drawn: each kill lands on a different boundary or resumes a
different way; a second kill at an equivalent point costs a process start and proves nothing
new. The seed (CRASH_SEED) only places the timers and picks which PutRecords call dies.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from moto.core.responses import BaseResponse

from sandbox.engine.stack import StackConfig
from sandbox.pytest_plugin import apply_destination
from sandbox.server import ServedWorld, start_server
from sandbox.streams import read_records
from sandbox.world import MotoWorld
from sync.limits import MAX_PUT_RECORDS_COUNT
from sync.state import StateStore

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
COHORT_ID = "crash01"
# CRASH_SEED moves the timers and the dying PutRecords call:
#     CRASH_SEED=7 pytest tests/e2e/test_crash_safety.py
SEED = int(os.environ.get("CRASH_SEED", "2026"))
# Where the wrapper below kills a push inside Staging.stage's one transaction.
INSIDE_STAGE = ("outbox rows written", "membership rewritten")
KILL_INSIDE_STAGE = """
import os, signal, sys
from sync import outbox, staging
from sync.cli import main

point = sys.argv.pop(1)
owner, name = {
    "outbox rows written": (outbox.Outbox, "add"),
    "membership rewritten": (staging.Staging, "_replace_membership"),
}[point]
original = getattr(owner, name)

def then_die(*args, **kwargs):
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(owner, name, then_die)
sys.exit(main(sys.argv[1:]))
"""
USERS_PER_MESSAGE = 10
RUN_TIMEOUT_SECONDS = 30
VALIDATION, STAGING, SENDING = "validation", "staging", "sending"
# Each snapshot is a set of user numbers; properties derive from the number, so a user's
# properties never change while it stays (changes of staying users are stored, not sent).
SNAPSHOTS: tuple[frozenset[int], ...] = (
    frozenset(range(0, 20_000)),
    frozenset(range(4_000, 20_000)) | frozenset(range(20_000, 24_000)),
    frozenset(range(8_000, 20_000)) | frozenset(range(21_000, 27_000)),
)


@dataclass(frozen=True)
class Kill:
    """Where one run dies: its phase; for SENDING, whether the records landed, and the command."""

    phase: str
    landed: bool = False
    replay: bool = False


# Per snapshot, after the two kills inside the staging transaction. Validation: nothing written
# yet (no state file at all for the first push, a state file for a later one). Staging: between
# preflight and the first PutRecords, with or without the stage committed. Sending: a PutRecords
# call dies before its records land (they are re-sent) or after (they are sent twice, same id),
# resumed by `push` of the same snapshot or by `replay`.
PLAN: tuple[tuple[Kill, ...], ...] = (
    (Kill(VALIDATION), Kill(SENDING), Kill(SENDING, landed=True, replay=True)),
    (Kill(STAGING), Kill(SENDING, landed=True), Kill(SENDING, replay=True)),
    (Kill(VALIDATION), Kill(STAGING), Kill(SENDING, landed=True)),
)
COMPUTED_TIMES = ("1700000000", "1700086400", "1700172800")


def user_id(number: int) -> str:
    return f"user-{number:06d}"


def properties(number: int) -> dict[str, str] | None:
    return None if number % 7 == 0 else {"plan": f"p{number % 3}", "city": f"c{number % 11}"}


def write_snapshot(path: Path, users: frozenset[int]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for number in sorted(users):
            row = {"user_id": user_id(number), "user_properties": properties(number)}
            handle.write(json.dumps(row) + "\n")
    return path


@dataclass
class Tripwire:
    """Pulls SIGKILL on the armed child from inside the server, or on a timer."""

    pid: int | None = None
    phase: str = ""
    put_number: int = 0
    after_landing: bool = False
    delay_seconds: float = 0.0
    fired_at: str = ""
    started: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)
    puts: int = 0
    _timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(
        self, pid: int, phase: str, *, delay: float = 0.0, put: int = 0, landed: bool = False
    ) -> None:
        with self._lock:
            self.pid, self.phase, self.delay_seconds = pid, phase, delay
            self.put_number, self.after_landing = put, landed
            self.fired_at, self.seen, self.puts = "", {}, 0
            self.started = time.monotonic()
        if phase == VALIDATION:
            self._start_timer(delay)

    def disarm(self) -> None:
        with self._lock:
            self.pid = None
            if self._timer is not None:
                self._timer.cancel()

    def kill(self, where: str) -> bool:
        with self._lock:
            if self.pid is None or self.fired_at:
                return False
            os.kill(self.pid, signal.SIGKILL)
            self.fired_at = where
            return True

    def _start_timer(self, delay: float) -> None:
        timer = threading.Timer(delay, self.kill, args=(f"timer {delay:.3f}s",))
        timer.daemon = True
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = timer
        timer.start()

    def call_action(self, response: BaseResponse, original: Callable[[BaseResponse], Any]) -> Any:
        action = response._get_action()
        with self._lock:
            armed = self.pid is not None and not self.fired_at
            self.seen.setdefault(action, time.monotonic() - self.started)
            if action == "PutRecords":
                self.puts += 1
            number = self.puts
        if armed and self.phase == VALIDATION and action == "AssumeRole":
            self.kill("AssumeRole arrived")  # validation is over: stop at its very end
            return 500, {}, "killed"
        if armed and self.phase == STAGING and action == "PutRecords":
            self.kill("first PutRecords arrived")
            return 500, {}, "killed"
        landed = armed and self.phase == SENDING and action == "PutRecords"
        landed = landed and number == self.put_number
        if landed and not self.after_landing:
            self.kill(f"PutRecords #{number} before landing")
            return 500, {}, "killed"
        result = original(response)
        if landed:
            self.kill(f"PutRecords #{number} after landing")
        elif armed and self.phase == STAGING and action == "SimulatePrincipalPolicy":
            self._start_timer(self.delay_seconds)  # preflight done: staging begins
        return result


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServedWorld, Tripwire]]:
    tripwire = Tripwire()
    original = BaseResponse.call_action

    def patched(self: BaseResponse) -> Any:
        return tripwire.call_action(self, original)

    with start_server() as server, mock.patch.object(BaseResponse, "call_action", patched):
        yield server, tripwire


@dataclass
class Crash:
    """Everything one crash-test run needs, and the runs it made."""

    world: MotoWorld
    tripwire: Tripwire
    tmp: Path
    rng: random.Random
    kills: list[tuple[str, str, str]] = field(default_factory=list)
    estimates: dict[str, float] = field(default_factory=lambda: {VALIDATION: 0.5, STAGING: 0.2})

    @property
    def destination(self) -> Path:
        return self.tmp / "destination.json"

    @property
    def state(self) -> Path:
        return self.tmp / "state.duckdb"

    def env(self, who: str = "amplitude") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        creds = self.world.amplitude if who == "amplitude" else self.world.customer_admin
        env.update(
            AWS_ENDPOINT_URL=str(self.world.endpoint_url),
            AWS_DEFAULT_REGION=self.world.region,
            AWS_ACCESS_KEY_ID=creds.access_key_id,
            AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env

    def push_args(self, index: int) -> list[str]:
        return [
            "push",
            "--destination",
            str(self.destination),
            "--cohort-id",
            COHORT_ID,
            "--cohort-name",
            "Crash Cohort",
            "--state",
            str(self.state),
            "--max-users-per-message",
            str(USERS_PER_MESSAGE),
            "--computed-time",
            COMPUTED_TIMES[index],
            str(self.tmp / f"snapshot-{index}.jsonl"),
        ]

    def replay_args(self) -> list[str]:
        return ["replay", "--destination", str(self.destination), "--state", str(self.state)]

    def cli(self, args: list[str], who: str = "amplitude") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sync", *args],
            cwd=REPO,
            env=self.env(who),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )

    def outbox(self) -> tuple[int, set[str]]:
        """Records pending, and the computed times of the syncs staged so far."""
        if not self.state.exists():
            return 0, set()
        with StateStore(self.state) as store:
            pending = store.outbox.counts().pending
            times = store.connection.execute("SELECT computed_time FROM syncs").fetchall()
        return pending, {str(row[0]) for row in times}

    def membership(self) -> set[tuple[str, str]]:
        """The membership the state store holds for the cohort."""
        if not self.state.exists():
            return set()
        with StateStore(self.state) as store:
            return set(store.members(COHORT_ID))

    def killed_run(self, index: int, kill: Kill) -> None:
        """Start one run, arm the tripwire for `kill`, and insist the run died by SIGKILL."""
        pending, staged_times = self.outbox()
        staged = COMPUTED_TIMES[index] in staged_times
        to_send = pending + (0 if staged else diff_records(index))
        phase = kill.phase
        assert phase == VALIDATION or to_send > 0, (index, kill)  # else the run could finish
        assert not kill.replay or pending > 0, (index, kill)  # replay needs something staged
        replay = kill.replay
        args = self.replay_args() if replay else self.push_args(index)
        process = subprocess.Popen(
            [sys.executable, "-m", "sync", *args],
            cwd=REPO,
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        sending_calls = math.ceil((pending if replay else to_send) / MAX_PUT_RECORDS_COUNT)
        self.tripwire.arm(
            process.pid,
            phase,
            delay=self.rng.uniform(0.0, self.estimates.get(phase, 0.0)),
            put=self.rng.randint(1, max(1, sending_calls)),
            landed=kill.landed,
        )
        try:
            _, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        finally:
            self.tripwire.disarm()
        assert process.returncode == -signal.SIGKILL, (phase, self.tripwire.fired_at, stderr)
        self.learn()
        command = "replay" if replay else f"push {index}"
        self.kills.append((command, phase, self.tripwire.fired_at))

    def killed_inside_stage(self, index: int, point: str) -> None:
        """Run push `index` and kill it at `point` inside the staging transaction."""
        before = (self.outbox(), self.membership())
        killed = subprocess.run(
            [sys.executable, "-c", KILL_INSIDE_STAGE, point, *self.push_args(index)],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        # Nothing of the killed transaction survives: no record staged, no sync recorded, no
        # member added or removed.
        assert (self.outbox(), self.membership()) == before, point
        self.kills.append((f"push {index}", STAGING, f"inside stage: {point}"))

    def learn(self) -> None:
        """Keep the timers' ranges near how long validation and staging really take."""
        seen = self.tripwire.seen
        if "AssumeRole" in seen:
            self.estimates[VALIDATION] = seen["AssumeRole"]
        if "SimulatePrincipalPolicy" in seen and "PutRecords" in seen:
            self.estimates[STAGING] = seen["PutRecords"] - seen["SimulatePrincipalPolicy"]


def diff_records(index: int) -> int:
    before = SNAPSHOTS[index - 1] if index else frozenset()
    entering, exiting = SNAPSHOTS[index] - before, before - SNAPSHOTS[index]
    return sum(math.ceil(len(users) / USERS_PER_MESSAGE) for users in (entering, exiting))


def read_stream(world: MotoWorld, stream_arn: str) -> list[bytes]:
    """Every record the stream holds, read with the customer's credentials."""
    kinesis = world.client("kinesis", world.customer_admin)
    return [record["Data"] for record in read_records(kinesis, stream_arn)]


def test_sigkill_at_every_boundary_loses_nothing_and_renumbers_nothing(
    served: tuple[ServedWorld, Tripwire], tmp_path: Path
) -> None:
    server, tripwire = served
    world = server.world
    # GIVEN the stack applied to the server, three snapshots and the kill plan
    applied = apply_destination(
        world, StackConfig(stack="crash"), tmp_path, endpoint_url=server.url
    )
    crash = Crash(world, tripwire, tmp_path, random.Random(SEED))
    for index, users in enumerate(SNAPSHOTS):
        write_snapshot(tmp_path / f"snapshot-{index}.jsonl", users)

    # WHEN every snapshot's push is killed again and again, then allowed to finish
    for index, kills in enumerate(PLAN):
        for point in INSIDE_STAGE:
            crash.killed_inside_stage(index, point)
        for kill in kills:
            crash.killed_run(index, kill)
        finished = crash.cli(crash.push_args(index))
        assert finished.returncode == 0, finished.stderr
        assert "NOT DELIVERED" not in finished.stdout
    drained = crash.cli(crash.replay_args())

    # THEN the outbox is empty and every kill point was used
    assert (drained.returncode, drained.stdout.strip()) == (0, "outbox empty: nothing to replay")
    planned = sum(len(kills) for kills in PLAN) + len(INSIDE_STAGE) * len(SNAPSHOTS)
    assert len(crash.kills) == planned
    # and each sending kill fired where planned: before or after its records landed, in a push
    # or in a replay
    kills = [kill for per_snapshot in PLAN for kill in per_snapshot]
    fired = [where for _, _, where in crash.kills]
    landed = sum(where.endswith("after landing") for where in fired)
    assert landed == sum(k.landed for k in kills), crash.kills
    before = sum(where.endswith("before landing") for where in fired)
    assert before == sum(k.phase == SENDING and not k.landed for k in kills), crash.kills
    replays = sum(command == "replay" for command, _, _ in crash.kills)
    assert replays == sum(k.replay for k in kills), crash.kills

    # AND each message id is one a sync staged (every sync's records numbered once), and carries
    # one payload however often it was sent; acknowledged records left the outbox with their ack
    with StateStore(crash.state) as store:
        assert store.connection.execute("SELECT count(*) FROM outbox").fetchall() == [(0,)]
        syncs = store.connection.execute("SELECT sync_id, messages FROM syncs").fetchall()
    staged = {f"{sync_id}:{n}" for sync_id, messages in syncs for n in range(messages)}
    assert len(staged) == sum(diff_records(i) for i in range(len(SNAPSHOTS)))
    payloads: dict[str, set[bytes]] = defaultdict(set)
    sent = Counter[str]()
    for data in read_stream(world, applied.outputs["streamArn"]):
        message_id = json.loads(data)["message_id"]
        payloads[message_id].add(data)
        sent[message_id] += 1
    assert set(payloads) == staged
    assert all(len(payloads[m]) == 1 for m in staged)
    # records that landed before their push died were sent again, under the same id
    assert max(sent.values()) > 1

    # AND the consumer's membership is exactly the last snapshot
    consumer_state = tmp_path / "consumer.sqlite"
    common = ["--destination", str(crash.destination), "--state", str(consumer_state)]
    consumed = crash.cli(["consume", *common, "--from-start", "--until-idle"], who="customer")
    assert consumed.returncode == 0, consumed.stderr
    listed = crash.cli(
        ["members", "--state", str(consumer_state), "--cohort-id", COHORT_ID, "--format", "jsonl"]
    )
    assert listed.returncode == 0, listed.stderr
    rows_out = [json.loads(line) for line in listed.stdout.splitlines()]
    got = {row["user_id"]: row["user_properties"] for row in rows_out}
    want = {user_id(n): properties(n) for n in SNAPSHOTS[-1]}
    assert got == want
