"""Stack config from `Pulumi.yaml`, `Pulumi.<stack>.yaml` and overrides; preview and apply.

`apply` is a first `pulumi up` of the stack: the stateful engine (`sandbox.engine.deploy`) with an
empty state, exactly as `cohort-sync local up` runs it, so `protect`, `import_` and every
provider call are the same in the fixtures, `demo` and the CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from provisioning import constants as c
from provisioning.errors import ConfigError
from sandbox.engine import deploy
from sandbox.engine.handler import AwsContext
from sandbox.engine.plan import PlanMocks
from sandbox.engine.runner import PROGRAM_DIR, ProgramRun, run_program
from sandbox.engine.state import StackState
from sandbox.errors import ApplyError

REGION_KEY = "aws:region"
SECRET_ENV_PREFIX = "COHORT_SECRET_"


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as the program sees it: unprefixed project keys, provider keys as-is."""

    stack: str
    values: Mapping[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()
    project: str = c.PROJECT_NAME
    program: Path = PROGRAM_DIR / "__main__.py"

    @property
    def region(self) -> str | None:
        """The `aws:region` the stack deploys to, when the stack sets one."""
        value = self.values.get(REGION_KEY)
        return str(value) if value else None


def secret_env_var(key: str) -> str:
    """The environment variable that supplies a secret the stack file only holds encrypted."""
    return f"{SECRET_ENV_PREFIX}{key}"


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` strings from `--config`, each checked for its `=`."""
    overrides: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            problems.append(f"--config {pair!r}: must be key=value")
            continue
        overrides[key.strip()] = value
    if problems:
        raise ConfigError(problems)
    return overrides


# libyaml's loader where PyYAML was built with it (its wheels are): the pure-Python one spent
# 10 s of CPU in one suite run reading Pulumi.yaml.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, name: str) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: not valid YAML ({exc})"]) from exc


def _project_file(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "Pulumi.yaml"
    if not path.exists():
        raise ConfigError([f"{path}: no Pulumi project file (is this the project directory?)"])
    document = _read_yaml(path, str(path))
    if not isinstance(document, dict) or not document.get("name"):
        raise ConfigError([f"{path}: a Pulumi project file needs a `name`"])
    return document


def _declared_config(project: Mapping[str, Any]) -> dict[str, Any]:
    return dict(project.get("config") or {})


def _program(project_dir: Path, document: Mapping[str, Any]) -> Path:
    """The `__main__.py` Pulumi would run: in the project directory, or under its `main`."""
    program = project_dir / str(document.get("main") or ".") / "__main__.py"
    if not program.exists():
        raise ConfigError(
            [f"{program}: no program; Pulumi runs the project's __main__.py (or its `main`)"]
        )
    return program.resolve()


def _stack_file(project_dir: Path, stack: str) -> Path:
    """`Pulumi.<stack>.yaml`, which must exist: Pulumi refuses a stack it does not know."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise ConfigError(
            [
                f"--stack {stack}: {path} does not exist (Pulumi refuses a stack it does not "
                f"know); create it with `pulumi stack init {stack}` and `pulumi config set "
                f"...`, or write it by hand, or pick an existing stack"
                + (f" ({', '.join(known)})" if known else "")
            ]
        )
    return path


def _declared_value(entry: Any) -> Any:
    """What Pulumi passes for a declared key the stack leaves unset: `default`, else `value`."""
    if not isinstance(entry, dict):
        return entry  # the short form, `key: value`
    return entry.get("default", entry.get("value"))


def project_defaults(project_dir: Path = PROGRAM_DIR) -> dict[str, Any]:
    """The `default` of every key `Pulumi.yaml` declares, as the Pulumi CLI passes them."""
    return _defaults(_declared_config(_project_file(project_dir)))


def _defaults(declared: Mapping[str, Any]) -> dict[str, Any]:
    defaults = {}
    for key, entry in declared.items():
        value = _declared_value(entry)
        if value is not None:
            defaults[key] = value if isinstance(value, str) else json.dumps(value)
    return defaults


