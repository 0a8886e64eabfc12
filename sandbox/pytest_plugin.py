"""pytest fixtures: the real program applied to a two-account moto with IAM enforced.

Enable them in a conftest.py with one line::

    pytest_plugins = ["sandbox.pytest_plugin"]

Then `moto_world` is the world (the customer's account and Amplitude's, 358203115967),
`cohort_destination` is the program of `cohort_project_dir` applied to it (config from its
`Pulumi.yaml` defaults, `Pulumi.<cohort_stack>.yaml` — which must exist, as Pulumi requires — the
`cohort_config` fixture, and `@pytest.mark.cohort_config(key=value)`), and `amplitude_session` is
a boto3 session of Amplitude's principal that has assumed the role.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from provisioning import constants as c
from sandbox.engine import DEFAULT_STACK
from sandbox.engine.runner import PROGRAM_DIR, ProgramRun
from sandbox.engine.stack import StackConfig, apply, load_stack_config
from sandbox.world import Credentials, MotoWorld
from sandbox.world import moto_world as _moto_world
from sync.destination import Destination, load_destination

MARKER = "cohort_config"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that overrides stack config for one test."""
    config.addinivalue_line(
        "markers", f"{MARKER}(**values): stack config overrides for the cohort_destination fixture"
    )


@dataclass(frozen=True)
class AppliedDestination:
    """The program applied to a moto world: what `pulumi up` created and exported."""

    world: MotoWorld
    run: ProgramRun
    outputs: Mapping[str, Any]
    destination: Destination

    @property
    def external_id(self) -> str | None:
        """The external ID the trust policy requires, if the stack sets one."""
        value = self.outputs.get(c.OUTPUT_EXTERNAL_ID)
        return str(value) if value is not None else None

    def assume(self, who: Credentials | None = None, external_id: str | None = None) -> Credentials:
        """Assume the role as `who` (Amplitude by default) with the stack's external ID."""
        from sandbox.proof import assume_as

        return assume_as(
            self.world,
            who or self.world.amplitude,
            self.destination.role_arn,
            external_id if external_id is not None else self.external_id,
        )


def apply_destination(
    world: MotoWorld,
    config: StackConfig,
    directory: Path,
    *,
    endpoint_url: str | None = None,
) -> AppliedDestination:
    """Apply the program to `world` as the customer's admin; write and load destination.json.

    What `pulumi up` and `pulumi stack output --json > destination.json` leave a customer with,
    in `directory`; `cohort_destination` is this on the test's own world.
    """
    region = config.region or world.region
    session = world.customer_admin.session(region)
    run = apply(config, session=session, region=region, endpoint_url=endpoint_url)
    outputs_file = directory / "destination.json"
    outputs_file.write_text(json.dumps(run.outputs))
    return AppliedDestination(world, run, run.outputs, load_destination(outputs_file))


@pytest.fixture
def moto_world() -> Iterator[MotoWorld]:
    """The customer's account and Amplitude's, in-process, IAM enforced, restored afterwards."""
    with _moto_world() as world:
        yield world


@pytest.fixture
def cohort_stack() -> str:
    """The stack whose `Pulumi.<stack>.yaml` configures `cohort_destination` (default `dev`)."""
    return DEFAULT_STACK


@pytest.fixture
def cohort_project_dir() -> Path:
    """Where `Pulumi.yaml`, the stack files and `__main__.py` live (default: this project's)."""
    return PROGRAM_DIR


@pytest.fixture
def cohort_config() -> dict[str, Any]:
    """Stack config overrides (override this fixture, or use the cohort_config marker)."""
    return {}


@pytest.fixture
def cohort_destination(
    request: pytest.FixtureRequest,
    moto_world: MotoWorld,
    cohort_stack: str,
    cohort_project_dir: Path,
    cohort_config: dict[str, Any],
    tmp_path: Path,
) -> AppliedDestination:
    """The unmodified program applied to `moto_world` by the customer's admin."""
    overrides = {key: _text(value) for key, value in cohort_config.items()}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        overrides.update({key: _text(value) for key, value in marker.kwargs.items()})
    config = load_stack_config(cohort_stack, project_dir=cohort_project_dir, overrides=overrides)
    return apply_destination(moto_world, config, tmp_path)


@pytest.fixture
def amplitude_session(cohort_destination: AppliedDestination) -> boto3.Session:
    """Amplitude's principal, having assumed the destination's role."""
    assumed = cohort_destination.assume()
    return assumed.session(cohort_destination.destination.region)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
