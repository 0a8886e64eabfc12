"""Errors the sandbox raises on purpose: the local engine's, beside the program's ConfigError."""

from provisioning.errors import ProvisioningError


class SandboxError(ProvisioningError):
    """Base class for everything sandbox/ raises on purpose."""


class UnsupportedResourceError(SandboxError):
    """The local apply engine met a resource type or invoke it does not know how to create."""


class ApplyError(SandboxError):
    """AWS refused a call while creating a resource; names the resource and the cause."""
