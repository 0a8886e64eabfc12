"""The wheel installed in a fresh venv, built once per test session and shared by xdist workers.

Building the wheel and installing it with its sandbox extra takes about a minute; tests that
need "installed from the wheel, not cloned" take the `installed` fixture (registered in
tests/conftest.py) and get the venv's bin directory. Nothing from this checkout is importable
there, and `run` keeps this checkout's environment out of the commands.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    built = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "-w",
        where / "dist",
        ROOT,
        cwd=where,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (where / "dist").glob("amplitude_kinesis_cohort-*.whl")
    venv = where / "venv"
    created = run(sys.executable, "-m", "venv", venv, cwd=where)
    assert created.returncode == 0, created.stderr
    # --no-compile: byte-compiling pulumi-aws's thousands of modules would double the install.
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile"]
    pip += ["-c", ROOT / "constraints.txt"]
    done = run(*pip, f"{wheel}[sandbox]", "pytest", cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Path]:
    """A fresh venv with the built wheel and its sandbox extra; its bin directory.

    Under xdist every worker has its own basetemp inside one directory of this session; the
    first worker to get there builds into that shared directory under a file lock, the others
    wait for it and reuse the result (pytest-xdist's documented way to share session data).
    """
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    where = shared / "installed-wheel"
    ready = where / "ready"
    with (shared / "installed-wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not ready.exists():
                where.mkdir(exist_ok=True)
                bin_dir = build(where)
                ready.write_text(str(bin_dir))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    yield Path(ready.read_text())
