"""A state file is ours or refused: foreign files are read only, named, and left as they were."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import duckdb
import pytest

from sync.cli import main
from sync.destination import Destination
from sync.errors import StateError
from sync.membership_store import MembershipStore
from sync.push import PushRequest, run_push
from sync.state import StateStore
from sync.state_files import (
    CONSUMER_APPLICATION_ID,
    PUBLISHER_FORMAT,
    PUBLISHER_FORMAT_VERSION,
    FileKind,
    file_kind,
)

pytestmark = pytest.mark.unit

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"
DESTINATION = Destination(
    stream_name="cohorts",
    stream_arn=STREAM,
    region="us-east-1",
    role_arn="arn:aws:iam::123456789012:role/amplitude",
    role_name="amplitude",
    policy_arn="arn:aws:iam::123456789012:policy/amplitude",
    display_name="cohorts",
)


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file in the directory and a hash of its bytes: nothing added, nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def push_into(state: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.csv"
    snapshot.write_text("user_id\nu1\n", encoding="utf-8")

    def connect() -> object:
        raise AssertionError("a refused state file must stop the push before any AWS call")

    run_push(
        PushRequest(
            destination=DESTINATION,
            snapshot=snapshot,
            cohort_id="gs72ns",
            cohort_name="Power users",
            state=state,
        ),
        connect=connect,  # type: ignore[arg-type]
    )


def analytics_duckdb(path: Path, *, membership_of_another_shape: bool = False) -> None:
    con = duckdb.connect(str(path))
    if membership_of_another_shape:
        con.execute("CREATE TABLE membership (team VARCHAR, person VARCHAR)")
    else:
        con.execute("CREATE TABLE orders (id INTEGER, total DECIMAL(10, 2))")
    con.execute(
        "INSERT INTO "
        + (
            "membership VALUES ('a', 'b')"
            if membership_of_another_shape
            else "orders VALUES (1, 9.5)"
        )
    )
    con.close()


def app_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE membership (team TEXT, person TEXT)")
    db.execute("INSERT INTO membership VALUES ('a', 'b')")
    db.commit()
    db.close()


@pytest.mark.parametrize("membership_of_another_shape", [False, True])
def test_push_refuses_a_foreign_duckdb_database_and_leaves_it_as_it_was(
    tmp_path: Path, membership_of_another_shape: bool
) -> None:
    # GIVEN the user's own analytics database (before: exit 0 and our tables written into it,
    # or a BinderException traceback with the file modified)
    state = tmp_path / "analytics.duckdb"
    analytics_duckdb(state, membership_of_another_shape=membership_of_another_shape)
    before = fingerprint(tmp_path)

    with pytest.raises(StateError) as refused:
        push_into(state, tmp_path)

    message = str(refused.value)
    assert message.startswith(f"--state {state}: a DuckDB database of another application (tables ")
    assert "not a publisher state" in message
    assert "the DuckDB file `push` creates (default .cohort-sync/state.duckdb)" in message
    assert "left as it was" in refused.value.fix
    before.pop("snapshot.csv", None)
    after = fingerprint(tmp_path)
    after.pop("snapshot.csv", None)
    assert after == before


def test_push_refuses_the_consumers_sqlite_file_without_loading_an_extension(
    tmp_path: Path,
) -> None:
    # Before: DuckDB tried to download sqlite_scanner to open it.
    state = tmp_path / "consumer.sqlite"
    with MembershipStore(state):
        pass
    before = hashlib.sha256(state.read_bytes()).hexdigest()

    with pytest.raises(StateError, match=r"a SQLite database, not a publisher state"):
        push_into(state, tmp_path)

    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


def test_the_state_command_refuses_a_text_file_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "notes.duckdb"
    state.write_text("not a database\n", encoding="utf-8")

    assert main(["state", "--state", str(state)]) == 2

    err = capsys.readouterr().err
    assert "neither a DuckDB nor a SQLite database, not a publisher state" in err
    assert "Traceback" not in err
    assert state.read_text(encoding="utf-8") == "not a database\n"


@pytest.mark.parametrize("kind", ["foreign sqlite", "duckdb", "text"])
def test_the_consumer_refuses_what_is_not_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    state = tmp_path / "app.sqlite"
    if kind == "foreign sqlite":
        app_sqlite(state)  # before: sqlite3.OperationalError traceback, the file modified
        expected = "a SQLite database of another application (tables membership)"
    elif kind == "duckdb":
        with StateStore(state):
            pass
        expected = "a DuckDB database, not a consumer state"
    else:
        state.write_bytes(b"\x00\x01binary")
        expected = "neither a DuckDB nor a SQLite database"
    before = fingerprint(tmp_path)

    with pytest.raises(StateError, match=re.escape(expected)):
        MembershipStore(state)
    assert main(["members", "--state", str(state), "--cohort-id", "gs72ns"]) == 2

    assert "`consume` and `members` take the consumer state" in capsys.readouterr().err
    assert fingerprint(tmp_path) == before


def test_a_version_1_publisher_state_is_marked_and_keeps_its_data(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    with StateStore(state) as store:
        store.bind("gs72ns", "Power users", STREAM)
    con = duckdb.connect(str(state))  # as version 1 wrote it: no mark, a schema_version row
    con.execute("DELETE FROM meta")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()

    with StateStore(state, read_only=True) as store:
        assert [c.cohort_id for c in store.summary().cohorts] == ["gs72ns"]
    with StateStore(state) as store:
        assert [c.cohort_id for c in store.summary().cohorts] == ["gs72ns"]

    con = duckdb.connect(str(state), read_only=True)
    assert dict(con.execute("SELECT key, value FROM meta").fetchall()) == {
        "format": PUBLISHER_FORMAT,
        "format_version": PUBLISHER_FORMAT_VERSION,
    }
    con.close()


def test_a_publisher_state_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    with StateStore(state):
        pass
    con = duckdb.connect(str(state))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    con.close()

    with pytest.raises(StateError, match="format version 99, this version of cohort-sync reads"):
        StateStore(state)


def test_an_unmarked_consumer_state_of_ours_is_marked_and_keeps_its_data(tmp_path: Path) -> None:
    state = tmp_path / "consumer.sqlite"
    with MembershipStore(state) as store:
        store.stream_start(STREAM, from_start=True, now_epoch_seconds=5.0)
    db = sqlite3.connect(state)  # as the consumer wrote it before the mark
    db.execute("PRAGMA application_id = 0")
    db.execute("PRAGMA user_version = 0")
    db.close()

    with MembershipStore(state) as store:
        assert store.stream_start(STREAM, from_start=False, now_epoch_seconds=9.0) == 0.0

    db = sqlite3.connect(state)
    assert db.execute("PRAGMA application_id").fetchall() == [(CONSUMER_APPLICATION_ID,)]
    db.close()


def test_files_are_recognised_by_their_first_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    assert file_kind(tmp_path / "missing") is FileKind.NEW
    assert file_kind(empty) is FileKind.EMPTY
    assert file_kind(tmp_path) is FileKind.OTHER


def test_the_store_never_loads_or_installs_extensions(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.duckdb") as store:
        settings = store.connection.execute(
            "SELECT current_setting('autoload_known_extensions'), "
            "current_setting('autoinstall_known_extensions')"
        ).fetchall()
    assert settings == [(False, False)]


def test_an_empty_file_is_an_empty_consumer_state_but_no_publisher_state(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()

    with pytest.raises(StateError, match="an empty file, not a publisher state"):
        StateStore(empty)  # before: DuckDB's "not a valid DuckDB database file", as a cause
    assert empty.read_bytes() == b""
    with MembershipStore(empty) as store:  # SQLite makes an empty file its database
        assert store.checkpoints(STREAM) == {}
