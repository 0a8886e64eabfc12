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

# Stack config keys (project namespace); provisioning/keys.py holds each one's type and rule.
CONFIG_STREAM_NAME: Final = "streamName"
CONFIG_STREAM_MODE: Final = "streamMode"
CONFIG_SHARD_COUNT: Final = "shardCount"
CONFIG_RETENTION_HOURS: Final = "retentionHours"
CONFIG_ENCRYPTION: Final = "encryption"
CONFIG_KMS_KEY_ARN: Final = "kmsKeyArn"
CONFIG_KMS_KEY_CROSS_ACCOUNT: Final = "kmsKeyCrossAccount"
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

# --- The Lambda consumer (`consumer: lambda`): kept together so it merges as one block. -------
CONSUMER_COMPONENT_TYPE: Final = f"{PROJECT_NAME}:index:CohortConsumer"
CONSUMERS: Final = ("none", "lambda")
CONSUMER_NONE: Final = "none"
CONSUMER_LAMBDA: Final = "lambda"

CONFIG_CONSUMER: Final = "consumer"
CONFIG_CONSUMER_MEMORY_MB: Final = "consumerMemoryMb"
CONFIG_CONSUMER_TIMEOUT_SECONDS: Final = "consumerTimeoutSeconds"
CONFIG_CONSUMER_RESERVED_CONCURRENCY: Final = "consumerReservedConcurrency"
CONFIG_CONSUMER_BATCH_SIZE: Final = "consumerBatchSize"
CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS: Final = "consumerBatchingWindowSeconds"
CONFIG_CONSUMER_PARALLELIZATION_FACTOR: Final = "consumerParallelizationFactor"
CONFIG_CONSUMER_MAX_RETRIES: Final = "consumerMaxRetries"
CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS: Final = "consumerMaxRecordAgeSeconds"
CONFIG_CONSUMER_LOG_RETENTION_DAYS: Final = "consumerLogRetentionDays"
CONFIG_CONSUMER_ARCHITECTURE: Final = "consumerArchitecture"
CONFIG_CONSUMER_ALARMS: Final = "consumerAlarms"
CONFIG_CONSUMER_ARCHIVE: Final = "consumerArchive"

# Defaults, and AWS's limits for each (Lambda CreateFunction / CreateEventSourceMapping).
DEFAULT_CONSUMER_MEMORY_MB: Final = 512
DEFAULT_CONSUMER_TIMEOUT_SECONDS: Final = 60
# 0 means "not set": the function draws on the account's unreserved concurrency.
CONSUMER_RESERVED_CONCURRENCY_UNSET: Final = 0
DEFAULT_CONSUMER_BATCH_SIZE: Final = 100
DEFAULT_CONSUMER_BATCHING_WINDOW_SECONDS: Final = 1
DEFAULT_CONSUMER_PARALLELIZATION_FACTOR: Final = 1
DEFAULT_CONSUMER_MAX_RETRIES: Final = 5
DEFAULT_CONSUMER_MAX_RECORD_AGE_SECONDS: Final = 86_400
DEFAULT_CONSUMER_LOG_RETENTION_DAYS: Final = 30
DEFAULT_CONSUMER_ARCHITECTURE: Final = "x86_64"
DEFAULT_CONSUMER_ARCHIVE: Final = "dist/lambda-{architecture}.zip"
CONSUMER_ARCHITECTURES: Final = ("x86_64", "arm64")
CONSUMER_MEMORY_MB_RANGE: Final = (128, 10_240)
CONSUMER_TIMEOUT_SECONDS_RANGE: Final = (1, 900)
CONSUMER_RESERVED_CONCURRENCY_RANGE: Final = (1, 1000)
CONSUMER_BATCH_SIZE_RANGE: Final = (1, 10_000)
CONSUMER_BATCHING_WINDOW_SECONDS_RANGE: Final = (0, 300)
CONSUMER_PARALLELIZATION_FACTOR_RANGE: Final = (1, 10)
CONSUMER_MAX_RETRIES_RANGE: Final = (0, 10_000)
# -1 (infinite) is AWS's default; a bounded age is the point, so only 60-604800 is accepted.
CONSUMER_MAX_RECORD_AGE_SECONDS_RANGE: Final = (60, 604_800)
# The retention values CloudWatch Logs accepts (PutRetentionPolicy).
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

LAMBDA_RUNTIME: Final = "python3.11"
LAMBDA_HANDLER: Final = "sync.lambda_handler.handler"
LAMBDA_HANDLER_FILE: Final = "sync/lambda_handler.py"  # what a code archive must hold
LAMBDA_SERVICE_PRINCIPAL: Final = "lambda.amazonaws.com"
STARTING_POSITION: Final = "TRIM_HORIZON"
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"
MEMBERSHIP_TABLE_ENV: Final = "MEMBERSHIP_TABLE"
IDEMPOTENCY_TABLE_ENV: Final = "IDEMPOTENCY_TABLE"
FAILURE_QUEUE_ENV: Final = "FAILURE_QUEUE_URL"
IDEMPOTENCY_TTL_ATTRIBUTE: Final = "expiration"
# The actions a Kinesis event source mapping needs on the stream (Lambda developer guide,
# "Process Amazon Kinesis Data Streams records with Lambda"; SubscribeToShard is for enhanced
# fan-out consumers only, which this mapping does not use).
KINESIS_MAPPING_READ_ACTIONS: Final = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
# What sync.lambda_handler and powertools' DynamoDB persistence layer call.
MEMBERSHIP_TABLE_ACTIONS: Final = ("dynamodb:PutItem",)
IDEMPOTENCY_TABLE_ACTIONS: Final = (
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
QUEUE_SEND_ACTION: Final = "sqs:SendMessage"
LOG_WRITE_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")
KMS_READ_ACTION: Final = "kms:Decrypt"
# Alarms: a consumer falling an hour behind, or anything at all in the failure queue.
ITERATOR_AGE_ALARM_MILLISECONDS: Final = 3_600_000
ALARM_PERIOD_SECONDS: Final = 300

OUTPUT_MEMBERSHIP_TABLE: Final = "membershipTable"
OUTPUT_IDEMPOTENCY_TABLE: Final = "idempotencyTable"
OUTPUT_FUNCTION_ARN: Final = "consumerFunctionArn"
OUTPUT_FAILURE_QUEUE_URL: Final = "failureQueueUrl"
