"""Day 2 of `consumer: lambda`: each consumer key changed on an applied stack, in place.

None of these keys is ForceNew in terraform-provider-aws (lambda/function.go: memory_size, timeout,
reserved_concurrent_executions; lambda/event_source_mapping.go: batch_size,
maximum_retry_attempts, maximum_batching_window_in_seconds, parallelization_factor,
maximum_record_age_in_seconds; logs/group.go: retention_in_days), so the provider updates the one
resource that holds it and leaves the rest of the stack alone; what AWS holds afterwards is read
back over the API.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioning import constants as c
from sandbox.engine import deploy
from sandbox.world import MotoWorld
from sync import lambda_handler
from tests.sandbox.test_deploy import BASE, Stack
from tests.sandbox.test_lambda_mapping import build_archive

pytestmark = pytest.mark.integration

FUNCTION = c.DEFAULT_STREAM_NAME + "-consumer"
Check = Callable[[Stack], Any]


def _function(stack: Stack) -> dict[str, Any]:
    return dict(stack.client("lambda").get_function(FunctionName=FUNCTION))


def _mapping(stack: Stack) -> dict[str, Any]:
    arn = _function(stack)["Configuration"]["FunctionArn"]  # moto matches the ARN, not the name
    found = stack.client("lambda").list_event_source_mappings(FunctionName=arn)
    (mapping,) = found["EventSourceMappings"]
    return dict(mapping)


def _retention(stack: Stack) -> int | None:
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{FUNCTION}")
    (group,) = groups["logGroups"]
    return group.get("retentionInDays")


def _on_function(attribute: str) -> Check:
    return lambda stack: _function(stack)["Configuration"][attribute]


def _reserved(stack: Stack) -> int:
    return int(_function(stack)["Concurrency"]["ReservedConcurrentExecutions"])


def _on_mapping(attribute: str) -> Check:
    return lambda stack: _mapping(stack)[attribute]


# key -> (new value, unlike its default; the consumer resource updated in place; where AWS
# holds the value afterwards)
CASES: dict[str, tuple[int, str, Check]] = {
    c.CONFIG_CONSUMER_MEMORY_MB: (1024, "consumer-function", _on_function("MemorySize")),
    c.CONFIG_CONSUMER_TIMEOUT_SECONDS: (120, "consumer-function", _on_function("Timeout")),
    c.CONFIG_CONSUMER_RESERVED_CONCURRENCY: (
        3,
        "consumer-function",
        _reserved,
    ),
    c.CONFIG_CONSUMER_BATCH_SIZE: (50, "consumer-mapping", _on_mapping("BatchSize")),
    c.CONFIG_CONSUMER_MAX_RETRIES: (3, "consumer-mapping", _on_mapping("MaximumRetryAttempts")),
    c.CONFIG_CONSUMER_BATCHING_WINDOW_SECONDS: (
        5,
        "consumer-mapping",
        _on_mapping("MaximumBatchingWindowInSeconds"),
    ),
    c.CONFIG_CONSUMER_PARALLELIZATION_FACTOR: (
        2,
        "consumer-mapping",
        _on_mapping("ParallelizationFactor"),
    ),
    c.CONFIG_CONSUMER_MAX_RECORD_AGE_SECONDS: (
        3600,
        "consumer-mapping",
        _on_mapping("MaximumRecordAgeInSeconds"),
    ),
    c.CONFIG_CONSUMER_LOG_RETENTION_DAYS: (14, "consumer-logs", _retention),
}


def consumer_ops(outcome: deploy.Outcome) -> dict[str, str]:
    """The op of each resource the consumer component declared (its children)."""
    names = {step.urn.rsplit("::", 1)[-1]: step.op for step in outcome.steps}
    return {name: op for name, op in names.items() if name.startswith("consumer-")}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return build_archive(tmp_path)


@pytest.mark.parametrize("key", sorted(CASES))
def test_changing_a_consumer_key_updates_one_resource_in_place(
    key: str, moto_world: MotoWorld, tmp_path: Path, archive: Path
) -> None:
    expected, resource, read = CASES[key]
    value = str(expected)
    lambda_handler.reset()
    # GIVEN a stack applied with `consumer: lambda`
    stack = Stack(
        moto_world,
        tmp_path,
        {**BASE, c.CONFIG_CONSUMER: c.CONSUMER_LAMBDA, c.CONFIG_CONSUMER_ARCHIVE: str(archive)},
    )
    first = stack.up()
    assert set(consumer_ops(first).values()) == {deploy.CREATE}
    function_arn = _function(stack)["Configuration"]["FunctionArn"]

    # WHEN the key changes and `up` runs again (previewed first)
    planned = stack.preview({key: value})
    applied = stack.up({key: value})

    # THEN only the resource holding the key is updated, in place, in the preview and the apply
    for outcome in (planned, applied):
        changed = {name: op for name, op in consumer_ops(outcome).items() if op != "same"}
        assert changed == {resource: deploy.UPDATE}, (key, changed)
    # and AWS holds the new value on the same function (not a replacement)
    assert int(read(stack)) == expected
    assert _function(stack)["Configuration"]["FunctionArn"] == function_arn
    # and a further up with the same config changes nothing
    assert set(consumer_ops(stack.preview({key: value})).values()) == {"same"}
    lambda_handler.reset()
