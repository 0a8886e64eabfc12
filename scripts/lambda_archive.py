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
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from provisioning.archive import project_entries, tree_entries, write_archive

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = "3.11"  # provisioning.constants.LAMBDA_RUNTIME
# What the handler needs at run time beyond the runtime's own boto3.
RUNTIME_REQUIREMENTS = ("aws-lambda-powertools",)


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
        digest = write_archive([*tree_entries(deps), *project_entries(ROOT)], out)
    print(f"{out}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
