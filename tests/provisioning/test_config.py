"""Stack config validation: AWS's rules, every problem reported at once, secrets never echoed."""

import pytest

from provisioning import constants as c
from provisioning.config import parse_config
from provisioning.errors import ConfigError
from provisioning.kms import key_account_problem

CMK = "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"


def test_defaults_follow_amplitudes_setup() -> None:
    config = parse_config({}, stack="prod")

    assert config.stream_name == "amplitude-cohorts"
    assert config.stream_mode == "ON_DEMAND"
    assert config.shard_count is None
    assert config.retention_hours == 24
    assert config.encryption == "AWS_MANAGED"
    assert config.role_name == "amplitude-kinesis-cohort"
    assert config.role_path == "/"
    assert config.max_session_seconds == 3600
    assert config.trusted_account_id == c.AMPLITUDE_ACCOUNT_ID == "358203115967"
    assert config.trusted_principal_arn == "arn:aws:iam::358203115967:root"
    assert config.external_id is None
    assert config.display_name == "Kinesis cohorts (prod)"
    assert dict(config.tags) == {}


def test_values_come_as_pulumi_config_strings() -> None:
    config = parse_config(
        {
            "streamMode": "PROVISIONED",
            "shardCount": "3",
            "retentionHours": "168",
            "encryption": "KMS",
            "kmsKeyArn": CMK,
            "maxSessionSeconds": "43200",
            "rolePath": "/amplitude/",
            "externalId": "s3cr3t-id",
            "tags": '{"team": "growth"}',
            "displayName": "Growth cohorts",
        },
        stack="dev",
    )

    assert (config.shard_count, config.retention_hours, config.max_session_seconds) == (
        3,
        168,
        43200,
    )
    assert config.uses_customer_key and config.kms_key_arn == CMK
    assert config.external_id == "s3cr3t-id"
    assert dict(config.tags) == {"team": "growth"}
    assert config.display_name == "Growth cohorts"


def test_provisioned_stream_defaults_to_one_shard() -> None:
    assert parse_config({"streamMode": "PROVISIONED"}, stack="s").shard_count == 1


@pytest.mark.parametrize(("mode", "shards"), [("ON_DEMAND", None), ("PROVISIONED", 1)])
def test_shard_count_zero_is_pulumi_yamls_not_set(mode: str, shards: int | None) -> None:
    # Pulumi passes a declared default to every stack, so shardCount's default (0) must mean
    # "not set": valid with ON_DEMAND, one shard with PROVISIONED.
    config = parse_config({"streamMode": mode, "shardCount": 0}, stack="s")

    assert config.shard_count == shards


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"streamName": "a b"}, "streamName 'a b': 1-128 characters, only [a-zA-Z0-9_.-] allowed"),
        ({"streamName": "x" * 129}, "streamName '" + "x" * 129 + "': 1-128 characters"),
        (
            {"streamMode": "SERVERLESS"},
            "streamMode 'SERVERLESS': must be one of ON_DEMAND, PROVISIONED",
        ),
        ({"shardCount": "2"}, "shardCount 2: only allowed with streamMode PROVISIONED"),
        (
            {"streamMode": "PROVISIONED", "shardCount": "-1"},
            "shardCount -1: must be between 1 and 10000",
        ),
        (
            {"streamMode": "PROVISIONED", "shardCount": "two"},
            "shardCount 'two': must be a whole number",
        ),
        ({"retentionHours": "23"}, "retentionHours 23: must be between 24 and 8760"),
        ({"retentionHours": "8761"}, "retentionHours 8761: must be between 24 and 8760"),
        ({"encryption": "SSE"}, "encryption 'SSE': must be one of NONE, AWS_MANAGED, KMS"),
        ({"encryption": "KMS"}, "kmsKeyArn not set: required when encryption is KMS"),
        (
            {"kmsKeyArn": CMK},
            f"kmsKeyArn '{CMK}': only allowed with encryption KMS (it is 'AWS_MANAGED')",
        ),
        (
            {"encryption": "KMS", "kmsKeyArn": "alias/mine"},
            "kmsKeyArn 'alias/mine': must be a KMS key ARN",
        ),
        (
            {"roleName": "has space"},
            r"roleName 'has space': 1-64 characters, only [\w+=,.@-] allowed",
        ),
        ({"roleName": "r" * 65}, "roleName '" + "r" * 65 + "': 1-64 characters"),
        ({"rolePath": "amplitude"}, "rolePath 'amplitude': must be '/' or start and end with '/'"),
        ({"maxSessionSeconds": "3599"}, "maxSessionSeconds 3599: must be between 3600 and 43200"),
        ({"maxSessionSeconds": "43201"}, "maxSessionSeconds 43201: must be between 3600 and 43200"),
        (
            {"permissionsBoundaryArn": "arn:aws:iam::123:policy/x"},
            "permissionsBoundaryArn 'arn:aws:iam::123:policy/x': must be a managed policy ARN",
        ),
        ({"trustedAccountId": "35820311596"}, "trustedAccountId '35820311596': must be a 12-digit"),
        ({"trustedAccountId": "*"}, "trustedAccountId '*': must be a 12-digit AWS account ID"),
        ({"tags": "[1, 2]"}, "tags '[1, 2]': must be an object of string keys and values"),
        ({"tags": '{"team": 7}'}, """tags '{"team": 7}': must be an object of string keys"""),
        ({"tags": {"k" * 129: "v"}}, f"tags key '{'k' * 129}': 1-128 characters"),
        ({"tags": {"team": "v" * 257}}, f"tags.team '{'v' * 257}': at most 256 characters"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags: 51 tags: at most 50 allowed"),
        ({"streamArn": "x"}, "streamArn: unknown key; did you mean streamName?"),
        ({"streamNmae": "cohorts-prod"}, "streamNmae: unknown key; did you mean streamName?"),
        ({"zzz": "1"}, "zzz: unknown key; known keys are streamName, streamMode, shardCount,"),
    ],
)
def test_each_rule_names_key_value_and_rule(raw: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack="dev")

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(expected)
    assert expected in str(caught.value)


