"""scripts/typecheck.py: a checkout seeded from an earlier clean run still reports every error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.typecheck import publish, seed_directory, typecheck

# mypy runs as a subprocess here, as `make` runs it.
pytestmark = pytest.mark.integration

GOOD = "def double(x: int) -> int:\n    return 2 * x\n"
BROKEN = "from checked import double\n\nvalue: str = double(1)\n"


def _checkout(directory: Path, checked: str, user: str = "") -> Path:
    directory.mkdir()
    (directory / "constraints.txt").write_text("pinned==1\n")
    (directory / "checked.py").write_text(checked)
    (directory / "user.py").write_text(user or "from checked import double\n\nvalue = double(1)\n")
    return directory


def _contents(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_a_clean_run_seeds_the_next_checkout_which_still_finds_a_new_error(tmp_path: Path) -> None:
    cache_home = tmp_path / "cache"
    args = ["--strict", "--no-sqlite-cache", "checked.py", "user.py"]
    first = _checkout(tmp_path / "first", GOOD)
    seed = seed_directory(first, cache_home)

    # GIVEN a clean run in one checkout: its cache becomes the seed for this pinned tree
    assert typecheck(first, args, cache_home) == 0
    assert any(seed.glob("*/checked.meta*"))
    (seed / "from-the-seed").write_text("")  # to see the next checkout start from it
    seeded = _contents(seed)

    # WHEN a fresh checkout of the same pins changes a module the seed has as clean
    second = _checkout(tmp_path / "second", GOOD, user=BROKEN)
    # THEN it starts from the seed and mypy still reports the error; the seed is left as it was
    assert typecheck(second, args, cache_home) == 1
    assert (second / ".mypy_cache" / "from-the-seed").exists()
    assert _contents(seed) == seeded


def test_another_pinned_tree_gets_its_own_seed(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout", GOOD)
    before = seed_directory(checkout, tmp_path)
    (checkout / "constraints.txt").write_text("pinned==2\n")
    assert seed_directory(checkout, tmp_path) != before


def test_publishing_over_a_seed_already_there_leaves_it_whole(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mine").write_text("mine")
    seed = tmp_path / "seeds" / "mypy-x"
    seed.mkdir(parents=True)
    (seed / "theirs").write_text("theirs")

    assert publish(cache, seed) is False
    assert [p.name for p in seed.iterdir()] == ["theirs"]
    assert [p.name for p in seed.parent.iterdir()] == ["mypy-x"]  # no staging copy left behind

    shutil.rmtree(seed)
    assert publish(cache, seed) is True
    assert (seed / "mine").read_text() == "mine"


def test_a_run_with_errors_publishes_no_seed(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout", GOOD, user=BROKEN)
    assert typecheck(checkout, ["--strict", "checked.py", "user.py"], tmp_path / "cache") == 1
    assert not seed_directory(checkout, tmp_path / "cache").exists()
