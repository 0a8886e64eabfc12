"""The stateful local engine: preview, up, refresh and destroy against a stack's state file.

Each registration the program makes is compared with what the state file recorded for its URN,
and becomes a step as Pulumi's engine would plan it: `same`, `create`, `update` (in place),
`replace` (create-before-delete, or delete-before-create when a fixed name forces it), `import`,
or, for recorded resources the program no longer declares, `delete`. Which changes replace is the
provider's schema (sandbox/engine/schema.py); the AWS calls are the handlers' (registry.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from botocore.exceptions import BotoCoreError, ClientError

from provisioning import constants as c
from sandbox.engine.consumer_resources import archive_input
from sandbox.engine.handler import AwsContext, Live, ResourceHandler
from sandbox.engine.interrupts import Interrupted, Interruption
from sandbox.engine.invokes import answer_invoke
from sandbox.engine.registry import handler_for
from sandbox.engine.runner import ProgramRun, RegistrationOptions, run_program
from sandbox.engine.schema import (
    STREAM,
    delete_before_replace,
    diff_inputs,
    schema_for,
    with_provider_defaults,
)
from sandbox.engine.secrets import unwrap_secrets
from sandbox.engine.state import ResourceState, StackState, is_sealed, seal_paths
from sandbox.errors import ApplyError

SAME, CREATE, UPDATE, REPLACE, IMPORT, DELETE = (
    "same",
    "create",
    "update",
    "replace",
    "import",
    "delete",
)
CREATE_REPLACEMENT, DELETE_REPLACED = "create-replacement", "delete-replaced"
# The ops that destroy a resource's data (the stream's --yes gate).
DESTRUCTIVE = (REPLACE, DELETE)


@dataclass(frozen=True)
class Step:
    """One planned or performed operation on one resource."""

    op: str
    urn: str
    type: str
    diff_reasons: tuple[str, ...] = ()
    replace_reasons: tuple[str, ...] = ()
    changes: tuple[tuple[str, Any, Any], ...] = ()  # (input, old, new), secrets masked


@dataclass(frozen=True)
class FormNotice:
    """A change to what Amplitude was told: a destination-form field or the external ID."""

    field: str
    old: str
    new: str

    def render(self) -> str:
        """One line saying what changes and what the customer must do."""
        where = (
            "Amplitude's side (the external ID it sends)"
            if self.field == "external ID"
            else "the destination form in Amplitude"
        )
        return (
            f"NOTICE: Amplitude's {self.field} changes from {self.old} to {self.new}: deliveries "
            f"fail until {where} is updated to match."
        )

    def to_json(self) -> dict[str, str]:
        """Plain data for --json."""
        return {"field": self.field, "from": self.old, "to": self.new}


@dataclass
class Outcome:
    """What a preview or an operation planned (or did), and the state it leaves."""

    steps: list[Step]
    state: StackState
    notices: list[FormNotice] = field(default_factory=list)
    run: ProgramRun | None = None
    vanished: list[str] = field(default_factory=list)  # recorded, but gone from AWS
    # Declared, not recorded, yet already in AWS (a lost state file, or a hand-made resource).
    existing: list[str] = field(default_factory=list)
    # (urn, protected now) for each recorded resource whose `protect` flag this run changes: a
    # change to the state only, which no step shows.
    protect_changes: list[tuple[str, bool]] = field(default_factory=list)
    old: StackState | None = None  # the recorded state the plan started from

    @property
    def summary(self) -> dict[str, int]:
        """Counts per op, as `changeSummary` in `pulumi preview --json`."""
        counts: dict[str, int] = {}
        for step in self.steps:
            if step.op in (CREATE_REPLACEMENT, DELETE_REPLACED):
                continue  # counted once, as the replace
            counts[step.op] = counts.get(step.op, 0) + 1
        return counts

    def destroys_stream(self) -> list[Step]:
        """Steps that replace or delete a Kinesis stream (its records go with it)."""
        return [s for s in self.steps if s.type == STREAM and s.op in DESTRUCTIVE]


def protection_error(urn: str, verb: str) -> str:
    """Pulumi's protection error, with the way to unprotect this program's stream."""
    return (
        f'unable to {verb} resource "{urn}" as it is currently marked for protection. To '
        "unprotect the resource, remove the `protect` flag from the resource in your Pulumi "
        f"program and run `pulumi up`: here, `pulumi config set {c.CONFIG_PROTECT_STREAM} false` "
        "and run `pulumi up` once (it only lifts the protection), then run the change again"
    )


def aws_call(what: str, call: Callable[..., Any], *args: Any) -> Any:
    """Run one AWS call; its failure becomes an ApplyError naming `what` and the cause."""
    try:
        return call(*args)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ApplyError(f"{what} failed: {error.get('Code')}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise ApplyError(f"{what} failed: {exc}") from exc


def _secret_keys(paths: Iterable[str]) -> set[str]:
    return {p.split(".")[0].split("[")[0] for p in paths if p}


def _unseal(state: StackState, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Old inputs with each sealed secret replaced by the new value when its digest matches."""
    result = dict(old)
    for key, value in old.items():
        if is_sealed(value) and key in new and state.seal(new[key]) == value:
            result[key] = new[key]
    return result


