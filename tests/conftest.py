"""The suite uses the harness's fixtures exactly as a customer's tests would."""

import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.loaders import JSONFileLoader
from moto.core.models import MockAWS

from sync.publisher import Publisher
from tests.installed import installed, start_building

pytest_plugins = ["sandbox.pytest_plugin", "pytester"]
__all__ = ["installed"]  # a session fixture: the wheel in a fresh venv, built once

TESTS = Path(__file__).resolve().parent
README = (TESTS.parent / "README.md").read_text()

# --- levels and `slow`: `make check` runs `unit and not slow`, `make test` runs everything ------

LEVELS = ("unit", "integration", "e2e")
# A test that names no level takes its directory's; tests/sync, tests/provisioning and the top
# level default to unit. tests/test_markers.py checks what each level may touch.
LEVEL_BY_DIRECTORY = {"e2e": "e2e", "sandbox": "integration"}
SLOW_LIST = TESTS / "slow.txt"
SLOW_SECONDS = 2.0  # scripts/slow_tests.py's threshold


def slow_functions() -> frozenset[str]:
    """`tests/...py::function` of every test function tests/slow.txt records as over 2 s."""
    lines = SLOW_LIST.read_text().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def function_id(node_id: str) -> str:
    """A test's function, whatever its parameters: `path::function`."""
    return node_id.split("[", 1)[0]


def level_of_directory(path: Path) -> str:
    relative = path.relative_to(TESTS).parts
    return LEVEL_BY_DIRECTORY.get(relative[0], "unit") if len(relative) > 1 else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = slow_functions()
    for item in items:
        if not any(item.get_closest_marker(level) for level in LEVELS):
            item.add_marker(level_of_directory(item.path))
        if function_id(item.nodeid) in slow:
            item.add_marker("slow")
    # Tests of the installed wheel last: its venv builds in the background meanwhile.
    items.sort(key=uses_installed)


def uses_installed(item: pytest.Item) -> bool:
    return "installed" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session: pytest.Session) -> None:
    # The installed wheel's venv builds while the other tests run (tests/installed.py).
    if not session.config.option.collectonly and any(map(uses_installed, session.items)):
        start_building(session.config)


_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the tests that ran over 2 s but are missing from tests/slow.txt (a hint, no verdict).

    Timings vary with the machine's load, so this only prints; regenerate the list from a
    quiet run with scripts/slow_tests.py.
    """
    slow = slow_functions()
    missing = sorted(
        {function_id(n) for n, s in _durations.items() if s > SLOW_SECONDS} - slow,
    )
    if missing:
        terminalreporter.write_sep("-", f"over {SLOW_SECONDS:g} s but not in tests/slow.txt")
        for name in missing:
            terminalreporter.write_line(name)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_moto_and_no_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test that starts moto or a subprocess fails, naming the marker to use instead."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(
            f"{request.node.nodeid} is a unit test (by its directory or its marker) but starts "
            "moto or a process: mark it `integration` (or `e2e`), see tests/conftest.py"
        )

    with (
        mock.patch.object(MockAWS, "start", refuse),
        mock.patch.object(subprocess.Popen, "__init__", refuse),
    ):
        yield


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
