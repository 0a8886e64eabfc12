"""Build the Lambda consumer's code archive from the installed package: `cohort-lambda-archive`.

    cohort-lambda-archive --arch x86_64     # or arm64; writes dist/lambda-<arch>.zip here

It packs the `sync/` and `provisioning/constants.py` this package installed (a checkout's, with
`make lambda-archive`) next to the handler's runtime dependencies, pip-installed for Lambda's
platform: manylinux2014 wheels of the architecture, CPython 3.11, binary wheels only, at the
version this package pins (its `lambda` extra; a checkout's constraints.txt pins the rest too).
Entries are sorted and stamped 1980-01-01 with fixed permissions, and byte-code is left out, so
the archive's hash changes only when its content does. boto3 is not packaged: Lambda's Python
runtime provides it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from provisioning import constants as c
from provisioning.archive import (
    ARCHIVE_COMMAND,
    default_archive,
    project_entries,
    tree_entries,
    write_archive,
)

# Where `sync/` and `provisioning/` are: site-packages when installed, the root of a checkout.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = c.LAMBDA_RUNTIME.removeprefix("python")
# What the handler needs at run time beyond the runtime's own boto3: the `lambda` extra.
RUNTIME_EXTRA = "lambda"


def runtime_requirements() -> list[str]:
    """The `lambda` extra's requirements as this package pins them (`aws-lambda-powertools==…`)."""
    marker = f'extra == "{RUNTIME_EXTRA}"'
    required = metadata.requires(c.PROJECT_NAME) or []
    return [spec.split(";")[0].strip() for spec in required if marker in spec.replace("'", '"')]


def install_dependencies(target: Path, architecture: str) -> None:
    """pip-install the runtime requirements for Lambda's platform into `target`."""
    constraints = SOURCE_ROOT / "constraints.txt"  # a checkout's; a wheel has none
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(target),
        "--platform", PLATFORMS[architecture],
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        *(["-c", str(constraints)] if constraints.is_file() else []),
        *runtime_requirements(),
    ]  # fmt: skip
    subprocess.run(command, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Install the dependencies (or take them from --deps), then write the archive."""
    parser = argparse.ArgumentParser(
        prog=ARCHIVE_COMMAND, description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--arch", choices=sorted(PLATFORMS), default=c.DEFAULT_CONSUMER_ARCHITECTURE
    )
    parser.add_argument(
        "--out", type=Path, help=f"default: {default_archive('<arch>')} in this directory"
    )
    parser.add_argument(
        "--deps", type=Path, help="an already installed --target directory (skips pip)"
    )
    args = parser.parse_args(argv)
    out = args.out or Path.cwd() / default_archive(args.arch)
    with tempfile.TemporaryDirectory() as tmp:
        deps = args.deps
        if deps is None:
            deps = Path(tmp) / "deps"
            try:
                install_dependencies(deps, args.arch)
            except subprocess.CalledProcessError as exc:
                print(
                    f"{ARCHIVE_COMMAND}: pip could not install "
                    f"{', '.join(runtime_requirements())} for {PLATFORMS[args.arch]} "
                    f"(exit {exc.returncode}); no archive written",
                    file=sys.stderr,
                )
                return 1
        digest = write_archive([*tree_entries(deps), *project_entries(SOURCE_ROOT)], out)
    print(f"{out}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
