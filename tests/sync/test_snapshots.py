"""Snapshot loading: every problem reported with file and line, nothing loaded on any problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sync.errors import SnapshotError
from sync.limits import MAX_RECORD_BYTES
from sync.snapshots import DEFAULT_MAX_USER_BYTES, SnapshotSummary, load_snapshot

pytestmark = pytest.mark.unit


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(config={"threads": 1})
    yield connection
    connection.close()


def loaded(con: duckdb.DuckDBPyConnection, table: str = "snapshot") -> dict[str, Any]:
    rows = con.execute(f"SELECT user_id, user_json FROM {table}").fetchall()
    return {user_id: json.loads(user_json) for user_id, user_json in rows}


def table_exists(con: duckdb.DuckDBPyConnection, table: str = "snapshot") -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t", {"t": table}
    ).fetchall()
    return bool(rows[0][0])


def load_error(con: duckdb.DuckDBPyConnection, path: Path, **kw: Any) -> str:
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(con, path, **kw)
    assert not table_exists(con), "nothing may be loaded when the snapshot has problems"
    return str(caught.value)


# -- round trips -------------------------------------------------------------------------------


def test_csv_round_trips_properties_as_strings_and_omits_empty_cells(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_text('city,user_id,n\nSF,u1,3\n,u2,\n"Zürich, CH",ü東,"say ""hi"""\n')

    summary = load_snapshot(con, path)

    assert summary == SnapshotSummary(path, "csv", 3)
    assert loaded(con) == {
        "u1": {"user_id": "u1", "user_properties": {"city": "SF", "n": "3"}},
        "u2": {"user_id": "u2"},
        "ü東": {"user_id": "ü東", "user_properties": {"city": "Zürich, CH", "n": 'say "hi"'}},
    }


def test_user_json_is_compact_and_keeps_unicode(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id,city\nu1,Zürich\nu2,\n")
    load_snapshot(con, path)
    rows = dict(con.execute("SELECT user_id, user_json FROM snapshot").fetchall())
    assert rows == {
        "u1": '{"user_id":"u1","user_properties":{"city":"Zürich"}}',
        "u2": '{"user_id":"u2"}',
    }


def test_jsonl_round_trips_numbers_nested_objects_and_unicode(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    users = [
        {"user_id": "u1", "user_properties": {"n": 1.5, "i": 42, "ok": True, "none": None}},
        {"user_id": "u2", "user_properties": {"nested": {"tags": ["a", "日本"], "x": {"y": -1}}}},
        {"user_id": "u3"},
        {"user_id": "u4", "user_properties": {}},
        {"user_id": "u5", "user_properties": None},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in users) + "\n")

    assert load_snapshot(con, path).users == 5

    assert loaded(con) == {
        "u1": users[0],
        "u2": users[1],
        "u3": {"user_id": "u3"},
        "u4": {"user_id": "u4"},  # {} and null both mean "no properties": the key is omitted
        "u5": {"user_id": "u5"},
    }


def test_parquet_property_columns_keep_types_and_omit_nulls(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.parquet"
    table = pa.table({"user_id": ["u1", "é"], "n": [1, None], "city": ["SF", "Zürich"]})
    pq.write_table(table, path)

    load_snapshot(con, path, table="snap")

    assert loaded(con, "snap") == {
        "u1": {"user_id": "u1", "user_properties": {"n": 1, "city": "SF"}},
        "é": {"user_id": "é", "user_properties": {"city": "Zürich"}},
    }


@pytest.mark.parametrize(
    "column",
    [
        pa.array(
            [{"plan": "pro", "seats": 3}, None],
            pa.struct([("plan", pa.string()), ("seats", pa.int64())]),
        ),
        pa.array(['{"plan": "pro", "seats": 3}', None], pa.string()),
    ],
    ids=["struct", "json-text"],
)
def test_parquet_user_properties_column(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, column: pa.Array
) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "user_properties": column}), path)

    load_snapshot(con, path)

    assert loaded(con) == {
        "u1": {"user_id": "u1", "user_properties": {"plan": "pro", "seats": 3}},
        "u2": {"user_id": "u2"},
    }