def _masked(value: Any) -> Any:
    return "[secret]" if is_sealed(value) else value


def _depth_order(resources: Mapping[str, ResourceState]) -> list[ResourceState]:
    """Dependencies (and parents) before dependents."""
    level: dict[str, int] = {}

    def depth(urn: str) -> int:
        if urn not in level:
            level[urn] = 0
            r = resources[urn]
            before = [u for u in [*r.dependencies, r.parent or ""] if u in resources]
            level[urn] = 1 + max((depth(u) for u in before), default=-1)
        return level[urn]

    return sorted(resources.values(), key=lambda r: (depth(r.urn), r.urn))


class DeployEngine(pulumi.runtime.Mocks):
    """Pulumi mocks that turn each registration into a step against the recorded state.

    With `execute` false nothing in AWS changes (reads only: a preview); with it true each step's
    calls are made as the provider makes them.
    """

    def __init__(
        self,
        ctx: AwsContext,
        state: StackState,
        *,
        account: str,
        execute: bool,
        interruption: Interruption | None = None,
    ) -> None:
        self._ctx = ctx
        self._interruption = interruption
        self._old = state
        self._account = account
        self._execute = execute
        self._lock = threading.Lock()
        self.steps: list[Step] = []
        self.refusals: list[str] = []
        self.existing: list[str] = []
        self.current: dict[str, ResourceState] = dict(state.resources)
        self.registered: set[str] = set()
        self.pending_deletes: list[ResourceState] = list(state.pending_deletes)
        self._replaced_early: set[str] = set()

    def _stop_if_interrupted(self) -> None:
        # Before a step that would change AWS; steps already under way finish and are recorded.
        if self._execute and self._interruption is not None:
            self._interruption.check()

    def _step(self, step: Step) -> None:
        with self._lock:
            self.steps.append(step)

    def _record(self, resource: ResourceState) -> None:
        with self._lock:
            self.current[resource.urn] = resource

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Only reached without the runner's options, which this engine needs."""
        raise AssertionError("DeployEngine needs RegistrationOptions from the runner")

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Provider functions: the region, the account and the partition."""
        answer = answer_invoke(
            args.token, dict(args.args), region=self._ctx.region, account=self._account
        )
        return answer, []

    def new_resource_with_options(
        self, args: pulumi.runtime.MockResourceArgs, opts: RegistrationOptions
    ) -> tuple[str, dict[str, Any]]:
        """Plan (and with execute, perform) the step for one registration."""
        plain, secret_paths = unwrap_secrets(dict(args.inputs))
        # What the state records and the diff compares: an archive as its path and hash.
        recorded = {k: archive_input(v) for k, v in plain.items()}
        secrets = _secret_keys(secret_paths)
        with self._lock:
            self.registered.add(opts.urn)
        old = self.current.get(opts.urn)

        def keep(resource_id: str | None, outputs: dict[str, Any]) -> None:
            self._record(
                ResourceState(
                    urn=opts.urn,
                    type=args.typ,
                    name=args.name,
                    custom=bool(args.custom),
                    id=resource_id,
                    inputs=seal_paths(self._old, recorded, secrets),
                    outputs=seal_paths(
                        self._old, {k: archive_input(v) for k, v in outputs.items()}, secrets
                    ),
                    protect=opts.protect,
                    parent=opts.parent_urn,
                    dependencies=list(opts.dependencies),
                    retain_on_delete=opts.retain_on_delete,
                )
            )

        self._stop_if_interrupted()
        if not args.custom:
            self._step(Step(SAME if old else CREATE, opts.urn, args.typ))
            keep(args.name, {})
            return args.name, {}

        handler = handler_for(args.typ, args.name)
        if old is None and opts.import_id:
            return self._import(args, opts, handler, plain, keep)
        if old is None:
            return self._create(args, opts, handler, plain, keep)
        old_inputs = _unseal(self._old, old.inputs, recorded)
        diff = diff_inputs(args.typ, old_inputs, recorded)
        changes = tuple(
            (k, _masked(old_inputs.get(k)), "[secret]" if k in secrets else recorded.get(k))
            for k in diff.diff_reasons
        )
        live_outputs = {**old.outputs, **plain}
        if not diff.changed:
            self._step(Step(SAME, opts.urn, args.typ))
            keep(old.id, live_outputs)
            return old.id or "", live_outputs
        if not diff.replace_reasons:
            self._step(Step(UPDATE, opts.urn, args.typ, diff.diff_reasons, (), changes))
            outputs = live_outputs
            if self._execute:
                outputs = self._update(args, handler, old.id or "", old.outputs, old_inputs, plain)
            keep(old.id, outputs)
            return old.id or "", outputs
        return self._replace(
            args, opts, handler, old, plain, diff.diff_reasons, diff.replace_reasons, changes, keep
        )

    def _update(
        self,
        args: pulumi.runtime.MockResourceArgs,
        handler: ResourceHandler,
        resource_id: str,
        outputs: dict[str, Any],
        old_inputs: Mapping[str, Any],
        new_inputs: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Update in place; the handler sees both sides with the provider's defaults filled."""
        result: dict[str, Any] = aws_call(
            f"updating {args.typ} {args.name!r}",
            lambda: handler.update(
                self._ctx,
                resource_id,
                outputs,
                with_provider_defaults(args.typ, old_inputs),
                with_provider_defaults(args.typ, new_inputs),
            ),
        )
        return result

    def _create(
        self,
        args: pulumi.runtime.MockResourceArgs,
        opts: RegistrationOptions,
        handler: ResourceHandler,
        plain: dict[str, Any],
        keep: Callable[[str | None, dict[str, Any]], None],
    ) -> tuple[str, dict[str, Any]]:
        if opts.urn in self._replaced_early:
            # Deleted first because a resource it depends on is deleted before its replacement.
            self._step(Step(REPLACE, opts.urn, args.typ))
            self._step(Step(CREATE_REPLACEMENT, opts.urn, args.typ))
        else:
            self._step(Step(CREATE, opts.urn, args.typ))
        # The provider fills every unset input with its schema's default before anything else
        # (Check), so the handlers only ever see complete inputs.
        filled = with_provider_defaults(args.typ, plain)
        if not self._execute:
            collision = aws_call(
                f"checking {args.typ} {args.name!r}", lambda: handler.exists(self._ctx, filled)
            )
            if collision and opts.urn not in self._replaced_early:
                self.existing.append(f"{args.typ} {collision}")
                self.refusals.append(
                    f"{opts.urn}: {collision} already exists, but the stack state does not "
                    "record it; creating it would fail (or take over a resource this stack "
                    "never made). If the state file was lost, restore it; to adopt the existing "
                    "resource, set its import key (importStream, importRole, importPolicy)"
                )
            outputs = handler.predict(self._account, self._ctx.region, args.name, filled)
            keep(f"{args.name}-id", outputs)
            return f"{args.name}-id", outputs
        resource_id, outputs = aws_call(
            f"creating {args.typ} {args.name!r}",
            lambda: handler.create(self._ctx, args.name, filled),
        )
        keep(resource_id, outputs)
        return resource_id, outputs

    def _import(
        self,
        args: pulumi.runtime.MockResourceArgs,
        opts: RegistrationOptions,
        handler: ResourceHandler,
        plain: dict[str, Any],
        keep: Callable[[str | None, dict[str, Any]], None],
    ) -> tuple[str, dict[str, Any]]:
        import_id = opts.import_id or ""
        live = aws_call(
            f"importing {args.typ} {import_id!r}", lambda: handler.import_(self._ctx, import_id)
        )
        if live is None:
            raise ApplyError(
                f"{opts.urn}: import ID {import_id!r}: no such {args.typ} exists in account "
                f"{self._account}; check the import key or unset it to create one"
            )
        diff = diff_inputs(args.typ, live.inputs, plain)
        secrets = _secret_keys(unwrap_secrets(dict(args.inputs))[1])
        changes = tuple(
            (k, live.inputs.get(k), "[secret]" if k in secrets else plain.get(k))
            for k in diff.diff_reasons
        )
        if diff.replace_reasons:
            self.refusals.append(
                f"{opts.urn}: importing {import_id!r} would replace it: "
                f"{', '.join(diff.replace_reasons)} differ and the provider cannot change them "
                "in place; set the config so they match the existing resource"
            )
        self._step(Step(IMPORT, opts.urn, args.typ, diff.diff_reasons, (), changes))
        outputs = {**live.outputs}
        if diff.changed and not diff.replace_reasons:
            self._step(Step(UPDATE, opts.urn, args.typ, diff.diff_reasons, (), changes))
            outputs = {**live.outputs, **plain}
            if self._execute:
                outputs = self._update(args, handler, live.id, live.outputs, live.inputs, plain)
        keep(live.id, outputs)
        return live.id, outputs

    def _replace(
        self,
        args: pulumi.runtime.MockResourceArgs,
        opts: RegistrationOptions,
        handler: ResourceHandler,
        old: ResourceState,
        plain: dict[str, Any],
        diff_reasons: tuple[str, ...],
        replace_reasons: tuple[str, ...],
        changes: tuple[tuple[str, Any, Any], ...],
        keep: Callable[[str | None, dict[str, Any]], None],
    ) -> tuple[str, dict[str, Any]]:
        if old.protect:
            self.refusals.append(protection_error(opts.urn, "replace"))
        first_delete = delete_before_replace(args.typ, plain, option=opts.delete_before_replace)
        reasons = (diff_reasons, replace_reasons, changes)
        if first_delete:
            for dependent in self._dependents_replaced_with(old):
                self._step(Step(DELETE_REPLACED, dependent.urn, dependent.type))
                if self._execute:
                    self._delete(dependent)
                with self._lock:
                    self.current.pop(dependent.urn, None)
                    self._replaced_early.add(dependent.urn)
            self._step(Step(DELETE_REPLACED, opts.urn, args.typ, *reasons))
            self._step(Step(REPLACE, opts.urn, args.typ, *reasons))
            self._step(Step(CREATE_REPLACEMENT, opts.urn, args.typ, *reasons))
            if self._execute:
                self._delete(old)
        else:
            self._step(Step(CREATE_REPLACEMENT, opts.urn, args.typ, *reasons))
            self._step(Step(REPLACE, opts.urn, args.typ, *reasons))
            with self._lock:
                self.pending_deletes.append(old)
        filled = with_provider_defaults(args.typ, plain)
        if not self._execute:
            outputs = handler.predict(self._account, self._ctx.region, args.name, filled)
            keep(f"{args.name}-id", outputs)
            return f"{args.name}-id", outputs
        resource_id, outputs = aws_call(
            f"creating the replacement {args.typ} {args.name!r}",
            lambda: handler.create(self._ctx, args.name, filled),
        )
        keep(resource_id, outputs)
        return resource_id, outputs

    def _dependents_replaced_with(self, replaced: ResourceState) -> list[ResourceState]:
        """Recorded dependents whose ForceNew inputs hold the replaced resource's identity.

        Pulumi deletes these before a delete-before-replace: their replacement is certain, and
        AWS would refuse to delete what they still reference (a role with a policy attached).
        """
        identity = {
            v
            for v in (replaced.id, replaced.outputs.get("name"), replaced.outputs.get("arn"))
            if isinstance(v, str) and v
        }
        found = []
        for resource in list(self.current.values()):
            if replaced.urn not in resource.dependencies or not resource.custom:
                continue
            force_new = schema_for(resource.type).force_new
            if any(resource.inputs.get(k) in identity for k in force_new):
                found.append(resource)
        return found

    def _delete(self, resource: ResourceState) -> None:
        if not resource.custom or resource.retain_on_delete:
            return  # retainOnDelete: Pulumi forgets the resource and leaves it in the cloud
        handler = handler_for(resource.type, resource.name)
        aws_call(
            f"deleting {resource.type} {resource.name!r}",
            lambda: handler.delete(self._ctx, resource.id or "", resource.outputs),
        )

    def finish(self) -> None:
        """After the program: delete replaced resources, then what it no longer declares."""
        # Dependents first: AWS refuses to delete a policy still attached to a role.
        replaced = {r.urn: r for r in self.pending_deletes}
        for old in reversed(_depth_order(replaced)):
            self._stop_if_interrupted()
            self._step(Step(DELETE_REPLACED, old.urn, old.type))
            if self._execute:
                self._delete(old)
                self.pending_deletes.remove(old)
        gone = {u: r for u, r in self.current.items() if u not in self.registered}
        for resource in reversed(_depth_order(gone)):
            if resource.protect:
                self.refusals.append(protection_error(resource.urn, "delete"))
            self._stop_if_interrupted()
            self._step(Step(DELETE, resource.urn, resource.type))
            if self._execute:
                self._delete(resource)
                self.current.pop(resource.urn)

    def new_state(self, run: ProgramRun) -> StackState:
        """The state this run leaves: every resource in dependency order, and the outputs."""
        state = StackState(project=self._old.project, stack=self._old.stack, salt=self._old.salt)
        state.resources = {r.urn: r for r in _depth_order(self.current)}
        state.pending_deletes = list(self.pending_deletes)
        state.outputs = seal_paths(state, dict(run.outputs), set(run.secret_outputs))
        return state


