"""Attributes the harness replaces on moto's classes, installed and restored as one set."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_MISSING = object()


class PatchSet:
    """(class, attribute, replacement) triples: install() swaps them in, uninstall() restores."""

    def __init__(self, patches: Sequence[tuple[type, str, Any]]) -> None:
        self._patches = tuple(patches)
        # What each class itself held before install (_MISSING: inherited or absent), and what
        # the attribute resolved to then, for replacements that call the behaviour they replace.
        self._originals: dict[tuple[type, str], Any] = {}
        self._previous: dict[tuple[type, str], Any] = {}

    def is_installed(self) -> bool:
        """Whether the replacements are in place."""
        return bool(self._originals)

    def install(self) -> None:
        """Swap the replacements in (idempotent)."""
        if self.is_installed():
            return
        for cls, name, replacement in self._patches:
            self._originals[(cls, name)] = cls.__dict__.get(name, _MISSING)
            self._previous[(cls, name)] = getattr(cls, name, None)
            setattr(cls, name, replacement)

    def uninstall(self) -> None:
        """Restore moto's own attributes exactly (idempotent)."""
        for (cls, name), original in reversed(list(self._originals.items())):
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._originals.clear()
        self._previous.clear()

    def previous(self, cls: type, name: str) -> Any:
        """What `cls.name` resolved to before install: the behaviour a replacement wraps."""
        return self._previous[(cls, name)]

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Installed for the block; left in place if an outer block installed it."""
        already = self.is_installed()
        self.install()
        try:
            yield
        finally:
            if not already:
                self.uninstall()
