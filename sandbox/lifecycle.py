"""`local preview|up|destroy|refresh`: a stack's state file, its lock, its plan and the gates.

The state file lives at `<state dir>/<stack>.json`; the state dir defaults to `stacks/` next to
the world file. Against the embedded moto (no --endpoint-url) the world is new on every run, so a
file would describe resources that no longer exist: the state is then kept in memory only and
every run starts from an empty stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioning import constants as c
from sandbox.engine import deploy
from sandbox.engine.handler import AwsContext
from sandbox.engine.interrupts import Interrupted, Interruption, interrupts_deferred
from sandbox.engine.lock import stack_locked
from sandbox.engine.stack import StackConfig, program_args
from sandbox.engine.state import StackState, load_state, save_state, state_path
from sandbox.errors import SandboxError
from sandbox.world import MotoWorld


class RefusedPlan(SandboxError):
    """`local up` will not apply this plan as asked (protection, a name in use, the stream)."""


class MissingState(SandboxError):
    """No state file, yet the program's resources exist: acting would forget or duplicate them."""


@dataclass(frozen=True)
class StackPlace:
    """Where a stack's state lives: a file, or (embedded moto) memory only."""

    path: Path | None

    def load(self, config: StackConfig) -> StackState:
        """The recorded state, or an empty one."""
        if self.path is None:
            return StackState(project=c.PROJECT_NAME, stack=config.stack)
        return load_state(self.path, project=c.PROJECT_NAME, stack=config.stack)

    def save(self, state: StackState) -> None:
        """Record the state (a no-op in memory; no empty file where there was none)."""
        if self.path is None:
            return
        if self.path.exists() or state.resources or state.pending_deletes:
            save_state(self.path, state)

    def is_missing(self) -> bool:
        """A file place whose file does not exist (yet, or any more)."""
        return self.path is not None and not self.path.exists()

    def require_state(self, config: StackConfig, ctx: AwsContext, verb: str) -> None:
        """Refuse `verb` when the state file is missing but the program's resources exist."""
        if self.is_missing():
            planned, _ = deploy.plan(
                program_args(config),
                ctx=ctx,
                state=self.load(config),
                account=account_of(ctx),
                execute=False,
            )
            self.refuse_lost_state(planned, verb)

    def refuse_lost_state(self, planned: deploy.Outcome, verb: str) -> None:
        """MissingState when there is no state file but `planned` found declared resources."""
        if self.is_missing() and planned.existing:
            assert self.path is not None
            raise MissingState(
                f"stack state {self.path}: not found, but resources this stack declares already "
                f"exist ({'; '.join(planned.existing)}), so `local {verb}` would "
                f"{_WITHOUT_STATE[verb]}. Nothing was changed or written. Fix: pass --state-dir "
                f"for the directory holding {self.path.name} (or restore it there from a "
                "backup); or adopt the resources with the importStream, importRole and "
                "importPolicy config keys and run `local up`"
            )

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """The stack's lock for a command that changes it (none needed in memory)."""
        if self.path is None:
            yield
            return
        with stack_locked(self.path, command):
            yield

    def describe(self) -> str:
        """One line for the output."""
        if self.path is None:
            return "state: in memory only (embedded moto: the world and the stack start empty)"
        return f"state: {self.path}"


_WITHOUT_STATE = {
    "preview": "plan to create them again",
    "up": "try to create them again",
    "destroy": "delete nothing and record an empty stack",
    "refresh": "find no drift and record an empty stack",
}


def place_for(endpoint_url: str | None, state_dir: Path, stack: str) -> StackPlace:
    """A file under `state_dir` for a served world, memory for the embedded one."""
    return StackPlace(state_path(state_dir, stack) if endpoint_url else None)


def context_for(world: MotoWorld, region: str, endpoint_url: str | None) -> AwsContext:
    """The customer admin's session in the world."""
    return AwsContext(world.customer_admin.session(region), region, endpoint_url)


def account_of(ctx: AwsContext) -> str:
    """The account the session acts in (a read: sts:GetCallerIdentity)."""
    identity = deploy.aws_call(
        "reading the caller's account (sts:GetCallerIdentity)",
        lambda: ctx.client("sts").get_caller_identity(),
    )
    return str(identity["Account"])