def test_all_problems_are_reported_in_one_error() -> None:
    raw = {"streamName": "bad name", "retentionHours": "1", "roleName": "", "trustedAccountId": "1"}

    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack="dev")

    keys = [problem.split(" ")[0] for problem in caught.value.problems]
    assert keys == ["streamName", "retentionHours", "trustedAccountId"]
    assert str(caught.value).startswith("invalid stack configuration (3 problems):")


@pytest.mark.parametrize("external_id", ["Z", "has space secret", "y" * 1225])
def test_bad_external_id_is_reported_without_echoing_the_secret(external_id: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"externalId": external_id}, stack="dev")

    message = str(caught.value)
    assert f"externalId (secret, {len(external_id)} characters)" in message
    assert external_id not in message


def test_config_repr_hides_external_id() -> None:
    config = parse_config({"externalId": "top-secret-id"}, stack="dev")

    assert "top-secret-id" not in repr(config)


@pytest.mark.parametrize(("raw", "expected"), [(None, True), ("true", True), ("false", False)])
def test_protect_stream_defaults_to_true(raw: str | None, expected: bool) -> None:
    values = {} if raw is None else {c.CONFIG_PROTECT_STREAM: raw}

    assert parse_config(values, stack="prod").protect_stream is expected


def test_import_keys_must_match_the_declared_names_and_the_policy_needs_its_name() -> None:
    # GIVEN import IDs that differ from what the program declares (each a ForceNew input)
    raw = {
        c.CONFIG_PROTECT_STREAM: "maybe",
        c.CONFIG_IMPORT_STREAM: "other-stream",
        c.CONFIG_IMPORT_ROLE: "other-role",
        c.CONFIG_IMPORT_POLICY: "arn:aws:iam::123456789012:policy/hand-made",
        c.CONFIG_POLICY_NAME: "not valid!",
    }

    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack="prod")

    # THEN every problem is named at once
    message = str(caught.value)
    assert "protectStream 'maybe': must be true or false" in message
    assert "importStream 'other-stream': must equal streamName ('amplitude-cohorts')" in message
    assert "importRole 'other-role': must equal roleName ('amplitude-kinesis-cohort')" in message
    assert "policyName 'not valid!': 1-128 characters" in message
    # (the name's own rule is reported; matching it to the ARN waits for a valid name)
    assert len(caught.value.problems) == 4