def form_notices(
    old: Mapping[str, Any], new: Mapping[str, Any], old_state: StackState
) -> list[FormNotice]:
    """What changes in Amplitude's destination form (or the external ID) between two outputs."""
    if not old:
        return []  # a first deployment: the form is filled in from scratch
    notices = []
    before = old.get(c.OUTPUT_DESTINATION) or {}
    after = new.get(c.OUTPUT_DESTINATION) or {}
    labels = {
        c.FORM_STREAM_NAME: "Stream Name",
        c.FORM_AWS_REGION: "AWS Region",
        c.FORM_ROLE_ARN: "Role ARN",
    }
    for key, label in labels.items():
        if before.get(key) != after.get(key):
            notices.append(FormNotice(label, repr(before.get(key)), repr(after.get(key))))
    old_id = old.get(c.OUTPUT_EXTERNAL_ID)
    new_id = new.get(c.OUTPUT_EXTERNAL_ID)
    new_sealed = old_state.seal(new_id) if new_id is not None else None
    if (old_id is None) != (new_id is None) or (old_id is not None and old_id != new_sealed):
        describe = {True: "(set; value not shown)", False: "(not set)"}
        if old_id is not None and new_id is not None:
            notices.append(FormNotice("external ID", "one secret value", "another (not shown)"))
        else:
            notices.append(
                FormNotice(
                    "external ID", describe[old_id is not None], describe[new_id is not None]
                )
            )
    return notices


