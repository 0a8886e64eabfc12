"""Run the unmodified Pulumi program offline under Pulumi's mock runtime and collect its outputs."""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime import stack as pulumi_stack
from pulumi.runtime.sync_await import _sync_await

from provisioning import constants as c

_CHECKOUT = Path(__file__).resolve().parents[2]
# This project's program: the checkout's root when run from one, else the copy the wheel ships
# (sandbox/project holds symlinks to the root's Pulumi.yaml and __main__.py, resolved at build).
PROGRAM_DIR = (
    _CHECKOUT
    if (_CHECKOUT / "Pulumi.yaml").exists()
    else Path(__file__).resolve().parents[1] / "project"
)


@dataclass(frozen=True)
class Registration:
    """One resource the program registered: what it asked for and what came back."""

    type: str
    name: str
    parent_type: str | None
    inputs: Mapping[str, Any]
    id: str | None
    state: Mapping[str, Any]


@dataclass(frozen=True)
class RegistrationOptions:
    """A registration's URN and resource options, which Pulumi's Mocks interface never sees."""

    urn: str
    parent_urn: str | None
    dependencies: tuple[str, ...]
    protect: bool = False
    import_id: str | None = None
    retain_on_delete: bool = False
    delete_before_replace: bool = False


@dataclass
class ProgramRun:
    """What running the program produced: its resources in order and its stack outputs."""

    resources: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Registration]:
        """Registrations of one resource type, in declaration order."""
        return [r for r in self.resources if r.type == type_]


def _urn_key(urn: str) -> tuple[str, str]:
    """(type, name) from a URN such as `urn:pulumi:stack::project::parent$type::name`."""
    qualified_type, name = urn.split("::")[-2:]
    return qualified_type.split("$")[-1], name


def pulumi_urn(parent_urn: str, type_: str, name: str) -> str:
    """The URN the Pulumi engine gives a resource: parent types chained, the Stack left out."""
    qualified = type_
    if parent_urn:
        parent_qualified = parent_urn.split("::")[2]
        if parent_qualified != "pulumi:pulumi:Stack":
            qualified = f"{parent_qualified}${type_}"
    return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), qualified, name])


class _RecordingMocks(pulumi.runtime.Mocks):
    """Forwards to a backend Mocks and records what each registration returned."""

    def __init__(self, backend: pulumi.runtime.Mocks) -> None:
        self._backend = backend
        self.options: dict[tuple[str, str], RegistrationOptions] = {}
        self.created: dict[tuple[str, str], tuple[dict[str, Any], str | None, dict[str, Any]]] = {}

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        with_options = getattr(self._backend, "new_resource_with_options", None)
        if with_options is not None:
            resource_id, state = with_options(args, self.options[(args.typ, args.name)])
        else:
            resource_id, state = self._backend.new_resource(args)
        self.created[(args.typ, args.name)] = (dict(args.inputs), resource_id, dict(state))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return self._backend.call(args)


