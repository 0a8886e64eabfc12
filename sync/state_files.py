"""What a `--state` path holds, and whether it is ours to write.

Three kinds of state live in this project, one name each:

- the *publisher state*: the DuckDB file `push` writes (membership, syncs, outbox);
- the *consumer state*: the SQLite file `consume` writes (checkpoints, membership);
- the *stack state*: what the Pulumi engine (or `local`) records of the resources; not here.

Each file of ours carries a mark (a `meta` row in DuckDB, `PRAGMA application_id` in SQLite,
as SQLite's own documentation suggests for application file formats), so a file of anybody
else's is recognised before anything is written into it. The file is recognised by its first
bytes, never by opening it as a database: DuckDB would try to load (and download) an extension
for a SQLite file, and SQLite would create a database in an empty one.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Final

from sync.errors import StateError

DEFAULT_PUBLISHER_STATE: Final = Path(".cohort-sync/state.duckdb")
DEFAULT_CONSUMER_STATE: Final = Path(".cohort-sync/consumer.sqlite")

# The publisher's mark: a row of its `meta` table. Version 1 files (before the mark) hold only
# `schema_version`; they are ours when every table is one of ours, and are marked on open.
PUBLISHER_FORMAT: Final = "cohort-sync publisher state"
PUBLISHER_FORMAT_VERSION: Final = "2"
# The consumer's mark: SQLite's 32-bit application id ("CSYC"), and its format version in
# `PRAGMA user_version`. Files written before the mark carry id 0 and only our tables and columns.
CONSUMER_APPLICATION_ID: Final = 0x43535943
CONSUMER_FORMAT_VERSION: Final = 1

# https://www.sqlite.org/fileformat.html#the_database_header: the first 16 bytes.
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
# DuckDB's main header: a checksum (8 bytes), then the magic bytes "DUCK" (duckdb's
# src/include/duckdb/storage/storage_info.hpp, MainHeader::MAGIC_BYTES).
_DUCKDB_MAGIC: Final = b"DUCK"
_DUCKDB_MAGIC_OFFSET: Final = 8

_PUBLISHER_EXPECTS: Final = (
    "`push`, `replay` and `state` take the publisher state: the DuckDB file `push` creates "
    f"(default {DEFAULT_PUBLISHER_STATE})"
)
_CONSUMER_EXPECTS: Final = (
    "`consume` and `members` take the consumer state: the SQLite file `consume` creates "
    f"(default {DEFAULT_CONSUMER_STATE})"
)
_FIX: Final = (
    "pass --state a path of its own (a new path is created) or the file this command wrote "
    "before; the file named was left as it was"
)


class FileKind(StrEnum):
    """What the first bytes of a file say it is."""

    NEW = "no file yet"
    EMPTY = "an empty file"
    DUCKDB = "a DuckDB database"
    SQLITE = "a SQLite database"
    OTHER = "neither a DuckDB nor a SQLite database"


def file_kind(path: Path) -> FileKind:
    """The kind of file at `path`, read from its first bytes only."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return FileKind.NEW
    except IsADirectoryError:
        return FileKind.OTHER
    if not head:
        return FileKind.EMPTY
    if head == _SQLITE_MAGIC:
        return FileKind.SQLITE
    if head[_DUCKDB_MAGIC_OFFSET : _DUCKDB_MAGIC_OFFSET + len(_DUCKDB_MAGIC)] == _DUCKDB_MAGIC:
        return FileKind.DUCKDB
    return FileKind.OTHER


def existing(path: Path | str, kind: FileKind, refusal: Callable[[str, str], StateError]) -> bool:
    """True when `path` holds a file of `kind`; False when there is none yet; else refused.

    SQLite takes an empty file for an empty database; DuckDB refuses one, so for the publisher
    an empty file is refused with the rest (nothing in it to lose: delete it).
    """
    found = file_kind(Path(path))
    if found is FileKind.NEW or (found is FileKind.EMPTY and kind is FileKind.SQLITE):
        return False
    if found is not kind:
        raise refusal(str(path), found.value)
    return True


def not_publisher_state(path: Path | str, what: str) -> StateError:
    """The refusal of a file that is not the publisher's: what it is, what --state expects."""
    return StateError(
        f"--state {path}: {what}, not a publisher state; {_PUBLISHER_EXPECTS}", fix=_FIX
    )


def not_consumer_state(path: Path | str, what: str) -> StateError:
    """The refusal of a file that is not the consumer's: what it is, what --state expects."""
    return StateError(
        f"--state {path}: {what}, not a consumer state; {_CONSUMER_EXPECTS}", fix=_FIX
    )


def foreign_tables(tables: set[str]) -> str:
    """How a database of another application is named in a refusal: by its tables."""
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return f"tables {shown}"


def newer_format(path: Path | str, found: str, reads: str) -> StateError:
    """The refusal of a state file of ours written by a newer version of this program."""
    return StateError(
        f"--state {path}: format version {found}, this version of cohort-sync reads up to {reads}",
        fix="upgrade cohort-sync to the version that wrote the file",
    )
