"""The wheel installed in a fresh venv, built once per test session and shared by xdist workers.

Building the wheel and installing it with its sandbox extra takes a few seconds with uv. It
starts in the background as soon as a worker has collected a test that takes the `installed`
fixture (tests/conftest.py calls `start_building`), so the other tests run meanwhile and no
worker sits idle waiting for it; the fixture waits only for what is left. Nothing from this
checkout is importable in that venv, and `run` keeps this checkout's environment out of the
commands.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_SECONDS = 900


def run(*command: str | Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run a command with nothing of this checkout's environment: no PYTHONPATH, venv or AWS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("AWS_")
    }
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build(where: Path) -> Path:
    """Build the wheel into `where` and install it with its sandbox extra and pytest; bin dir."""
    # uv (the Makefile installs it into .venv) builds and installs from its cache in seconds;
    # pip took a minute of CPU for the same pinned tree, a third of the suite's spare core.
    uv = [sys.executable, "-m", "uv"]
    dist = where / "dist"
    built = run(*uv, "build", "-q", "--wheel", "--out-dir", dist, ROOT, cwd=where)
    if built.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{built.stderr}")
    (wheel,) = dist.glob("amplitude_kinesis_cohort-*.whl")
    venv = where / "venv"
    # The standard library's venv, so the customer's `python -m pip` is there as theirs would be.
    created = run(sys.executable, "-m", "venv", venv, cwd=where)
    if created.returncode != 0:
        raise RuntimeError(f"venv failed:\n{created.stderr}")
    install = [*uv, "pip", "install", "-q", "--python", venv / "bin" / "python"]
    install += ["-c", ROOT / "constraints.txt"]
    done = run(*install, f"{wheel}[sandbox]", "pytest", cwd=where)
    if done.returncode != 0:
        raise RuntimeError(f"installing the wheel failed:\n{done.stderr[-3000:]}")
    return venv / "bin"


def build_directory(config: pytest.Config) -> Path:
    """One directory per session: the parent of the xdist workers' own base temp dirs."""
    # The tmp_path_factory fixture's object, reachable from hooks only through the config.
    base = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "installed-wheel"


def start_building(config: pytest.Config) -> None:
    """Start the build in a background process, unless a worker of this session already did."""
    where = build_directory(config)
    where.mkdir(parents=True, exist_ok=True)
    with (where.parent / "installed-wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (where / "started").exists():
            return
        (where / "started").touch()
    with (where / "build.log").open("w") as log:
        subprocess.Popen(
            [sys.executable, "-m", "tests.installed", str(where)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="session")
def installed(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh venv with the built wheel and its sandbox extra; its bin directory."""
    start_building(request.config)  # a no-op when collection already started it
    where = build_directory(request.config)
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    while not (where / "ready").exists():
        if (where / "failed").exists():
            pytest.fail((where / "failed").read_text(), pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"no venv after {BUILD_TIMEOUT_SECONDS} s: see {where / 'build.log'}")
        time.sleep(0.5)
    yield Path((where / "ready").read_text())


def main(argv: list[str]) -> int:
    """The background build: `ready` holds the bin directory, or `failed` says why."""
    (where,) = map(Path, argv)
    try:
        bin_dir = build(where)
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
        (where / "failed").write_text(f"building the installed venv failed: {exc}")
        return 1
    (where / "ready").write_text(str(bin_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
