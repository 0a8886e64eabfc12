"""The classifier decides retry or refusal; the fix table only words refusals."""

from __future__ import annotations

import pytest

from sync.kinesis_errors import (
    FATAL_CODES,
    FIXES,
    THROTTLE_CODES,
    TRANSIENT_CODES,
    Verdict,
    fix_for,
    record_verdict,
    request_verdict,
)

pytestmark = pytest.mark.unit

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"


def test_every_fatal_code_has_a_fix_and_every_fix_a_fatal_code() -> None:
    assert set(FIXES) == set(FATAL_CODES)


@pytest.mark.parametrize("code", sorted(FATAL_CODES - {"ExpiredToken", "ExpiredTokenException"}))
def test_fatal_codes_stop_the_delivery_with_their_fix(code: str) -> None:
    assert request_verdict(code) is Verdict.FATAL
    assert record_verdict(code) is Verdict.FATAL
    assert "{" not in fix_for(code, STREAM)


@pytest.mark.parametrize(
    ("code", "whole_request", "one_record"),
    [
        ("ProvisionedThroughputExceededException", Verdict.THROTTLED, Verdict.THROTTLED),
        ("InternalFailure", Verdict.TRANSIENT, Verdict.TRANSIENT),
        ("ExpiredTokenException", Verdict.EXPIRED, Verdict.FATAL),
        # An unknown code: a whole request is refused, one record of a batch retried.
        ("SomethingNew", Verdict.FATAL, Verdict.TRANSIENT),
    ],
)
def test_the_verdicts(code: str, whole_request: Verdict, one_record: Verdict) -> None:
    assert (request_verdict(code), record_verdict(code)) == (whole_request, one_record)


def test_the_retried_sets_and_the_fatal_set_do_not_overlap() -> None:
    assert not (THROTTLE_CODES | TRANSIENT_CODES) & FATAL_CODES


def test_an_unknown_code_is_refused_with_the_aws_message_as_its_fix() -> None:
    assert fix_for("SomethingNew", STREAM) == (
        f"unexpected refusal for {STREAM}: see the AWS error message"
    )
