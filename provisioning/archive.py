"""The Lambda consumer's code archive, written reproducibly: same content, same bytes."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path

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
