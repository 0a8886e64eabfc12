"""Day 2 of `consumer: lambda` as a customer runs it: `local serve`, then `local …` elsewhere.

Every read and write goes over HTTP to a world this process does not hold, so nothing can fall
back to a moto backend in-process. Each round changes a few keys held by different resources (or
the same resource, named in `diffReasons`), previews, applies and checks the next round's plan.

What terraform-provider-aws plans for each key (the schema's ForceNew flags, read at commit
f583d818 as `sandbox/engine/schema.py` cites them):
- lambda/function.go: memory_size, timeout, reserved_concurrent_executions, architectures,
  environment, role and logging_config update in place (UpdateFunctionConfiguration,
  PutFunctionConcurrency, UpdateFunctionCode); function_name is ForceNew.
- lambda/event_source_mapping.go: batch_size, maximum_batching_window_in_seconds,
  parallelization_factor, maximum_retry_attempts, maximum_record_age_in_seconds update in place
  (UpdateEventSourceMapping); event_source_arn is ForceNew.
- logs/group.go: retention_in_days in place (PutRetentionPolicy); name ForceNew.
- kinesis/stream.go: encryption_type/kms_key_id in place (Start/StopStreamEncryption); name
  ForceNew. dynamodb/table.go: server_side_encryption in place; name ForceNew.
- cloudwatch/metric_alarm.go: alarm_name ForceNew; an alarm the program stops declaring is
  deleted. iam/role.go and iam/policy.go: name (and a policy's description) ForceNew.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from provisioning.keys import CONSUMER_SETTING_NAMES
from tests.e2e.test_local_cli import cohort_sync, local_serve
from tests.sandbox.test_lambda_mapping import build_archive

pytestmark = pytest.mark.e2e

UPDATE, REPLACE, DELETE, CREATE = "update", "replace", "delete", "create"
# Pulumi reports a replacement as three steps; the plan per resource is one of them.
_REPLACEMENT_OPS = {"replace", "create-replacement", "delete-replaced"}
CONSUMER_RESOURCES = (
    "consumer-membership",
    "consumer-idempotency",
    "consumer-failures",
    "consumer-logs",
    "consumer-role",
    "consumer-policy",
    "consumer-function",
    "consumer-mapping",
    "consumer-iterator-age",
    "consumer-failures-visible",
    "consumer-errors",
    "consumer-throttles",
)
ALARMS = (
    "consumer-iterator-age",
    "consumer-failures-visible",
    "consumer-errors",
    "consumer-throttles",
)


class Served:
    """One `local serve` world and a stack driven in it by `cohort-sync local …` subprocesses."""

    def __init__(self, url: str, world_file: Path, archive: Path) -> None:
        self.target = ["--endpoint-url", url, "--world-file", str(world_file)]
        self.archive = archive

    def run(self, command: str, config: dict[str, str], *extra: str) -> Any:
        args = [f"--config={key}={value}" for key, value in config.items()]
        return cohort_sync("local", command, *self.target, *args, *extra)

    def plan(self, command: str, config: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
        """{resource name: (op, diffReasons)} of every step that is not `same`."""
        extra = ("--yes",) if command == "up" else ()
        result = self.run(command, config, "--json", *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        return changed_steps(json.loads(result.stdout))


def changed_steps(document: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """One entry per resource: replacements collapsed to `replace`, with their reasons."""
    plan: dict[str, tuple[str, set[str]]] = {}
    for step in document["steps"]:
        if step["op"] == "same":
            continue
        name = step["urn"].rsplit("::", 1)[-1]
        op = REPLACE if step["op"] in _REPLACEMENT_OPS else step["op"]
        plan[name] = (op, set(step.get("diffReasons") or ()))
    return plan


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("served-consumer")
    world_file = directory / "world.json"
    with local_serve(world_file) as server:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else url
        server.stdout.readline()  # where the world was written
        yield Served(url, world_file, build_archive(directory))


def _assert_no_changes(result: subprocess.CompletedProcess[str], count: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Plan: {count} unchanged." in result.stdout
    assert f"Applied: no changes ({count} resources in the stack)." in result.stdout


def test_consumer_day_two_in_a_served_world(served: Served) -> None:
    lambda_on = {
        c.CONFIG_CONSUMER: c.CONSUMER_LAMBDA,
        c.CONFIG_CONSUMER_ARCHIVE: str(served.archive),
    }

    # GIVEN `consumer: lambda` applied to a served world
    first = served.run("up", lambda_on)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Applied: 18 created (18 resources in the stack)." in first.stdout
    # THEN a second `local up` changes nothing (it used to re-create the function and fail)
    _assert_no_changes(served.run("up", lambda_on), 18)

    # WHEN keys change, a few per round, each round on top of the last
    rounds: list[tuple[dict[str, str], dict[str, tuple[str, set[str]]]]] = [
        (
            {
                c.CONFIG_CONSUMER_MEMORY_MB: "1024",
                c.CONFIG_CONSUMER_TIMEOUT_SECONDS: "120",
                c.CONFIG_CONSUMER_BATCH_SIZE: "50",
                c.CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS: "5",
                c.CONFIG_CONSUMER_LOG_RETENTION_DAYS: "14",
                c.CONFIG_CONSUMER_ALARMS: "false",
            },
            {
                "consumer-function": (UPDATE, {"memorySize", "timeout"}),
                "consumer-mapping": (UPDATE, {"batchSize", "maximumBatchingWindowInSeconds"}),
                "consumer-logs": (UPDATE, {"retentionInDays"}),
                **{alarm: (DELETE, set()) for alarm in ALARMS},
            },
        ),
        (
            {
                c.CONFIG_CONSUMER_RESERVED_CONCURRENCY: "3",
                c.CONFIG_CONSUMER_ARCHITECTURE: "arm64",
                c.CONFIG_CONSUMER_PARALLELIZATION_FACTOR: "2",
                c.CONFIG_CONSUMER_MAX_RETRIES: "3",
                c.CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS: "3600",
                c.CONFIG_CONSUMER_ALARMS: "true",
            },
            {
                "consumer-function": (UPDATE, {"architectures", "reservedConcurrentExecutions"}),
                "consumer-mapping": (
                    UPDATE,
                    {
                        "parallelizationFactor",
                        "maximumRetryAttempts",
                        "maximumRecordAgeInSeconds",
                    },
                ),
                **{alarm: (CREATE, set()) for alarm in ALARMS},
            },
        ),
        (
            # Lifting the stream's protection changes the state only; encryption is in place.
            {c.CONFIG_PROTECT_STREAM: "false", c.CONFIG_ENCRYPTION: "NONE"},
            {
                "cohort-stream": (UPDATE, {"encryptionType", "kmsKeyId"}),
                "consumer-membership": (UPDATE, {"serverSideEncryption"}),
                "consumer-idempotency": (UPDATE, {"serverSideEncryption"}),
            },
        ),
    ]
    config = dict(lambda_on)
    for changes, expected in rounds:
        config.update(changes)
        planned = served.plan("preview", config)
        # THEN preview plans what the provider plans, per resource, and `up` applies that
        assert planned == expected, changes
        assert served.plan("up", config) == expected, changes

    # WHEN the stream is renamed: everything named after it is replaced (ForceNew names)
    config[c.CONFIG_STREAM_NAME] = "renamed-cohorts"
    renamed = served.plan("up", config)
    assert {name: op for name, (op, _) in renamed.items()} == {
        "cohort-stream": REPLACE,
        "cohort-write": REPLACE,
        "cohort-attach": REPLACE,
        **{name: REPLACE for name in CONSUMER_RESOURCES},
    }
    assert renamed["cohort-stream"][1] == {"name"}
    assert renamed["consumer-function"][1] >= {"name", "environment"}

    # WHEN the consumer is turned off: its resources are deleted, the destination stays
    consumer_keys = {c.CONFIG_CONSUMER, *CONSUMER_SETTING_NAMES}
    destination_only = {key: value for key, value in config.items() if key not in consumer_keys}
    consumer_gone = {name: (DELETE, set()) for name in ("consumer", *CONSUMER_RESOURCES)}
    assert served.plan("preview", destination_only) == consumer_gone
    assert served.plan("up", destination_only) == consumer_gone
    _assert_no_changes(served.run("up", destination_only), 5)

    # WHEN it is turned on again: created again, and a second up changes nothing
    assert served.plan("up", config) == {
        name: (CREATE, set()) for name in ("consumer", *CONSUMER_RESOURCES)
    }
    _assert_no_changes(served.run("up", config), 18)