def _read_live(ctx: AwsContext, resource: ResourceState) -> Live | None:
    """Read one recorded resource back from AWS (None: it no longer exists)."""
    handler = handler_for(resource.type, resource.name)
    live: Live | None = aws_call(
        f"reading {resource.type} {resource.name!r}",
        handler.read,
        ctx,
        resource.id or "",
        resource.outputs,
    )
    return live


def vanished_resources(ctx: AwsContext, state: StackState) -> list[ResourceState]:
    """Recorded resources that no longer exist in AWS (deleted outside the engine)."""
    gone = []
    for resource in state.resources.values():
        if not resource.custom:
            continue
        live = _read_live(ctx, resource)
        if live is None:
            gone.append(resource)
    return gone


def _forget(state: StackState, urns: set[str]) -> StackState:
    kept = StackState(state.project, state.stack, state.salt)
    kept.resources = {u: r for u, r in state.resources.items() if u not in urns}
    kept.pending_deletes = list(state.pending_deletes)
    kept.outputs = dict(state.outputs)
    return kept


def plan(
    program_args: Mapping[str, Any],
    *,
    ctx: AwsContext,
    state: StackState,
    account: str,
    execute: bool,
    save: Callable[[StackState], None] | None = None,
    interruption: Interruption | None = None,
) -> tuple[Outcome, list[str]]:
    """Run the program against the state; the outcome and any refusals (nothing refused yet).

    With `save`, the state is recorded even when an AWS call fails midway: what was already
    created, updated or deleted is never forgotten.
    """
    vanished = vanished_resources(ctx, state)
    current = _forget(state, {r.urn for r in vanished})
    engine = DeployEngine(ctx, current, account=account, execute=execute, interruption=interruption)
    run = ProgramRun(outputs=dict(state.outputs))
    try:
        try:
            run = run_program(engine, **program_args, preview=not execute)
        finally:
            if interruption is not None:
                # A registration refused to start: whatever the run raised for it, or if it
                # ended anyway, the program was not applied completely.
                interruption.check()
        engine.finish()
    except Interrupted as exc:
        exc.done = [(step.op, step.urn) for step in engine.steps]
        raise
    finally:
        new_state = engine.new_state(run)
        if save is not None:
            save(new_state)
    outcome = Outcome(
        steps=engine.steps,
        state=new_state,
        notices=form_notices(state.outputs, run.outputs, state),
        run=run,
        vanished=[r.urn for r in vanished],
        existing=engine.existing,
        old=state,
        protect_changes=[
            (urn, resource.protect)
            for urn, resource in new_state.resources.items()
            if urn in state.resources and state.resources[urn].protect != resource.protect
        ],
    )
    return outcome, engine.refusals