def test_explicit_format_overrides_extension(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "export.txt"
    path.write_text('{"user_id": "u1"}\n')
    assert load_snapshot(con, path, fmt="jsonl") == SnapshotSummary(path, "jsonl", 1)


def test_reload_replaces_the_table(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("user_id\na\nb\n")
    second.write_text("user_id\nc\n")
    load_snapshot(con, first)
    load_snapshot(con, second)
    assert set(loaded(con)) == {"c"}


def test_failed_reload_leaves_the_previous_table(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text("user_id\na\n")
    bad.write_text("user_id\nb\nb\n")
    load_snapshot(con, good)
    with pytest.raises(SnapshotError, match="duplicate user_id"):
        load_snapshot(con, bad)
    assert set(loaded(con)) == {"a"}


def test_default_max_user_bytes_leaves_room_for_envelope_and_key() -> None:
    assert DEFAULT_MAX_USER_BYTES + 256 * 4 < MAX_RECORD_BYTES


# -- one test per problem kind ------------------------------------------------------------------


def test_missing_user_id(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id,city\nu1,SF\n,LA\n")
    message = load_error(con, path)
    assert f"{path}:3: missing user_id: user_id is missing or empty" in message
    assert "(missing user_id: 1)" in message


def test_missing_user_id_jsonl(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"user_id": "u1"}\n{"user_properties": {"a": 1}}\n{"user_id": ""}\n')
    message = load_error(con, path)
    assert f"{path}:2: missing user_id" in message
    assert f"{path}:3: missing user_id" in message


def test_duplicate_user_id_names_both_lines(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    # The blank line is skipped by the reader but still counted for line numbers.
    path.write_text("user_id,city\nu1,SF\nu2,LA\n\nu1,NY\n")
    message = load_error(con, path)
    assert f"{path}:5: duplicate user_id: user_id 'u1' repeats line 2" in message


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("user_id,city\nu1,SF\nu2\n", 3, "malformed row: missing columns"),
        ("user_id,city\nu1,SF,extra\n", 2, "malformed row: too many columns"),
    ],
    ids=["too-few-columns", "too-many-columns"],
)
def test_malformed_csv_rows(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "s.csv"
    path.write_text(text)
    assert f"{path}:{line}: {problem}" in load_error(con, path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "malformed row: invalid JSON"),
        ("[1, 2]", "malformed row: a ARRAY: must be a JSON object"),
        (
            '{"user_id": "u2", "user_properties": [1]}',
            "malformed row: user_properties is ARRAY: must be an object",
        ),
        (
            '{"user_id": "u2", "user_properties": "x"}',
            "malformed row: user_properties is VARCHAR: must be",
        ),
        ('{"user_id": 7}', "malformed row: user_id 7: must be a string"),
        (
            '{"user_id": "u2", "props": {}}',
            "malformed row: unknown keys [props]: only user_id and user_properties",
        ),
    ],
    ids=["invalid-json", "not-object", "props-array", "props-string", "id-number", "unknown-key"],
)
def test_malformed_jsonl_rows(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"user_id": "u1"}\n\n' + line + "\n")
    assert f"{path}:3: {problem}" in load_error(con, path)


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("s.csv", b"user_id,city\nu1,SF\nu2,\xff\xfe\n", 3),
        ("s.csv", b"user_id,c\xe9\nu1,SF\n", 1),
        ("s.jsonl", b'{"user_id": "u1"}\n{"user_id": "\xc3"}\n', 2),
    ],
    ids=["csv-row", "csv-header", "jsonl"],
)
def test_bad_encoding(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str, data: bytes, line: int
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = load_error(con, path)
    assert f"{path}:{line}: bad encoding: " in message
    assert "not UTF-8" in message


def test_bad_encoding_shifts_no_later_line_numbers(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"user_id": "\xff"}\n{"user_id": "a"}\n{"user_id": "a"}\n')
    message = load_error(con, path)
    assert f"{path}:1: bad encoding" in message
    assert f"{path}:3: duplicate user_id: user_id 'a' repeats line 2" in message


def test_user_too_large(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"user_id": "u1"}\n{"user_id": "big", "user_properties": {"a": "' + "x" * 200 + '"}}\n'
    )
    message = load_error(con, path, max_user_bytes=100)
    assert f"{path}:2: user too large: user JSON is 244 bytes: at most 100 allowed" in message


