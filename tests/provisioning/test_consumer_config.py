"""The consumer block of the stack config: none by default, Lambda's limits, all at once."""

import zipfile
from pathlib import Path

import pytest

from provisioning import constants as c
from provisioning.config import ConsumerConfig, parse_config
from provisioning.errors import ConfigError

pytestmark = pytest.mark.unit


def test_consumer_defaults_to_none() -> None:
    assert parse_config({}, stack="s").consumer is None


def test_declared_defaults_are_not_set_while_consumer_is_none() -> None:
    # Pulumi passes every declared default to every stack: those must not count as "set".
    defaults = {
        c.CONFIG_CONSUMER_MEMORY_MB: "512",
        c.CONFIG_CONSUMER_RESERVED_CONCURRENCY: "0",
        c.CONFIG_CONSUMER_ARCHITECTURE: "x86_64",
        c.CONFIG_CONSUMER_ALARMS: "true",
        c.CONFIG_CONSUMER_ARCHIVE: "",
    }

    assert parse_config({"consumer": "none", **defaults}, stack="s").consumer is None


def test_lambda_defaults() -> None:
    config = parse_config({"consumer": "lambda"}, stack="s").consumer

    assert config == ConsumerConfig(
        archive_path="dist/lambda-x86_64.zip",
        memory_mb=512,
        timeout_seconds=60,
        reserved_concurrency=None,
        batch_size=100,
        batching_window_seconds=1,
        parallelization_factor=1,
        max_retries=5,
        max_record_age_seconds=86400,
        log_retention_days=30,
        architecture="x86_64",
        alarms=True,
    )


def test_lambda_values_come_as_config_strings() -> None:
    config = parse_config(
        {
            "consumer": "lambda",
            "consumerMemoryMb": "1024",
            "consumerTimeoutSeconds": "120",
            "consumerReservedConcurrency": "4",
            "consumerBatchSize": "500",
            "consumerBatchingWindowSeconds": "5",
            "consumerParallelizationFactor": "2",
            "consumerMaxRetries": "3",
            "consumerMaxRecordAgeSeconds": "3600",
            "consumerLogRetentionDays": "14",
            "consumerArchitecture": "arm64",
            "consumerAlarms": "false",
        },
        stack="s",
    ).consumer

    assert config is not None
    assert (config.memory_mb, config.timeout_seconds, config.reserved_concurrency) == (1024, 120, 4)
    assert (config.batch_size, config.batching_window_seconds) == (500, 5)
    assert (config.parallelization_factor, config.max_retries) == (2, 3)
    assert (config.max_record_age_seconds, config.log_retention_days) == (3600, 14)
    assert (config.architecture, config.alarms) == ("arm64", False)
    assert config.archive_path == "dist/lambda-arm64.zip"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"consumer": "kafka"}, "consumer 'kafka': must be one of none, lambda"),
        ({"consumerMemoryMb": "64"}, "consumerMemoryMb 64: must be between 128 and 10240"),
        (
            {"consumerTimeoutSeconds": "901"},
            "consumerTimeoutSeconds 901: must be between 1 and 900",
        ),
        ({"consumerBatchSize": "0"}, "consumerBatchSize 0: must be between 1 and 10000"),
        ({"consumerBatchSize": "10001"}, "consumerBatchSize 10001: must be between 1 and 10000"),
        (
            {"consumerBatchingWindowSeconds": "301"},
            "consumerBatchingWindowSeconds 301: must be between 0 and 300",
        ),
        (
            {"consumerParallelizationFactor": "11"},
            "consumerParallelizationFactor 11: must be between 1 and 10",
        ),
        ({"consumerMaxRetries": "-1"}, "consumerMaxRetries -1: must be between 0 and 10000"),
        (
            {"consumerMaxRecordAgeSeconds": "-1"},
            "consumerMaxRecordAgeSeconds -1: must be between 60 and 604800",
        ),
        (
            {"consumerReservedConcurrency": "1001"},
            "consumerReservedConcurrency 1001: must be between 1 and 1000",
        ),
        ({"consumerLogRetentionDays": "2"}, "consumerLogRetentionDays 2: must be one of"),
        (
            {"consumerArchitecture": "ppc"},
            "consumerArchitecture 'ppc': must be one of x86_64, arm64",
        ),
        ({"consumerAlarms": "maybe"}, "consumerAlarms 'maybe': must be true or false"),
        ({"consumerMemoryMb": "lots"}, "consumerMemoryMb 'lots': must be a whole number"),
    ],
)
def test_each_rule_names_key_value_and_rule(raw: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"consumer": "lambda", **raw}, stack="s")

    assert [p for p in caught.value.problems if p.startswith(expected)], caught.value.problems


def test_consumer_keys_set_while_consumer_is_none_are_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"consumerBatchSize": "500", "consumerAlarms": "false", "consumerArchive": "x.zip"},
            stack="s",
        )

    assert caught.value.problems == [
        "consumerBatchSize 500: only allowed with consumer lambda (it is 'none')",
        "consumerAlarms False: only allowed with consumer lambda (it is 'none')",
        "consumerArchive 'x.zip': only allowed with consumer lambda (it is 'none')",
    ]


def test_consumer_problems_join_the_destinations_in_one_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"streamName": "a b", "consumer": "lambdas", "consumerBatchSize": "0"}, stack="s"
        )

    assert len(caught.value.problems) == 3
    assert caught.value.problems[0].startswith("streamName 'a b'")


def test_missing_archive_names_the_path_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"consumer": "lambda", "consumerArchitecture": "arm64"}, "s", tmp_path)

    (problem,) = caught.value.problems
    assert problem == (
        f"consumerArchive 'dist/lambda-arm64.zip': no code archive at "
        f"{tmp_path / 'dist/lambda-arm64.zip'}; build it with `cohort-lambda-archive --arch arm64` "
        "(the function is never deployed without its code)"
    )


def test_present_archive_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    with zipfile.ZipFile(tmp_path / "dist" / "lambda-x86_64.zip", "w") as archive:
        archive.writestr("sync/lambda_handler.py", "")

    config = parse_config({"consumer": "lambda"}, "s", tmp_path).consumer

    assert config is not None and config.archive_path == "dist/lambda-x86_64.zip"


@pytest.mark.parametrize("content", [b"PK", b"not a zip at all"])
def test_an_archive_without_the_handler_is_refused(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "code.zip"
    bad.write_bytes(content)
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()

    for path in (bad, empty):
        with pytest.raises(ConfigError) as caught:
            parse_config({"consumer": "lambda", "consumerArchive": str(path)}, "s", tmp_path)
        assert caught.value.problems == [
            f"consumerArchive {str(path)!r}: {path} is not a zip holding "
            "sync/lambda_handler.py; rebuild it with `cohort-lambda-archive --arch x86_64`"
        ]