@contextmanager
def _thread_loop_closed_after() -> Iterator[None]:
    """Give a thread without an event loop one for the block, and close it after.

    MockMonitor's calls run on the SDK's executor threads and set an event loop there
    (`pulumi.runtime.sync_await._ensure_event_loop`) that nothing closes. Such a loop lives as
    long as its thread; when an interrupt ends the process with those threads still up, the
    loop's finalizer runs after its socket's and prints "Exception ignored … Invalid file
    descriptor: -1" under the interrupt message.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
        owned = None  # this thread has a loop already; whoever set it closes it
    except RuntimeError:
        owned = asyncio.new_event_loop()
        policy.set_event_loop(owned)
    try:
        yield
    finally:
        if owned is not None:
            policy.set_event_loop(None)
            owned.close()


class _Monitor(pulumi_mocks.MockMonitor):
    """Records each registration's parent and dependencies, which Mocks never sees.

    Registrations arrive concurrently from the SDK's thread pool, so nothing here relies on
    their arrival order.
    """

    def __init__(self, mocks: _RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.meta: dict[tuple[str, str], tuple[str | None, frozenset[tuple[str, str]]]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the Pulumi engine makes them (MockMonitor's own chain in the Stack's type)."""
        return pulumi_urn(parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            parent = _urn_key(request.parent)[0] if request.parent else None
            deps = frozenset(_urn_key(urn) for urn in request.dependencies)
            self.meta[(request.type, request.name)] = (parent, deps)
            # Recorded before the Mocks call, which runs inside super().RegisterResource.
            self.recording.options[(request.type, request.name)] = RegistrationOptions(
                urn=pulumi_urn(request.parent, request.type, request.name),
                parent_urn=request.parent or None,
                dependencies=tuple(sorted(set(request.dependencies))),
                protect=bool(request.protect),
                import_id=request.importId or None,
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        with _thread_loop_closed_after():
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def Invoke(self, request: Any) -> Any:
        with _thread_loop_closed_after():
            return super().Invoke(request)  # type: ignore[no-untyped-call]

    def registrations(self) -> list[Registration]:
        """Every registration, dependencies before dependents, ties broken by name."""
        level: dict[tuple[str, str], int] = {}

        def depth(key: tuple[str, str]) -> int:
            if key not in level:
                level[key] = 0  # guards against cycles, which Pulumi would reject anyway
                deps = [d for d in self.meta[key][1] if d in self.meta]
                level[key] = 1 + max((depth(d) for d in deps), default=-1)
            return level[key]

        ordered = sorted(self.meta, key=lambda key: (depth(key), key[1], key[0]))
        result = []
        for key in ordered:
            parent, _ = self.meta[key]
            inputs, resource_id, state = self.recording.created.get(key, ({}, None, {}))
            result.append(Registration(key[0], key[1], parent, inputs, resource_id, state))
        return result


async def _drain_rpcs() -> None:
    manager = pulumi_settings._get_rpc_manager()
    while manager.rpcs:
        await asyncio.sleep(0)
        rpc = manager.rpcs.pop()
        try:
            await rpc
        except Exception:  # noqa: BLE001 - the run's first failure is already propagating
            continue


def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    resolved = _sync_await(output.future())
    secret = bool(_sync_await(output.is_secret()))
    return resolved, secret


def run_program(
    backend: pulumi.runtime.Mocks,
    *,
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: tuple[str, ...] = (),
    program: Path | None = None,
    project: str = c.PROJECT_NAME,
    preview: bool = False,
) -> ProgramRun:
    """Execute `__main__.py` as `pulumi up` would, with `backend` standing in for the engine.

    `config` uses the program's own (unprefixed) keys; provider keys such as `aws:region` keep
    their namespace. Each run has a fresh Pulumi runtime context, so runs never share state.
    """
    run = ProgramRun()
    path = program or PROGRAM_DIR / "__main__.py"

    def execute() -> None:
        monitor = _Monitor(_RecordingMocks(backend))
        pulumi.runtime.set_mocks(
            monitor.recording, project=project, stack=stack, preview=preview, monitor=monitor
        )
        # set_mocks leaves the outstanding-outputs set at its shared default; a failed run's
        # tasks would stay in it and fail the next run with a stale error.
        pulumi_settings.SETTINGS.outputs = set()
        full = {
            (k if ":" in k else f"{project}:{k}"): _config_text(v)
            for k, v in (config or {}).items()
        }
        secrets = [k if ":" in k else f"{project}:{k}" for k in secret_keys]
        pulumi.runtime.set_all_config(full, secrets)
        root = pulumi_settings.get_root_resource()
        assert root is not None
        try:
            runpy.run_path(str(path), run_name="__main__")
            outputs = dict(getattr(root, "outputs", {}))
            resolved = {key: _resolve(value) for key, value in outputs.items()}
            # Resources nobody exports (the attachment) may still be registering: wait for all.
            _sync_await(pulumi_stack.wait_for_rpcs())
        finally:
            # Even after a failure, let every registration already under way finish, so no
            # engine call outlives this run (it would act on whatever AWS the caller uses next).
            _sync_await(_drain_rpcs())
            run.resources.extend(monitor.registrations())
        for key, (value, secret) in resolved.items():
            run.outputs[key] = value
            if secret:
                run.secret_outputs.add(key)

    def isolated() -> None:
        # A fresh event loop per run: a failed run leaves tasks waiting on Outputs that never
        # resolve, and on a shared loop the next run would resume them against its own AWS.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            execute()
        finally:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()
            asyncio.set_event_loop(None)

    contextvars.Context().run(isolated)
    return run


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
