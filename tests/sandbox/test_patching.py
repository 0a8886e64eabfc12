"""PatchSet restores exactly what it replaced, own and inherited attributes alike."""

import pytest

from sandbox.patching import PatchSet

pytestmark = pytest.mark.unit


class Base:
    def inherited(self) -> str:
        return "base"


class Target(Base):
    def own(self) -> str:
        return "own"


def test_install_swaps_and_uninstall_restores_exactly() -> None:
    patches = PatchSet(
        [(Target, "own", lambda self: "patched"), (Target, "inherited", lambda self: "p")]
    )
    before = dict(Target.__dict__)

    patches.install()
    assert (Target().own(), Target().inherited()) == ("patched", "p")
    assert patches.previous(Target, "inherited") is Base.inherited

    patches.uninstall()
    assert dict(Target.__dict__) == before
    assert "inherited" not in Target.__dict__  # inherited again, not copied onto the class


def test_installed_nests_and_only_the_outer_block_restores() -> None:
    patches = PatchSet([(Target, "own", lambda self: "patched")])

    with patches.installed():
        with patches.installed():
            assert patches.is_installed()
        assert Target().own() == "patched"  # the inner block left it for the outer one

    assert not patches.is_installed()
    assert Target().own() == "own"
