"""The Lambda consumer's code archive, written reproducibly: same content, same bytes."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path

from provisioning import constants as c

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_SKIPPED_PARTS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def project_entries(root: Path) -> list[tuple[str, Path]]:
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


# The console command (pyproject's [project.scripts]) that builds the archive from the installed
# package; a checkout's `make lambda-archive` runs the same code.
ARCHIVE_COMMAND = "cohort-lambda-archive"


def archive_command(architecture: str) -> str:
    """The documented command that builds the function's code archive for an architecture."""
    return f"{ARCHIVE_COMMAND} --arch {architecture}"


def default_archive(architecture: str) -> str:
    """Where the command writes the archive, relative to the project (`consumerArchive` "")."""
    return c.DEFAULT_CONSUMER_ARCHIVE.format(architecture=architecture)


def archive_problem(path: Path, architecture: str) -> str | None:
    """Why the function's code archive at `path` cannot be deployed, or None when it can."""
    if not path.is_file():
        return (
            f"no code archive at {path}; build it with `{archive_command(architecture)}` "
            "(the function is never deployed without its code)"
        )
    if not _holds_handler(path):
        return (
            f"{path} is not a zip holding {c.LAMBDA_HANDLER_FILE}; rebuild it with "
            f"`{archive_command(architecture)}`"
        )
    return None


def _holds_handler(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return c.LAMBDA_HANDLER_FILE in archive.namelist()