def test_unknown_format(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.xlsx"
    path.write_text("whatever")
    message = load_error(con, path)
    assert f"snapshot {path}: 1 problem(s) (unknown format: 1)" in message
    assert "format '.xlsx': must be one of csv, jsonl, parquet" in message
    assert "format 'xml'" in load_error(con, path, fmt="xml")


def test_missing_file(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    message = load_error(con, path)
    assert f"{path}: missing file: file not found" in message


@pytest.mark.parametrize(
    ("name", "write", "expected"),
    [
        ("s.csv", lambda p: p.write_text("id,city\n1,SF\n"), ":1: no user_id column: header"),
        (
            "s.csv",
            lambda p: p.write_text("\nuser_id\nu1\n"),
            ":1: no user_id column: no header row",
        ),
        (
            "s.parquet",
            lambda p: pq.write_table(pa.table({"uid": ["a"]}), p),
            ": no user_id column: columns ['uid']",
        ),
    ],
    ids=["csv", "blank-first-line-csv", "parquet"],
)
def test_no_user_id_column(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str, write: Any, expected: str
) -> None:
    path = tmp_path / name
    write(path)
    assert f"{path}{expected}" in load_error(con, path)


def test_not_a_parquet_file(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    path.write_bytes(b"PAR1 but not really")
    assert f"{path}: malformed row: not a readable Parquet file" in load_error(con, path)


def test_every_problem_is_counted_but_only_the_first_few_listed(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id,a\n" + "".join(f"u{i % 10},x\n" for i in range(40)) + ",y\nq\n")
    message = load_error(con, path, max_problems=3)
    assert "32 problem(s) (duplicate user_id: 30, malformed row: 1, missing user_id: 1)" in message
    assert len([line for line in message.splitlines() if line.startswith(f"  {path}:")]) == 3
    assert f"{path}:12: duplicate user_id: user_id 'u0' repeats line 2" in message
    assert "... 29 more" in message


def test_table_name_must_be_an_identifier(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id\na\n")
    with pytest.raises(ValueError, match=r"table name 'x; DROP TABLE y': only"):
        load_snapshot(con, path, table="x; DROP TABLE y")


@pytest.mark.parametrize(
    "value", ["NaN", "-Infinity", "inf", "nan", "[1, INFINITY]"], ids=lambda v: v.strip("[]")
)
def test_jsonl_non_finite_numbers_are_malformed_not_published(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, value: str
) -> None:
    # GIVEN a JSONL property DuckDB's JSON reader accepts but JSON does not have
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"user_id": "u1"}\n'
        f'{{"user_id": "u2", "user_properties": {{"score": {value}}}}}\n'
        '{"user_id": "u3", "user_properties": {"note": "x:nan,"}}\n'
    )
    # WHEN it is loaded, THEN that line is refused, naming the rule; valid lookalikes are not
    message = load_error(con, path)
    assert message.startswith(f"snapshot {path}: 1 problem(s) (malformed row: 1)")
    assert (
        f"{path}:2: malformed row: user_properties holds NaN or Infinity, which JSON cannot "
        "carry: use null, a string or a finite number"
    ) in message


def test_parquet_non_finite_numbers_are_malformed_not_published(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    columns = tmp_path / "columns.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "score": [1.5, float("nan")]}), columns)
    nested = tmp_path / "nested.parquet"
    props = [{"s": 1.0}, {"s": float("-inf")}, {"s": 2.0}]
    pq.write_table(pa.table({"user_id": ["u1", "u2", "u3"], "user_properties": props}), nested)
    for path in (columns, nested):
        assert f"{path}:2: malformed row: user_properties holds NaN" in load_error(con, path)
