"""No stack config can widen who gets in: a wildcard or a second principal is refused.

Pure: the config parser alone. Each rule's message is tests/provisioning/test_config.py's; these
are the values an attacker or a hurried admin would try to widen the grant with (a bare `*` as
the account is there already). The rest of what config cannot widen is tests/test_security.py's.
"""

from __future__ import annotations

import pytest

from provisioning import constants as c
from provisioning.config import parse_config
from provisioning.errors import ConfigError


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        (c.CONFIG_TRUSTED_ACCOUNT_ID, "123456789012 or *", "must be a 12-digit AWS account ID"),
        (c.CONFIG_TRUSTED_ACCOUNT_ID, "123456789012,*", "must be a 12-digit AWS account ID"),
        (
            c.CONFIG_TRUSTED_ACCOUNT_ID,
            "arn:aws:iam::123456789012:root",
            "must be a 12-digit AWS account ID",
        ),
        (c.CONFIG_TRUSTED_ACCOUNT_ID, "12345678901*", "must be a 12-digit AWS account ID"),
        (c.CONFIG_STREAM_NAME, "*", "only [a-zA-Z0-9_.-] allowed"),
        (c.CONFIG_STREAM_NAME, "cohorts*", "only [a-zA-Z0-9_.-] allowed"),
        (c.CONFIG_ROLE_NAME, "amplitude*", r"only [\w+=,.@-] allowed"),
        (c.CONFIG_KMS_KEY_ARN, "*", "must be a KMS key ARN"),
        (c.CONFIG_PERMISSIONS_BOUNDARY_ARN, "*", "must be a managed policy ARN"),
    ],
)
def test_a_wildcard_or_a_second_principal_cannot_be_configured(
    key: str, value: str, rule: str
) -> None:
    raw = {key: value}
    if key == c.CONFIG_KMS_KEY_ARN:
        raw[c.CONFIG_ENCRYPTION] = "KMS"

    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "dev")

    assert f"{key} {value!r}: " in str(caught.value)
    assert rule in str(caught.value)


@pytest.mark.parametrize("value", ["*", "ext-*", "ext-?", "a*b*c"])
def test_an_external_id_with_a_wildcard_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"externalId \(secret, \d+ characters\): 2-1224"):
        parse_config({c.CONFIG_EXTERNAL_ID: value}, "dev")
