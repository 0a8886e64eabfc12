"""Errors raised while reading or applying the destination's configuration."""

import pulumi


class ProvisioningError(Exception):
    """Base class for everything provisioning/ raises on purpose."""


class ConfigError(ProvisioningError, pulumi.RunError):
    """Stack configuration breaks one or more of AWS's rules; lists every problem found.

    A RunError, so `pulumi up` prints the message alone, not a traceback of the program.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid stack configuration ({len(self.problems)} {noun}):\n{lines}")
