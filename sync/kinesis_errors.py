"""Kinesis's error codes: which are retried, which end the delivery, and what fixes those.

The classifier (`record_verdict`, `request_verdict`) decides retry or refusal from the code
sets alone; the fix table (`fix_for`) only words the refusal. Codes are from the Kinesis
PutRecords API reference (per-record ErrorCode, whole-request errors) and botocore's common
service errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

# Per-record ErrorCodes Kinesis documents for PutRecords; both are worth another try.
RETRYABLE_RECORD_CODES = frozenset({"ProvisionedThroughputExceededException", "InternalFailure"})
# Whole-request codes that mean "too fast": counted as throttles, retried after backoff.
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "KMSThrottlingException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
# Whole-request codes for transient service trouble: retried after backoff, not throttles.
TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Whole-request codes a fresh session fixes, when the caller says how to get one.
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken"})
# Whole-request (and per-record) codes no retry can fix: the delivery stops, the records stay.
FATAL_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "ResourceNotFoundException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSNotFoundException",
        "KMSInvalidStateException",
        "KMSOptInRequired",
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ValidationException",
        "InvalidArgumentException",
    }
)


class Verdict(StrEnum):
    """What to do with records a code refused."""

    THROTTLED = "retry after backoff, counted as a throttle"
    TRANSIENT = "retry after backoff"
    EXPIRED = "renew the session, then retry"
    FATAL = "stop: no retry can fix it"


def record_verdict(code: str) -> Verdict:
    """A per-record ErrorCode's verdict: codes not known to be fatal are worth another try."""
    if code in THROTTLE_CODES:
        return Verdict.THROTTLED
    if code in RETRYABLE_RECORD_CODES or code not in FATAL_CODES:
        return Verdict.TRANSIENT
    return Verdict.FATAL


def request_verdict(code: str) -> Verdict:
    """A whole-request error code's verdict: codes not known to be passing are fatal."""
    if code in THROTTLE_CODES:
        return Verdict.THROTTLED
    if code in TRANSIENT_CODES:
        return Verdict.TRANSIENT
    if code in EXPIRED_CODES:
        return Verdict.EXPIRED
    return Verdict.FATAL


def is_known(code: str) -> bool:
    """True for a code either set names (an unknown 5xx code is then taken as transient)."""
    return code in THROTTLE_CODES or code in TRANSIENT_CODES or code in FATAL_CODES


_PUT = "kinesis:PutRecords"
_ACCESS_FIX = "role lacks {action} on {stream}: re-run `pulumi up` / check the policy attachment"
_TOKEN_FIX = (
    "the session's credentials expired and could not be refreshed: build the session with "
    "sync.credentials.assume_role_session so it refreshes, and check the role can still be assumed"
)
_CREDENTIALS_FIX = "the credentials are not valid for this account or endpoint: check the session"
_INVALID_FIX = "the request was rejected as invalid: check the stream name or ARN and record sizes"
# What the operator should do about each fatal code; {stream} and {action} are filled in. Only
# messages: which codes are fatal is FATAL_CODES' to say.
FIXES: Mapping[str, str] = {
    "AccessDeniedException": _ACCESS_FIX,
    "AccessDenied": _ACCESS_FIX,
    "ResourceNotFoundException": (
        "stream {stream} not found: check the destination's region and stream name, "
        "or re-run `pulumi up`; a re-created stream is empty, so `replay` what is pending, "
        "then push with --resend-all so consumers get the whole cohort again"
    ),
    "KMSAccessDeniedException": (
        "role lacks kms:GenerateDataKey on the KMS key of {stream}: grant it in the key policy "
        "or the role policy (re-run `pulumi up`)"
    ),
    "KMSDisabledException": "the KMS key of {stream} is disabled: enable it",
    "KMSNotFoundException": "the KMS key of {stream} no longer exists: re-encrypt the stream",
    "KMSInvalidStateException": (
        "the KMS key of {stream} is not usable (pending deletion?): cancel deletion or re-key"
    ),
    "KMSOptInRequired": "the account has not subscribed to KMS: subscribe, then retry",
    "ExpiredTokenException": _TOKEN_FIX,
    "ExpiredToken": _TOKEN_FIX,
    "UnrecognizedClientException": _CREDENTIALS_FIX,
    "InvalidSignatureException": _CREDENTIALS_FIX,
    "ValidationException": _INVALID_FIX,
    "InvalidArgumentException": _INVALID_FIX,
}
_UNKNOWN_FIX = "unexpected refusal for {stream}: see the AWS error message"


def fix_for(code: str, stream: str) -> str:
    """What the operator should do about a refusal with `code` on `stream`."""
    return FIXES.get(code, _UNKNOWN_FIX).format(action=_PUT, stream=stream)