def _required_keys(declared: Mapping[str, Any]) -> list[str]:
    """Project keys declared with neither default nor value: every stack must set them."""
    return sorted(
        key for key, entry in declared.items() if ":" not in key and _declared_value(entry) is None
    )


def load_stack_config(
    stack: str,
    *,
    project_dir: Path = PROGRAM_DIR,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> StackConfig:
    """Project defaults, then `Pulumi.<stack>.yaml` (which must exist), then overrides.

    Values the stack file holds encrypted must be supplied by override or environment.
    """
    environ = os.environ if environ is None else environ
    project = _project_file(project_dir)
    program = _program(project_dir, project)
    path = _stack_file(project_dir, stack)
    document = _read_yaml(path, path.name)
    raw_config = document.get("config", {}) if isinstance(document, dict) else None
    if not isinstance(raw_config, dict):
        raise ConfigError([f"{path.name} config: must be a mapping of keys to values"])

    declared = _declared_config(project)
    values: dict[str, Any] = _defaults(declared)
    secret_keys: set[str] = set()
    problems: list[str] = []
    # Pulumi namespaces a project's keys by the project's name, which a customer's copy may change.
    prefix = f"{project['name']}:"
    for full_key, value in raw_config.items():
        key = full_key[len(prefix) :] if full_key.startswith(prefix) else full_key
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.add(key)
            supplied = (overrides or {}).get(key, environ.get(secret_env_var(key)))
            if supplied is None:
                problems.append(
                    f"{key} (secret in {path.name}): the file holds it encrypted and only the "
                    f"Pulumi CLI can decrypt it; supply it with --config {key}=... or "
                    f"${secret_env_var(key)}"
                )
                continue
            value = supplied
        values[key] = value
    for key, value in (overrides or {}).items():
        if ":" not in key and key not in declared:
            # Pulumi ignores undeclared keys, so a typo would silently drop the setting. The
            # value is not shown: it may be a secret given under a misspelt key.
            problems.append(
                f"--config {key}: Pulumi.yaml declares no such key (Pulumi would ignore it); "
                f"known keys are {', '.join(sorted(declared))}"
            )
            continue
        values[key] = value
    for key in _required_keys(declared):
        if key not in values and key not in secret_keys:
            problems.append(
                f"{key}: Pulumi.yaml declares it without a default, so stack {stack!r} must set "
                "it (the Pulumi CLI refuses to run without it)"
            )
    if c.CONFIG_EXTERNAL_ID in values:
        # The external ID is a shared secret whether or not the stack file encrypted it.
        secret_keys.add(c.CONFIG_EXTERNAL_ID)
    if problems:
        raise ConfigError(problems)
    return StackConfig(
        stack=stack,
        values=values,
        secret_keys=frozenset(secret_keys),
        project=str(project["name"]),
        program=program,
    )


def preview(config: StackConfig, *, region: str) -> ProgramRun:
    """Run the program against placeholders: what would be created, with nothing created."""
    return run_program(
        PlanMocks(region),
        stack=config.stack,
        config=config.values,
        secret_keys=tuple(config.secret_keys),
        program=config.program,
        project=config.project,
        preview=True,
    )


def apply(
    config: StackConfig,
    *,
    session: boto3.Session,
    region: str,
    endpoint_url: str | None = None,
) -> ProgramRun:
    """A first `up` of the stack: create (or import) what it declares; the program's run."""
    ctx = AwsContext(session, region, endpoint_url)
    account = deploy.aws_call(
        "reading the caller's account (sts:GetCallerIdentity)",
        lambda: ctx.client("sts").get_caller_identity()["Account"],
    )
    outcome, refusals = deploy.plan(
        program_args(config),
        ctx=ctx,
        state=StackState(project=config.project, stack=config.stack),
        account=str(account),
        execute=True,
    )
    if refusals:
        raise ApplyError("\n".join(refusals))
    assert outcome.run is not None
    return outcome.run


def program_args(config: StackConfig) -> dict[str, Any]:
    """How `run_program` receives this stack's config."""
    return {
        "stack": config.stack,
        "config": config.values,
        "secret_keys": tuple(config.secret_keys),
        "program": config.program,
        "project": config.project,
    }
