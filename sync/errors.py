"""The sync engine's errors; every one names the input, the value and the rule it broke."""


class SyncError(Exception):
    """Base class for everything sync/ raises on purpose."""

    # What to do about it, for `--json`'s {"error", "fix"}; subclasses and raisers refine it.
    fix = "correct the input the message names, then run the command again"
    # 2: refused, nothing changed; 1: something was staged and is left for a later run.
    exit_code = 2

    def __init__(
        self, message: str = "", *, fix: str | None = None, exit_code: int | None = None
    ) -> None:
        super().__init__(message)
        if fix is not None:
            self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code


class DestinationError(SyncError):
    """The destination file (stack outputs) is missing, unreadable or incomplete."""

    fix = (
        "re-export it: `pulumi stack output --json --show-secrets` or `cohort-sync local up --out`"
    )


class SnapshotError(SyncError):
    """A cohort snapshot failed validation; nothing from it was published."""

    fix = "correct the listed lines of the snapshot, then push it again"


class InputError(SyncError):
    """A command-line value (cohort id or name, a delivery option) breaks its documented rule."""


class MassExitError(SyncError):
    """A push would remove more of a cohort's members than the mass-exit guard allows."""

    fix = "check the snapshot is complete; if the exits are real, pass --allow-mass-exit"


class RecordLimitError(SyncError):
    """A record, its partition key or a PutRecords request would exceed a Kinesis limit."""


class ContractError(SyncError):
    """A record does not follow Amplitude's cohort payload contract."""


class PreflightError(SyncError):
    """The role cannot be assumed, or lacks a permission Amplitude checks before delivering."""

    fix = "grant the role what the failed checks name (re-apply the stack), then run again"


class DeliveryError(SyncError):
    """Kinesis refused records for good, or they exhausted their tries; they stay in the outbox."""


class StateError(SyncError):
    """The local state store is unreadable, or belongs to another destination or cohort."""


class StorageError(StateError):
    """The disk refused a write to the state (full, over quota or a size limit, I/O error)."""


class ConsumerError(SyncError):
    """The consumer cannot read the stream (missing, access denied, bad checkpoint)."""


class DeliveryRefusedError(DeliveryError):
    """Kinesis refused a request for a reason retrying cannot fix; `.unsent` lists what is left."""

    def __init__(self, message: str, *, code: str, stream: str, unsent: tuple[str, ...]) -> None:
        super().__init__(message, fix="fix the cause the message names, then `cohort-sync replay`")
        self.code = code
        self.stream = stream
        self.unsent = unsent


class ReportedError(SyncError):
    """A refusal the command has already printed (as JSON); only its exit code 2 remains."""
