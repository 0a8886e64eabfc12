"""The character, whitespace, width and emptiness rules snapshots follow in every format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sync import snapshots
from sync.errors import SnapshotError
from sync.limits import MAX_CSV_COLUMNS
from sync.snapshots import load_snapshot

pytestmark = pytest.mark.unit


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    yield connection
    connection.close()


def loaded(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    rows = con.execute("SELECT user_id, user_json FROM snapshot").fetchall()
    return {user_id: json.loads(user_json) for user_id, user_json in rows}


def test_tab_cr_and_lf_in_quoted_csv_values_keep_working(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b'\xef\xbb\xbfuser_id,note\r\nu1,"a\tb"\r\nu2,"two\r\nlines"\r\nu3,"x\ny"\r\n')

    assert load_snapshot(con, path).users == 3

    notes = {u: j["user_properties"]["note"] for u, j in loaded(con).items()}
    assert notes == {"u1": "a\tb", "u2": "two\r\nlines", "u3": "x\ny"}


def test_an_escaped_backslash_is_not_a_control_character(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # `\\b` is a backslash then b; `\\u0000` a backslash then "u0000": plain text, both.
    path = tmp_path / "s.jsonl"
    path.write_text('{"user_id":"u1","user_properties":{"a":"\\\\b","b":"\\\\u0000"}}\n')

    assert load_snapshot(con, path).users == 1
    assert loaded(con)["u1"]["user_properties"] == {"a": "\\b", "b": "\\u0000"}


@pytest.mark.parametrize(
    "char", [chr(c) for c in (*range(0x20), 0x7F)], ids=lambda c: f"U+{ord(c):04X}"
)
def test_every_control_character_in_a_user_id_is_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, char: str
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"user_id": f"u{char}1"}) + "\n")

    with pytest.raises(SnapshotError) as caught:
        load_snapshot(con, path)

    assert f"s.jsonl:1: control character: user_id 'u{char}1'"[:30] in str(caught.value)
    assert f"U+{ord(char):04X}" in str(caught.value)


@pytest.mark.parametrize(
    "char", [chr(c) for c in (*range(0x20), 0x7F)], ids=lambda c: f"U+{ord(c):04X}"
)
def test_property_values_refuse_control_characters_but_tab_cr_lf(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, char: str
) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"user_id": ["u1"], "note": [f"a{char}b"]}), path)

    if char in "\t\r\n":
        assert load_snapshot(con, path).users == 1
        return
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(con, path)
    assert f"user_properties.note holds U+{ord(char):04X}" in str(caught.value)


def test_empty_snapshots_are_empty_cohorts_in_every_format(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    files = {
        "header.csv": b"user_id,city\n",
        "zero.csv": b"",
        "bom-only.csv": b"\xef\xbb\xbf\r\n",
        "zero.jsonl": b"",
        "blank.jsonl": b"\n \n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pq.write_table(pa.table({"user_id": pa.array([], pa.string())}), tmp_path / "rows.parquet")

    users = {path.name: load_snapshot(con, path).users for path in sorted(tmp_path.iterdir())}

    assert users == dict.fromkeys([*files, "rows.parquet"], 0)


def test_wide_and_narrow_csv_build_the_same_users(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a CSV with empty cells, quotes and non-ASCII names, read by both property builders
    header = ["user_id", *(f'p"{i}é' for i in range(10))]
    rows = [["u1", *("" if i % 3 else f'v{i},"x"' for i in range(10))], ["u2", *[""] * 10]]
    path = tmp_path / "s.csv"

    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"'

    path.write_text("\n".join(",".join(map(quote, row)) for row in [header, *rows]) + "\n")
    load_snapshot(con, path)
    narrow = loaded(con)

    texts = raw(con)

    # WHEN the wide path is forced, in one pass and in passes of 3 columns, THEN it loads
    # exactly the same JSON text
    monkeypatch.setattr(snapshots, "_WIDE_CSV_COLUMNS", 2)
    load_snapshot(con, path)
    assert raw(con) == texts
    monkeypatch.setattr(snapshots, "_CSV_COLUMNS_PER_PASS", 3)
    load_snapshot(con, path)
    assert raw(con) == texts
    assert narrow["u1"]["user_properties"]['p"0é'] == 'v0,"x"'
    assert "user_properties" not in narrow["u2"]
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [
        (0,)
    ]  # the passes' tables are gone


def raw(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("SELECT user_id, user_json FROM snapshot ORDER BY rowid").fetchall()


def test_a_wide_csv_read_in_passes_reports_the_same_problems_at_the_same_lines(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN rows refused by the reader (a row of too many cells) and by the rules after it
    path = tmp_path / "s.csv"
    cells = ",".join(f"p{i}" for i in range(8))
    path.write_text(
        f"user_id,{cells}\nu1,{'a,' * 7}a\nu2,{'b,' * 9}b\n,{'c,' * 7}c\nu1,{'d,' * 7}d\n"
    )
    with pytest.raises(SnapshotError) as narrow:
        load_snapshot(con, path)

    # WHEN it is read in passes of 3 columns THEN the refusal is word for word the same
    monkeypatch.setattr(snapshots, "_WIDE_CSV_COLUMNS", 2)
    monkeypatch.setattr(snapshots, "_CSV_COLUMNS_PER_PASS", 3)
    with pytest.raises(SnapshotError) as passes:
        load_snapshot(con, path)
    assert str(passes.value) == str(narrow.value)
    assert ":3: malformed row" in str(narrow.value) and ":5: duplicate user_id" in str(narrow.value)


def test_ten_thousand_columns_are_validated(tmp_path: Path) -> None:
    # Within the state store's working memory (before: Out of Memory Error at 953.6 MiB)
    con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
    path = tmp_path / "wide.csv"
    names = [f"p{i}" for i in range(MAX_CSV_COLUMNS - 1)]
    path.write_text("user_id," + ",".join(names) + "\nu1," + ",".join("v" for _ in names) + "\n")

    assert load_snapshot(con, path).users == 1
    assert len(loaded(con)["u1"]["user_properties"]) == MAX_CSV_COLUMNS - 1


def test_a_header_past_the_column_limit_is_refused_before_it_is_parsed(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("user_id," + ",".join(f"p{i}" for i in range(MAX_CSV_COLUMNS)) + "\n")

    with pytest.raises(SnapshotError) as caught:
        load_snapshot(con, path)

    assert f"wide.csv:1: too many columns: header has {MAX_CSV_COLUMNS + 1:,} columns" in str(
        caught.value
    )


def test_a_header_line_without_end_is_read_bounded(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id," + "x" * (8 * 1024 * 1024))  # one 8 MiB line, no newline

    with pytest.raises(SnapshotError, match=r"s\.csv:1: too many columns: header line longer than"):
        load_snapshot(con, path)


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda path: path.write_text("user_id\nu1\n"), id="cut in place"),
        pytest.param(
            lambda path: path.with_name("next.csv").replace(path), id="replaced by another file"
        ),
    ],
)
def test_a_snapshot_that_changes_while_it_is_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rewrite: Any
) -> None:
    # GIVEN an export that rewrites the snapshot while the push reads it (before: exit 0 and
    # 5,393 false exits published for a 27% cut)
    path = tmp_path / "cohort.csv"
    path.write_text("user_id\n" + "".join(f"u{i}\n" for i in range(100)))
    (tmp_path / "next.csv").write_text("user_id\nu1\nu2\n")
    stage = snapshots._stage

    def stage_then_rewrite(*args: Any) -> Any:
        found = stage(*args)
        rewrite(path)
        return found

    monkeypatch.setattr(snapshots, "_stage", stage_then_rewrite)
    con = duckdb.connect(config={"threads": 1})

    with pytest.raises(SnapshotError) as refused:
        load_snapshot(con, path)

    assert str(refused.value) == (
        f"snapshot {path}: changed while it was read (its size, modification time or identity "
        "differ before and after); nothing was loaded or published"
    )
    assert refused.value.fix.startswith("wait for the export to finish writing the snapshot")
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]


def test_two_thousand_parquet_columns_are_validated_within_the_working_memory(
    tmp_path: Path,
) -> None:
    con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
    path = tmp_path / "wide.parquet"
    names = [f"p{i}" for i in range(1_999)]
    pq.write_table(pa.table({"user_id": ["u1"], **{n: [i] for i, n in enumerate(names)}}), path)

    assert load_snapshot(con, path).users == 1
    assert len(loaded(con)["u1"]["user_properties"]) == 1_999
