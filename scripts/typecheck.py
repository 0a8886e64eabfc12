"""mypy over the checkout, its cache seeded from the last clean run with the same pinned tree.

    .venv/bin/python scripts/typecheck.py [mypy arguments]

mypy's first run in a checkout follows every module the program imports, pulumi_aws's 3,140
among them: 33 s of one core, of which our own ~80 modules are about one. Its cache of a run
that passed is kept once per pinned dependency set (the hash of constraints.txt and the
interpreter's version) under the user's cache directory, as uv keeps the wheels, and a checkout
without a `.mypy_cache` starts from a copy of it. mypy decides for itself what in a cache is still
valid (options, each file's size, time and hash), so a seeded run reports what a cold one would.

The seed is only ever read by copying and only ever published by renaming a complete copy into
place, so commands running at once in several clones never write the same cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seed_directory(root: Path, cache_home: Path) -> Path:
    """Where the cache of a clean run is kept for this pinned tree and this interpreter."""
    key = hashlib.sha256((root / "constraints.txt").read_bytes())
    key.update(sys.version.encode())
    return cache_home / "amplitude-kinesis-cohort" / f"mypy-{key.hexdigest()[:16]}"


def default_cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def publish(cache: Path, seed: Path) -> bool:
    """Copy ``cache`` to ``seed`` unless a seed is there already; True when this call put it."""
    if seed.exists():
        return False
    seed.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{seed.name}.", dir=seed.parent))
    try:
        shutil.copytree(cache, staging, dirs_exist_ok=True)
        staging.rename(seed)  # atomic; refused when another run published first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def typecheck(root: Path, mypy_args: list[str], cache_home: Path) -> int:
    """Run mypy in ``root`` from a seeded cache; publish the cache of a clean run."""
    cache = root / ".mypy_cache"
    seed = seed_directory(root, cache_home)
    if not cache.exists() and seed.is_dir():
        shutil.copytree(seed, cache)
    status = subprocess.call([sys.executable, "-m", "mypy", *mypy_args], cwd=root)
    if status == 0 and cache.is_dir():
        publish(cache, seed)
    return status


def main(argv: list[str] | None = None) -> int:
    return typecheck(ROOT, sys.argv[1:] if argv is None else argv, default_cache_home())


if __name__ == "__main__":
    sys.exit(main())