def preview(
    config: StackConfig, ctx: AwsContext, place: StackPlace, verb: str = "preview"
) -> deploy.Outcome:
    """Plan against the recorded state; nothing in AWS or the state file changes."""
    state = place.load(config)
    outcome, refusals = deploy.plan(
        program_args(config), ctx=ctx, state=state, account=account_of(ctx), execute=False
    )
    place.refuse_lost_state(outcome, verb)
    if refusals:
        raise RefusedPlan("\n".join(refusals))
    return outcome


def up(
    config: StackConfig,
    ctx: AwsContext,
    place: StackPlace,
    *,
    yes: bool,
    on_plan: Callable[[deploy.Outcome], None],
) -> deploy.Outcome:
    """Preview, refuse what must not happen, then apply and record the new state (locked)."""
    with place.locked(_command("up", config)), interrupts_deferred() as interruption:
        return _up(config, ctx, place, yes=yes, on_plan=on_plan, interruption=interruption)


def _command(verb: str, config: StackConfig) -> str:
    # What the lock file names as its holder; never the --config values (they may be secrets).
    return f"cohort-sync local {verb} --stack {config.stack}"


def _up(
    config: StackConfig,
    ctx: AwsContext,
    place: StackPlace,
    *,
    yes: bool,
    on_plan: Callable[[deploy.Outcome], None],
    interruption: Interruption,
) -> deploy.Outcome:
    planned = preview(config, ctx, place, verb="up")
    on_plan(planned)
    doomed = planned.destroys_stream()
    if doomed and not yes:
        verbs = ", ".join(sorted({s.op for s in doomed}))
        raise RefusedPlan(
            f"this plan would {verbs} the Kinesis stream ({doomed[0].urn}): every record in it "
            "is deleted, and Amplitude's destination form must be updated. Re-run with --yes "
            "to proceed"
        )
    state = place.load(config)
    try:
        applied, refusals = deploy.plan(
            program_args(config),
            ctx=ctx,
            state=state,
            account=account_of(ctx),
            execute=True,
            save=place.save,
            interruption=interruption,
        )
    except Interrupted as exc:
        done = set(exc.done)
        exc.left = [
            (s.op, s.type, s.urn)
            for s in planned.steps
            if s.op != deploy.SAME and (s.op, s.urn) not in done
        ]
        raise
    if refusals:  # the world changed between preview and apply
        raise RefusedPlan("\n".join(refusals))
    return applied


def destroy(
    config: StackConfig,
    ctx: AwsContext,
    place: StackPlace,
    *,
    on_plan: Callable[[deploy.Outcome], None] = lambda _: None,
) -> deploy.Outcome:
    """Delete everything the state records; a protected stream refuses it all (locked).

    `on_plan` sees the plan once nothing refuses it, before the first delete."""
    with place.locked(_command("destroy", config)), interrupts_deferred() as interruption:
        place.require_state(config, ctx, "destroy")
        state = place.load(config)
        planned, refusals = deploy.destroy(ctx=ctx, state=state, execute=False)
        if refusals:
            raise RefusedPlan("\n".join(refusals))
        on_plan(planned)
        outcome, _ = deploy.destroy(
            ctx=ctx, state=state, execute=True, save=place.save, interruption=interruption
        )
        return outcome


def refresh(
    config: StackConfig, ctx: AwsContext, place: StackPlace
) -> tuple[list[deploy.Drift], StackState]:
    """Read every recorded resource back; report drift and record what AWS holds (locked)."""
    with place.locked(_command("refresh", config)):
        place.require_state(config, ctx, "refresh")
        drifts, refreshed = deploy.refresh(ctx, place.load(config))
        place.save(refreshed)
        return drifts, refreshed


@contextmanager
def json_errors(enabled: bool, emit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """With --json, a refusal still prints JSON (an `error` beside empty steps) and exits 2."""
    try:
        yield
    except Exception as exc:
        if not enabled or not isinstance(exc, (SandboxError, *_user_errors())):
            raise
        fix = getattr(exc, "fix", "correct what the message names, then run the command again")
        emit({"steps": [], "changeSummary": {}, "notices": [], "error": str(exc), "fix": fix})
        raise JsonReported(str(exc)) from exc


class JsonReported(SandboxError):
    """An error already printed as JSON."""


def _user_errors() -> tuple[type[Exception], ...]:
    from provisioning.errors import ProvisioningError
    from sync.errors import SyncError

    return (ProvisioningError, SyncError)
