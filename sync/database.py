"""The publisher state's database layer: DuckDB connections, transactions and disk failures.

The state store and the outbox run their SQL on one connection opened here; nobody else
begins, commits or rolls back. A full disk is an expected failure: it surfaces as
`StorageError` at the push's edge, with what it means for the data, never as a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Final

import duckdb

from sync.errors import StorageError

Config = dict[str, str | bool | int | float | list[str]]

# DuckDB must never reach for an extension at run time: given a SQLite file it tried to
# download `sqlite_scanner`. Everything used here (CSV, JSON, Parquet) is built in.
NO_EXTENSIONS: Final[Config] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}
# errno values of a write the disk refused: full, over quota, over the file-size limit, I/O.
_DISK_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
# How DuckDB words the same (it raises IOException, or TransactionException "Failed to
# commit: Could not write file …", or FatalException once a checkpoint failed mid-way).
_DISK_WORDS: Final = (
    "could not write",
    "no space left",
    "file too large",
    "disk quota",
    "input/output error",
)


def connect(path: str, *, read_only: bool = False, config: Config) -> duckdb.DuckDBPyConnection:
    """A connection that never loads extensions and draws no progress bar."""
    con = duckdb.connect(path, read_only=read_only, config={**config, **NO_EXTENSIONS})
    con.execute("SET enable_progress_bar = false")  # a library draws no bars
    return con


def scalar(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object] | None = None
) -> int:
    """The one integer a query returns (0 for NULL); fetchall, never leaving a result open."""
    row = con.execute(sql, params or {}).fetchall()[0]
    return int(row[0]) if row and row[0] is not None else 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll it back; the block's own error is the one raised."""
    con.begin()
    try:
        yield
        con.commit()
    except BaseException:
        rollback(con)
        raise


@contextmanager
def trial(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in a transaction that is always rolled back: a check that writes nothing."""
    con.begin()
    try:
        yield
    finally:
        rollback(con)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, unless the transaction already ended.

    A commit the disk refused ends the transaction itself; rolling back then raised "cannot
    rollback - no transaction is active" over the error that explains what happened.
    """
    with suppress(duckdb.Error):
        con.rollback()


def is_disk_failure(exc: BaseException) -> bool:
    """True when `exc` says the disk refused a write (full, quota, size limit, I/O error)."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_ERRNOS
    if isinstance(exc, duckdb.Error):
        text = str(exc).lower()
        return isinstance(exc, duckdb.FatalException) or any(w in text for w in _DISK_WORDS)
    return False


@contextmanager
def disk_failures(path: str, *, staged: Callable[[], bool]) -> Iterator[None]:
    """Turn a write the disk refused into StorageError, saying what became of the push."""
    try:
        yield
    except (duckdb.Error, OSError) as exc:
        if not is_disk_failure(exc):
            raise
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        free = f"free space on the disk holding {path} (or move --state to one with room)"
        if not staged():
            raise StorageError(
                f"publisher state {path}: the disk refused a write ({detail}); nothing was "
                "staged or sent",
                fix=f"{free}, then run the push again",
                exit_code=2,
            ) from exc
        raise StorageError(
            f"publisher state {path}: the disk refused a write after the sync was staged "
            f"({detail}); nothing is lost: what Kinesis did not acknowledge stays in the outbox",
            fix=f"{free}, then run `cohort-sync replay` (or the next push, which sends it first)",
            exit_code=1,
        ) from exc