def destroy(
    *,
    ctx: AwsContext,
    state: StackState,
    execute: bool,
    save: Callable[[StackState], None] | None = None,
    interruption: Interruption | None = None,
) -> tuple[Outcome, list[str]]:
    """Delete every recorded resource, dependents first; protected ones refuse the whole plan.

    With `save`, what is left is recorded even when a delete fails or a signal stops the run
    between deletes (`interruption`): a deleted resource is never left in the state.
    """
    refusals = [protection_error(r.urn, "delete") for r in state.resources.values() if r.protect]
    order = list(reversed(_depth_order(state.resources)))
    steps = []
    remaining = dict(state.resources)

    def left_state() -> StackState:
        left = StackState(state.project, state.stack, state.salt)
        left.resources = dict(remaining)
        left.outputs = {} if not remaining else dict(state.outputs)
        return left

    acting = execute and not refusals
    try:
        for resource in order:
            if acting and interruption is not None:
                interruption.check()
            if acting and resource.custom and not resource.retain_on_delete:
                handler = handler_for(resource.type, resource.name)
                aws_call(
                    f"deleting {resource.type} {resource.name!r}",
                    handler.delete,
                    ctx,
                    resource.id or "",
                    resource.outputs,
                )
            steps.append(Step(DELETE, resource.urn, resource.type))
            if acting:
                remaining.pop(resource.urn)
    except Interrupted as exc:
        exc.command = "destroy"
        exc.done = [(step.op, step.urn) for step in steps]
        exc.left = [(DELETE, r.type, r.urn) for r in order if r.urn in remaining]
        raise
    finally:
        if acting and save is not None:
            save(left_state())
    return Outcome(steps=steps, state=left_state(), old=state), refusals


