"""Build the Lambda consumer's code archive reproducibly: the same inputs give the same bytes.

    make lambda-archive ARCH=x86_64     # or ARCH=arm64; writes dist/lambda-<arch>.zip

The runtime dependencies (aws-lambda-powertools and what it needs, pinned by constraints.txt) are
installed for Lambda's platform — manylinux2014 wheels of the architecture, CPython 3.11, binary
wheels only — next to this project's `sync/` and `provisioning/constants.py`. Entries are sorted
and stamped 1980-01-01 with fixed permissions, and byte-code is left out, so the archive's hash
changes only when its content does. boto3 is not packaged: Lambda's Python runtime provides it.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = "3.11"  # provisioning.constants.LAMBDA_RUNTIME
# What the handler needs at run time beyond the runtime's own boto3.
RUNTIME_REQUIREMENTS = ("aws-lambda-powertools",)
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED_PARTS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def project_entries(root: Path = ROOT) -> list[tuple[str, Path]]:
    """(name in the archive, file) for this project's code the handler imports."""
    entries = [(f"sync/{p.name}", p) for p in sorted((root / "sync").glob("*.py"))]
    for name in ("__init__.py", "constants.py"):
        entries.append((f"provisioning/{name}", root / "provisioning" / name))
    return entries


def tree_entries(directory: Path) -> list[tuple[str, Path]]:
    """Every file under a directory (an installed --target), byte-code and caches left out."""
    entries = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or _SKIPPED_PARTS & set(relative.parts):
            continue
        if path.suffix in _SKIPPED_SUFFIXES:
            continue
        entries.append((relative.as_posix(), path))
    return entries


def write_archive(entries: Iterable[tuple[str, Path]], out: Path) -> str:
    """Write a deterministic zip (sorted names, fixed times and modes); its sha256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    unique = dict(entries)
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(unique):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, so the mode above is honoured everywhere
            archive.writestr(info, unique[name].read_bytes(), compresslevel=9)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def install_dependencies(target: Path, architecture: str) -> None:
    """pip-install the runtime requirements for Lambda's platform into `target`."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(target),
        "--platform", PLATFORMS[architecture],
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        "-c", str(ROOT / "constraints.txt"),
        *RUNTIME_REQUIREMENTS,
    ]  # fmt: skip
    subprocess.run(command, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Install the dependencies (or take them from --deps), then write the archive."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--out", type=Path, help="default: dist/lambda-<arch>.zip")
    parser.add_argument(
        "--deps", type=Path, help="an already installed --target directory (skips pip)"
    )
    args = parser.parse_args(argv)
    out = args.out or ROOT / "dist" / f"lambda-{args.arch}.zip"
    with tempfile.TemporaryDirectory() as tmp:
        deps = args.deps
        if deps is None:
            deps = Path(tmp) / "deps"
            try:
                install_dependencies(deps, args.arch)
            except subprocess.CalledProcessError as exc:
                print(
                    f"lambda-archive: pip could not install {', '.join(RUNTIME_REQUIREMENTS)} for "
                    f"{PLATFORMS[args.arch]} (exit {exc.returncode}); no archive written",
                    file=sys.stderr,
                )
                return 1
        digest = write_archive([*tree_entries(deps), *project_entries()], out)
    print(f"{out}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