def test_adopting_all_three_derives_the_attachments_import_id() -> None:
    arn = "arn:aws:iam::123456789012:policy/hand-made"
    config = parse_config(
        {
            c.CONFIG_STREAM_NAME: "cohorts",
            c.CONFIG_IMPORT_STREAM: "cohorts",
            c.CONFIG_IMPORT_ROLE: c.DEFAULT_ROLE_NAME,
            c.CONFIG_IMPORT_POLICY: arn,
            c.CONFIG_POLICY_NAME: "hand-made",
        },
        stack="prod",
    )

    assert config.attachment_import_id == f"{c.DEFAULT_ROLE_NAME}/{arn}"
    assert parse_config({}, stack="prod").attachment_import_id is None


def test_a_misspelt_secret_key_is_refused_with_the_right_key_and_without_its_value() -> None:
    # GIVEN the typo: the external ID under `externalID` (capital D), a secret
    with pytest.raises(ConfigError) as caught:
        parse_config({"externalID": "s3cr3t-value"}, stack="prod")

    # THEN it is refused (not a role trusting Amplitude without the condition), naming the key
    assert caught.value.problems == ["externalID: unknown key; did you mean externalId?"]
    assert "s3cr3t-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("tags", "consumer", "expected"),
    [
        # The tag: IAM allows only letters, digits, spaces and _.:/=+-@ (API_Tag pattern)
        (
            {"cost{center}": "Growth (EU) & ML"},
            "none",
            [
                "tags key 'cost{center}': IAM allows only letters, digits, spaces and _.:/=+-@ "
                "(not { })",
                "tags.cost{center} 'Growth (EU) & ML': IAM allows only letters, digits, spaces "
                "and _.:/=+-@ (not & ( ))",
            ],
        ),
        # '@' is IAM's but not DynamoDB's: refused only when the consumer's tables receive it
        ({"owner": "data@example.com"}, "none", []),
        (
            {"owner": "data@example.com"},
            "lambda",
            [
                "tags.owner 'data@example.com': DynamoDB allows only letters, digits, spaces "
                "and _.:/=+- (not @)"
            ],
        ),
        # ':' is IAM's but not Kinesis's; the 'aws:' prefix is every service's own
        (
            {"aws:owner": "me"},
            "none",
            [
                "tags key 'aws:owner': the 'aws:' prefix is reserved for AWS's own tags",
                "tags key 'aws:owner': Kinesis allows only letters, digits, spaces and _./=+-%@ "
                "(not :)",
            ],
        ),
        # letters, numbers and separators of any script are fine
        ({"équipe": "Données 数据 ٣"}, "lambda", []),
        # '%' is Kinesis's but not IAM's
        (
            {"share": "50%"},
            "none",
            ["tags.share '50%': IAM allows only letters, digits, spaces and _.:/=+-@ (not %)"],
        ),
    ],
)
def test_tags_follow_the_rules_of_each_service_that_receives_them(
    tags: dict[str, str], consumer: str, expected: list[str]
) -> None:
    raw = {c.CONFIG_TAGS: tags, c.CONFIG_CONSUMER: consumer}
    if not expected:
        assert dict(parse_config(raw, stack="dev").tags) == tags
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack="dev")

    assert caught.value.problems == expected


def test_a_kms_key_in_another_region_than_the_stack_is_refused() -> None:
    # GIVEN a us-east-1 stack and a key in eu-west-1
    eu_key = CMK.replace("us-east-1", "eu-west-1")

    with pytest.raises(ConfigError) as caught:
        parse_config({"encryption": "KMS", "kmsKeyArn": eu_key}, stack="dev", region="us-east-1")

    assert caught.value.problems == [
        f"kmsKeyArn '{eu_key}': the key is in eu-west-1, the stack in us-east-1; Kinesis and "
        "DynamoDB need a key in the stream's region (use a key, or a multi-Region replica, in "
        "us-east-1)"
    ]
    # AND the same key is accepted on a stack in its own region
    assert (
        parse_config(
            {"encryption": "KMS", "kmsKeyArn": eu_key}, stack="dev", region="eu-west-1"
        ).customer_key_arn
        == eu_key
    )


@pytest.mark.parametrize(("account", "refused"), [("123456789012", False), ("210987654321", True)])
def test_a_kms_key_of_another_account_is_named_with_the_statement_that_allows_it(
    account: str, refused: bool
) -> None:
    problem = key_account_problem(CMK, account)

    if refused:
        assert problem == (
            f"kmsKeyArn '{CMK}': the key belongs to account 123456789012, the stack deploys to "
            "210987654321; set kmsKeyCrossAccount true if that is intended (the key's policy "
            "must then grant this account), or use a key of this account"
        )
    else:
        assert problem is None