@dataclass(frozen=True)
class Drift:
    """One recorded resource compared with AWS: gone, or which inputs differ."""

    urn: str
    type: str
    gone: bool
    changes: tuple[tuple[str, Any, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain data for --json."""
        return {
            "urn": self.urn,
            "type": self.type,
            "gone": self.gone,
            "changes": [{"input": k, "recorded": o, "actual": n} for k, o, n in self.changes],
        }


def refresh(ctx: AwsContext, state: StackState) -> tuple[list[Drift], StackState]:
    """Read every recorded resource back: the drift, and the state rewritten to match AWS."""
    drifts = []
    refreshed = StackState(state.project, state.stack, state.salt)
    refreshed.outputs = dict(state.outputs)
    refreshed.pending_deletes = list(state.pending_deletes)
    for resource in state.resources.values():
        if not resource.custom:
            refreshed.resources[resource.urn] = resource
            continue
        live = _read_live(ctx, resource)
        if live is None:
            drifts.append(Drift(resource.urn, resource.type, gone=True))
            continue
        actual = dict(live.inputs)
        name_property = schema_for(resource.type).name_property
        if name_property and name_property not in resource.inputs:
            # Auto-named: the program never declared a name, so AWS's is not drift.
            actual.pop(name_property, None)
        recorded = _unseal(state, resource.inputs, actual)
        diff = diff_inputs(resource.type, recorded, actual)
        sealed = {k for k, v in resource.inputs.items() if is_sealed(v)}
        if diff.changed:
            drifts.append(
                Drift(
                    resource.urn,
                    resource.type,
                    gone=False,
                    changes=tuple(
                        (
                            k,
                            _masked(recorded.get(k)),
                            "[secret]" if k in sealed else actual.get(k),
                        )
                        for k in diff.diff_reasons
                    ),
                )
            )
        # Keep what the program set that AWS does not echo back (e.g. a region input).
        inputs = {**{k: v for k, v in resource.inputs.items() if k not in diff.diff_reasons}}
        inputs.update({k: actual.get(k) for k in diff.diff_reasons})
        refreshed.resources[resource.urn] = ResourceState(
            urn=resource.urn,
            type=resource.type,
            name=resource.name,
            custom=True,
            id=resource.id,
            inputs=seal_paths(state, {k: v for k, v in inputs.items() if v is not None}, sealed),
            outputs=seal_paths(state, {**resource.outputs, **live.outputs}, sealed),
            protect=resource.protect,
            parent=resource.parent,
            dependencies=resource.dependencies,
            retain_on_delete=resource.retain_on_delete,
        )
    return drifts, refreshed
