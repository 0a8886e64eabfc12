"""Facts the program, the sync engine and the tests share; each is defined here once."""

from typing import Final

PROJECT_NAME: Final = "amplitude-kinesis-cohort"
COMPONENT_TYPE: Final = f"{PROJECT_NAME}:index:CohortDestination"

# Amplitude's exporting AWS account (Amplitude's "Amazon Kinesis (Cohort)" setup guide).
AMPLITUDE_ACCOUNT_ID: Final = "358203115967"

# The actions Amplitude's template grants, split by the resource each applies to.
KINESIS_WRITE_ACTIONS: Final = ("kinesis:PutRecord", "kinesis:PutRecords")
SIMULATE_ACTION: Final = "iam:SimulatePrincipalPolicy"
KMS_WRITE_ACTION: Final = "kms:GenerateDataKey"
ASSUME_ROLE_ACTION: Final = "sts:AssumeRole"
EXTERNAL_ID_CONDITION_KEY: Final = "sts:ExternalId"
POLICY_VERSION: Final = "2012-10-17"
AWS_MANAGED_KINESIS_KEY: Final = "alias/aws/kinesis"

# Stack output keys: what `pulumi stack output --json --show-secrets` prints.
OUTPUT_STREAM_NAME: Final = "streamName"
OUTPUT_STREAM_ARN: Final = "streamArn"
OUTPUT_REGION: Final = "region"
OUTPUT_ROLE_ARN: Final = "roleArn"
OUTPUT_ROLE_NAME: Final = "roleName"
OUTPUT_POLICY_ARN: Final = "policyArn"
OUTPUT_DESTINATION: Final = "destination"
OUTPUT_EXTERNAL_ID: Final = "externalId"

# Keys of the `destination` output: the fields of Amplitude's destination form.
FORM_DISPLAY_NAME: Final = "display_name"
FORM_STREAM_NAME: Final = "stream_name"
FORM_AWS_REGION: Final = "aws_region"
FORM_ROLE_ARN: Final = "role_arn"

# Stack config keys (project namespace).
CONFIG_STREAM_NAME: Final = "streamName"
CONFIG_STREAM_MODE: Final = "streamMode"
CONFIG_SHARD_COUNT: Final = "shardCount"
CONFIG_RETENTION_HOURS: Final = "retentionHours"
CONFIG_ENCRYPTION: Final = "encryption"
CONFIG_KMS_KEY_ARN: Final = "kmsKeyArn"
CONFIG_ROLE_NAME: Final = "roleName"
CONFIG_ROLE_PATH: Final = "rolePath"
CONFIG_MAX_SESSION_SECONDS: Final = "maxSessionSeconds"
CONFIG_PERMISSIONS_BOUNDARY_ARN: Final = "permissionsBoundaryArn"
CONFIG_TRUSTED_ACCOUNT_ID: Final = "trustedAccountId"
CONFIG_EXTERNAL_ID: Final = "externalId"
CONFIG_DISPLAY_NAME: Final = "displayName"
CONFIG_TAGS: Final = "tags"
# Day-2 keys: the stream's protection, the policy's fixed name, and adopting hand-made resources.
CONFIG_PROTECT_STREAM: Final = "protectStream"
CONFIG_POLICY_NAME: Final = "policyName"
CONFIG_IMPORT_STREAM: Final = "importStream"
CONFIG_IMPORT_ROLE: Final = "importRole"
CONFIG_IMPORT_POLICY: Final = "importPolicy"
CONFIG_KEYS: Final = (
    CONFIG_STREAM_NAME,
    CONFIG_STREAM_MODE,
    CONFIG_SHARD_COUNT,
    CONFIG_RETENTION_HOURS,
    CONFIG_ENCRYPTION,
    CONFIG_KMS_KEY_ARN,
    CONFIG_ROLE_NAME,
    CONFIG_ROLE_PATH,
    CONFIG_MAX_SESSION_SECONDS,
    CONFIG_PERMISSIONS_BOUNDARY_ARN,
    CONFIG_TRUSTED_ACCOUNT_ID,
    CONFIG_EXTERNAL_ID,
    CONFIG_DISPLAY_NAME,
    CONFIG_TAGS,
    CONFIG_PROTECT_STREAM,
    CONFIG_POLICY_NAME,
    CONFIG_IMPORT_STREAM,
    CONFIG_IMPORT_ROLE,
    CONFIG_IMPORT_POLICY,
)

STREAM_MODES: Final = ("ON_DEMAND", "PROVISIONED")
ENCRYPTIONS: Final = ("NONE", "AWS_MANAGED", "KMS")

# AWS's own limits for the inputs above.
STREAM_NAME_PATTERN: Final = r"[a-zA-Z0-9_.-]{1,128}"
ROLE_NAME_PATTERN: Final = r"[\w+=,.@-]{1,64}"
POLICY_NAME_PATTERN: Final = r"[\w+=,.@-]{1,128}"
ROLE_PATH_PATTERN: Final = r"/|/[\x21-\x7e]{0,510}/"
EXTERNAL_ID_PATTERN: Final = r"[\w+=,.@:/-]{2,1224}"
ACCOUNT_ID_PATTERN: Final = r"\d{12}"
KMS_KEY_ARN_PATTERN: Final = (
    r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/([0-9a-fA-F-]{36}|mrk-[0-9a-f]{32})"
)
MANAGED_POLICY_ARN_PATTERN: Final = (
    r"arn:aws[a-z-]*:iam::(\d{12}|aws):policy/([\x21-\x7e]*/)?[\w+=,.@-]{1,128}"
)
RETENTION_HOURS_RANGE: Final = (24, 8760)
MAX_SESSION_SECONDS_RANGE: Final = (3600, 43200)
SHARD_COUNT_RANGE: Final = (1, 10000)
# Pulumi.yaml's declared shardCount default, which every stack receives: "not set".
SHARD_COUNT_UNSET: Final = 0
TAG_KEY_MAX_CHARS: Final = 128
TAG_VALUE_MAX_CHARS: Final = 256
MAX_TAGS: Final = 50

DEFAULT_STREAM_NAME: Final = "amplitude-cohorts"
DEFAULT_ROLE_NAME: Final = "amplitude-kinesis-cohort"
DEFAULT_DISPLAY_NAME_TEMPLATE: Final = "Kinesis cohorts ({stack})"
