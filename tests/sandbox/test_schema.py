"""The update-vs-replace table: pure comparisons, as the provider's plan makes them."""

import json

import pytest

from sandbox.engine.schema import (
    ATTACHMENT,
    POLICY,
    ROLE,
    STREAM,
    delete_before_replace,
    diff_inputs,
    schema_for,
)
from sandbox.errors import UnsupportedResourceError

DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["a:B", "a:C"], "Resource": "arn:x"}],
}


@pytest.mark.parametrize(
    ("token", "key", "op"),
    [
        (STREAM, "name", "replace"),
        (STREAM, "retentionPeriod", "update"),
        (STREAM, "shardCount", "update"),
        (STREAM, "encryptionType", "update"),
        (ROLE, "name", "replace"),
        (ROLE, "path", "replace"),
        (ROLE, "maxSessionDuration", "update"),
        (ROLE, "permissionsBoundary", "update"),
        (POLICY, "description", "replace"),
        (POLICY, "path", "replace"),
        (POLICY, "tags", "update"),
        (ATTACHMENT, "role", "replace"),
        (ATTACHMENT, "policyArn", "replace"),
    ],
)
def test_a_changed_input_updates_or_replaces_as_the_schema_says(
    token: str, key: str, op: str
) -> None:
    diff = diff_inputs(token, {key: "old"}, {key: "new"})

    assert diff.diff_reasons == (key,)
    assert diff.replace_reasons == ((key,) if op == "replace" else ())


def test_equivalent_policy_documents_are_no_change() -> None:
    reordered = {
        "Statement": [{"Resource": ["arn:x"], "Action": ["a:C", "a:B"], "Effect": "Allow"}],
        "Version": "2012-10-17",
    }

    assert not diff_inputs(
        POLICY, {"policy": json.dumps(DOC)}, {"policy": json.dumps(reordered)}
    ).changed
    widened = {
        **DOC,
        "Statement": [*DOC["Statement"], {"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    assert diff_inputs(
        POLICY, {"policy": json.dumps(DOC)}, {"policy": json.dumps(widened)}
    ).diff_reasons == ("policy",)


def test_an_unset_input_equals_the_providers_default() -> None:
    assert not diff_inputs(STREAM, {"retentionPeriod": 24}, {}).changed
    assert not diff_inputs(
        ROLE, {"maxSessionDuration": 3600.0}, {"maxSessionDuration": 3600}
    ).changed
    assert not diff_inputs(STREAM, {"tags": {}}, {"tags": None}).changed


def test_an_input_nobody_declared_updatable_replaces() -> None:
    assert diff_inputs(STREAM, {}, {"someNewInput": "x"}).replace_reasons == ("someNewInput",)


def test_a_fixed_name_deletes_before_replacing_an_auto_name_does_not() -> None:
    assert delete_before_replace(STREAM, {"name": "cohorts"})
    assert delete_before_replace(POLICY, {"name": "fixed"})
    assert not delete_before_replace(POLICY, {"policy": "{}"})
    assert not delete_before_replace(ATTACHMENT, {"role": "r", "policyArn": "arn"})
    assert delete_before_replace(ATTACHMENT, {}, option=True)


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnsupportedResourceError, match="aws:s3/bucketV2:BucketV2"):
        schema_for("aws:s3/bucketV2:BucketV2")
