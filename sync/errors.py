"""The sync engine's errors; every one names the input, the value and the rule it broke."""


class SyncError(Exception):
    """Base class for everything sync/ raises on purpose."""


class DestinationError(SyncError):
    """The destination file (stack outputs) is missing, unreadable or incomplete."""


class SnapshotError(SyncError):
    """A cohort snapshot failed validation; nothing from it was published."""


class ContractError(SyncError):
    """A record does not follow Amplitude's cohort payload contract."""


class PreflightError(SyncError):
    """The role cannot be assumed, or lacks a permission Amplitude checks before delivering."""


class DeliveryError(SyncError):
    """Kinesis refused records for good, or they exhausted their tries; they stay in the outbox."""


class StateError(SyncError):
    """The local state store is unreadable, or belongs to another destination or cohort."""


class ConsumerError(SyncError):
    """The consumer cannot read the stream (missing, access denied, bad checkpoint)."""


class DeliveryRefusedError(DeliveryError):
    """Kinesis refused a request for a reason retrying cannot fix; `.unsent` lists what is left."""

    def __init__(self, message: str, *, code: str, stream: str, unsent: tuple[str, ...]) -> None:
        super().__init__(message)
        self.code = code
        self.stream = stream
        self.unsent = unsent
