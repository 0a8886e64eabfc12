"""The levels and `slow` split that `make check` relies on stays true (tests/conftest.py sets it).

The run-time half lives in tests/conftest.py: a unit test that starts moto or a subprocess
fails there. This module checks what can be read without running anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.slow_tests import exists
from tests.conftest import LEVELS, SLOW_LIST, slow_functions

pytestmark = pytest.mark.unit

# Fixtures that bring a moto world (the sandbox's plugin) or the installed wheel.
WORLD_FIXTURES = {"moto_world", "cohort_destination", "amplitude_session", "installed"}


def test_every_collected_test_has_exactly_one_level(request: pytest.FixtureRequest) -> None:
    # Stacked levels (a module's `unit` under a test's `integration`) would put a test in both
    # `make check` and out of it: tests/conftest.py only fills in a missing level.
    levels = {
        item.nodeid: sorted({m.name for m in item.iter_markers() if m.name in LEVELS})
        for item in request.session.items
    }
    assert {nodeid: found for nodeid, found in levels.items() if len(found) != 1} == {}


def test_no_unit_test_asks_for_a_moto_world(request: pytest.FixtureRequest) -> None:
    worldly = {
        item.nodeid: sorted(WORLD_FIXTURES & set(getattr(item, "fixturenames", ())))
        for item in request.session.items
        if item.get_closest_marker("unit") is not None
    }
    assert {nodeid: names for nodeid, names in worldly.items() if names} == {}


def test_every_slow_entry_names_a_test_function_that_exists() -> None:
    # A renamed or deleted test would silently fall back into `make check`.
    stale = [entry for entry in sorted(slow_functions()) if not exists(entry)]
    assert stale == [], f"{SLOW_LIST}: no such test; regenerate it (scripts/slow_tests.py)"


def test_the_slow_list_is_sorted_and_has_no_duplicates() -> None:
    entries = [line for line in Path(SLOW_LIST).read_text().splitlines() if line[:1] != "#"]
    assert entries == sorted(set(entries))
