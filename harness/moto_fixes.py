"""moto behaviour the harness corrects so tests measure our code, not moto's races.

moto 5.2.5 numbers a shard's records as "highest so far + 1" with no lock
(`moto.kinesis.models.Shard.put_record`), so two concurrent PutRecords calls landing on one shard
can get the same sequence number and one record silently replaces the other; and
`Shard.get_records` iterates the same dict a writer may be growing. Kinesis never does either.
While installed, every shard's writes and reads are serialized by one lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.kinesis.models import Shard

_LOCK = threading.RLock()
_ORIGINALS: dict[str, Callable[..., Any]] = {}
_PATCHED = ("put_record", "get_records")


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def is_installed() -> bool:
    """True while shard access is serialized."""
    return bool(_ORIGINALS)


def install() -> None:
    """Serialize shard writes and reads (idempotent)."""
    if _ORIGINALS:
        return
    for name in _PATCHED:
        original = Shard.__dict__[name]
        _ORIGINALS[name] = original
        setattr(Shard, name, _serialized(original))


def uninstall() -> None:
    """Restore moto's own methods (idempotent)."""
    for name, original in _ORIGINALS.items():
        setattr(Shard, name, original)
    _ORIGINALS.clear()


@contextmanager
def moto_fixes_installed() -> Iterator[None]:
    """The fixes for the block, restored after unless they were already installed."""
    already = is_installed()
    install()
    try:
        yield
    finally:
        if not already:
            uninstall()
