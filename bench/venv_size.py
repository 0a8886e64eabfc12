"""What `pulumi up` installs: a fresh venv from requirements.txt against pulumi + pulumi-aws alone.

Both venvs are built side by side in temporary directories, with the same interpreter, pip and
pins (constraints.txt); sizes are every file under each venv, byte-compiled as pip leaves them.
Target (issue 9): the requirements.txt venv at most 1.1x the pulumi + pulumi-aws one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.1


def tree_bytes(path: Path) -> int:
    """Bytes of every regular file under `path` (symlinks not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def build(venv: Path, requirements: list[str]) -> tuple[int, float, list[str]]:
    """Create `venv`, pip install `requirements` into it; (bytes, seconds, distributions)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", *requirements]
    installed = subprocess.run(pip, cwd=ROOT, capture_output=True, text=True, check=False)
    if installed.returncode:
        raise SystemExit(f"{' '.join(pip)} failed:\n{installed.stderr}")
    seconds = time.perf_counter() - started
    frozen = subprocess.run(
        [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout.split()
    return tree_bytes(venv), seconds, frozen


def main(argv: list[str] | None = None) -> int:
    """Build both venvs and print their sizes, the ratio and what differs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    constraints = str(ROOT / "constraints.txt")
    with tempfile.TemporaryDirectory(prefix="venv-size-") as tmp:
        alone = build(Path(tmp, "alone"), ["-c", constraints, "pulumi", "pulumi-aws"])
        program = build(Path(tmp, "program"), ["-r", str(ROOT / "requirements.txt")])
    mib = 1024 * 1024
    print(f"pulumi + pulumi-aws alone:   {alone[0] / mib:8.1f} MiB  ({alone[1]:.0f} s to install)")
    print(f"pip install -r requirements: {program[0] / mib:8.1f} MiB  ({program[1]:.0f} s)")
    ratio = program[0] / alone[0]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"ratio: {ratio:.3f}x (target <= {TARGET_RATIO}x: {verdict})")
    extra = sorted(set(program[2]) - set(alone[2]))
    print(f"distributions beyond pulumi + pulumi-aws's: {', '.join(extra) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
