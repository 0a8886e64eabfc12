"""The stack's config as the Pulumi runtime holds it: every key read, unknown ones refused.

Pulumi passes a program every key the stack file sets, typos included, and a program that reads
only the keys it knows would silently ignore `externalID` (so the role would trust Amplitude
without the external-ID condition). This reads the whole namespace of the project and of the AWS
provider, the same way under `pulumi up` (the language host's config) and under the local engine
(the mocks' config), and refuses what neither declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pulumi
import pulumi_aws
from pulumi.runtime import config as runtime_config

from provisioning import aws_rules
from provisioning.config import DestinationConfig, parse_config, unknown_key_problems
from provisioning.errors import ConfigError

AWS_NAMESPACE: Final = "aws"
AWS_REGION_KEY: Final = "region"


def provider_keys() -> tuple[str, ...]:
    """The `aws:` keys pulumi-aws reads, from its generated config module (never a hand list)."""
    # Read as text: importing pulumi_aws.config on its own trips pulumi-aws's lazy-import cycle.
    source = (Path(pulumi_aws.__file__).parent / "config" / "vars.py").read_text()
    return tuple(sorted(set(re.findall(r"__config__\.get\w*\('([^']+)'\)", source))))


def namespace(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The keys of one namespace (`project:key` → `key`)."""
    prefix = f"{name}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}


def runtime_values() -> dict[str, Any]:
    """Every config value the runtime has: the language host's environment, then what was set."""
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def provider_problems(provider: Mapping[str, Any]) -> list[str]:
    """Unknown `aws:` keys, and a region AWS would answer with no endpoint."""
    known = list(provider_keys())
    problems = unknown_key_problems(
        [key for key in provider if key not in known], known, namespace=f"{AWS_NAMESPACE}:"
    )
    region = provider.get(AWS_REGION_KEY)
    if region:
        problem = aws_rules.region_problem(str(region))
        if problem is not None:
            problems.append(f"{AWS_NAMESPACE}:{AWS_REGION_KEY} {region!r}: {problem}")
    return problems


def read_stack_config(
    project_dir: Path, values: Mapping[str, Any] | None = None
) -> DestinationConfig:
    """The program's config, parsed once from the runtime's: every problem in one ConfigError."""
    everything = runtime_values() if values is None else values
    provider = namespace(everything, AWS_NAMESPACE)
    problems = provider_problems(provider)
    region = provider.get(AWS_REGION_KEY) or None  # the environment's is checked by the provider
    try:
        config = parse_config(
            namespace(everything, pulumi.get_project()),
            stack=pulumi.get_stack(),
            project_dir=project_dir,
            region=None if problems else region,
        )
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return config
