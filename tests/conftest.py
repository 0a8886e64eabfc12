"""The suite uses the harness's fixtures exactly as a customer's tests would."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.loaders import JSONFileLoader

from sync.publisher import Publisher
from tests.installed import installed

pytest_plugins = ["sandbox.pytest_plugin", "pytester"]
__all__ = ["installed"]  # a session fixture: the wheel in a fresh venv, built once

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.fixture
def readme_customer_project() -> Callable[[Path, Path], None]:
    """Writes a customer's project as the README's fixture example has it, into a directory."""

    def write(root: Path, program_dir: Path) -> None:
        python = re.findall(r"```python\n(.*?)```", README, flags=re.S)
        yaml_blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
        stack_file = next(b for b in yaml_blocks if b.startswith("# Pulumi.prod.yaml"))
        (root / "Pulumi.yaml").write_text((program_dir / "Pulumi.yaml").read_text())
        (root / "__main__.py").write_text((program_dir / "__main__.py").read_text())
        (root / "Pulumi.prod.yaml").write_text(stack_file)
        (root / "conftest.py").write_text(next(b for b in python if "pytest_plugins" in b))
        (root / "tests").mkdir()
        test = next(b for b in python if "def test_" in b)
        (root / "tests" / "test_destination.py").write_text(test)

    return write


@pytest.fixture(scope="session", autouse=True)
def _botocore_models_parsed_once() -> Iterator[None]:
    """Each botocore session parses its service models anew (~0.3 s for Kinesis); share them.

    The suite creates hundreds of sessions (one per credential, one per role assumption), so
    about a third of a faulted push's time was `json.loads` of the same files. botocore's own
    `instance_cache` already shares one parsed model between a session's clients; this shares
    it between sessions of this process. Subprocesses parse their own, as in production.
    """
    cache: dict[str, Any] = {}
    original = JSONFileLoader.load_file

    def load_file(self: JSONFileLoader, file_path: str) -> Any:
        if file_path not in cache:
            cache[file_path] = original(self, file_path)
        return cache[file_path]

    with mock.patch.object(JSONFileLoader, "load_file", load_file):
        yield


@pytest.fixture
def backoff_in_milliseconds() -> Iterator[None]:
    """The publisher's backoff, jitter and all, a thousand times shorter.

    For tests that claim where a push stops or what it keeps, not how long it waits (the
    backoff itself is tested in tests/sync/test_publisher.py): the CLI's default base of 1 s
    made one of them sleep 18 s.
    """
    real = Publisher.backoff_seconds

    def shorter(self: Publisher, tries: int) -> float:
        return real(self, tries) / 1000

    with mock.patch.object(Publisher, "backoff_seconds", shorter):
        yield
