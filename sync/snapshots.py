"""Load a cohort snapshot (CSV, JSONL, Parquet) into DuckDB, validating the whole file first.

The target table is `(user_id VARCHAR, user_json VARCHAR)`; `user_json` is the compact JSON user
object Amplitude expects, `{"user_id":"u1","user_properties":{"city":"SF"}}`, with
`user_properties` left out when the user has none. It is built in SQL, never row by row in Python.

Formats:

- CSV: a header row naming a `user_id` column; every other column is a property whose value is
  the cell's text. Empty cells (quoted or not) mean "no such property": the key is omitted.
  Blank lines are skipped when the file has several columns; in a single-column file a blank
  line is a row with a missing user_id. Line numbers count the header as line 1; a quoted value
  spanning several lines counts as one line. At most MAX_CSV_COLUMNS columns; a UTF-8 BOM and
  CRLF line ends are accepted. A file that is empty or blank is an empty snapshot.
- JSONL: one `{"user_id": "...", "user_properties": {...}}` object per line; `user_properties`
  is optional (null and `{}` mean none); property values keep their JSON types. Blank lines are
  skipped; any other key is a malformed row.
- Parquet: a `user_id` column (cast to text) and either property columns (null values omitted,
  native types kept: numbers stay numbers; at most MAX_PARQUET_COLUMNS columns) or a single
  `user_properties` column that is a struct, a map, or JSON text holding an object. "Line" is the
  1-based row number.

Every format:

- A snapshot with no users (a header-only or empty CSV, an empty JSONL, a Parquet file with no
  rows) is valid: the cohort is empty. The mass-exit guard (sync/mass_exit.py) decides whether
  a cohort with members may be emptied.
- The file must not change while it is read: its identity, size and modification time are
  compared before and after, and a snapshot an export is still writing is refused.
- user_id: a non-empty string without C0 control characters or DEL, and without leading or
  trailing whitespace (refused, never trimmed: a trimmed id would name another user).
- Property values (and keys, at any depth): no C0 control characters or DEL except tab, CR and
  LF, which quoted multi-line CSV values legitimately hold.

JSON has no NaN or Infinity; DuckDB reads and writes them as numbers, so a JSONL or Parquet row
holding one is a malformed row rather than a message no strict parser can read.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, NoReturn

import duckdb

from sync.contract import USER_ID, USER_PROPERTIES
from sync.errors import SnapshotError
from sync.limits import (
    MAX_CSV_COLUMNS,
    MAX_PARQUET_COLUMNS,
    MAX_PARTITION_KEY_CHARS,
    MAX_RECORD_BYTES,
)

FORMATS: Final = ("csv", "jsonl", "parquet")
EXTENSIONS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
# The message envelope (cohort name and id, computed_time, message_id, brackets) around one user.
ENVELOPE_RESERVE_BYTES: Final = 4096
# A partition key is at most 256 characters, up to 4 UTF-8 bytes each, and counts toward the limit.
DEFAULT_MAX_USER_BYTES: Final = (
    MAX_RECORD_BYTES - 4 * MAX_PARTITION_KEY_CHARS - ENVELOPE_RESERVE_BYTES
)
DEFAULT_MAX_PROBLEMS: Final = 20

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_STAGE = "_snapshot_stage"
_REJECTS = "_snapshot_rejects"
_REJECT_SCANS = "_snapshot_reject_scans"
# No valid JSON text holds a raw U+0001, so it serves as a "never splits" delimiter for JSONL lines.
_LINE_OPTIONS = (
    "header = false, auto_detect = false, delim = E'\\x01', quote = '', escape = '', "
    "strict_mode = true, store_rejects = true, "
    f"rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'"
)
_CSV_OPTIONS = (
    "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
    "strict_mode = true, store_rejects = true, "
    f"rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'"
)
_MIN_LINE_BYTES: Final = 2 * 1024 * 1024
# DuckDB reads and writes NaN and Infinity (any case: `inf`, `-NAN`) as JSON numbers; JSON has
# neither, and strict parsers (Python's own for `inf`) reject the whole message. This finds every
# such token, and the odd string that merely looks like one, which a strict parse then clears.
_NON_FINITE: Final = r"(?i)[:,\[]-?(nan|inf|infinity)[,\]}]"
_NON_FINITE_DETAIL: Final = (
    f"{USER_PROPERTIES} holds NaN or Infinity, which JSON cannot carry: "
    "use null, a string or a finite number"
)
_CANDIDATES_PER_FETCH: Final = 10_000
# RE2 patterns. A user_id may hold no C0 control character or DEL, nor start or end in whitespace.
_ID_CONTROL: Final = r"[\x00-\x1f\x7f]"
_ID_PADDED: Final = r"^\s|\s$"
# In the user's JSON (as DuckDB writes it, or as a Parquet JSON column holds it): a raw control
# character other than tab, LF and CR, DEL, or an escaped one (`\u0000`, `\b`, `\f`; DuckDB
# writes tab, LF and CR as `\t`, `\n`, `\r`) that is not itself an escaped backslash.
_JSON_CONTROL: Final = (
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|(?:^|[^\\])(?:\\\\)*\\(?:u00[01][0-9A-Fa-f]|u007[fF]|b|f)"
)
_ALLOWED_CONTROLS: Final = frozenset("\t\r\n")
# Above this many CSV columns, properties are assembled from one list rather than one expression
# per column: DuckDB binds N expressions in O(N^2) (2,000 columns took 14 s), a list in O(N).
_WIDE_CSV_COLUMNS: Final = 64
# DuckDB reads each CSV column into its own 32 KiB vector, several chunks deep, and counts them
# against the memory limit: all 10,000 columns of a one-row file needed more than the store's
# 1 GB. Wider files are read this many property columns per pass (each pass projects only its
# own), and the passes' property texts are joined by row.
_CSV_COLUMNS_PER_PASS: Final = 2_000
_PASS: Final = "_snapshot_columns_"
# A pass skips exactly the rows the reject-storing pass skips, so row ordinals line up.
_CSV_PASS_OPTIONS: Final = (
    "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
    "strict_mode = true, ignore_errors = true"
)
_BLANK_SCAN_BYTES: Final = 1024 * 1024


class Problem(StrEnum):
    """The kinds of problem a snapshot can have; counted per kind in SnapshotError."""

    MISSING_USER_ID = "missing user_id"
    DUPLICATE_USER_ID = "duplicate user_id"
    MALFORMED_ROW = "malformed row"
    BAD_ENCODING = "bad encoding"
    USER_TOO_LARGE = "user too large"
    CONTROL_CHARACTER = "control character"
    PADDED_USER_ID = "padded user_id"
    TOO_MANY_COLUMNS = "too many columns"
    UNKNOWN_FORMAT = "unknown format"
    MISSING_FILE = "missing file"
    NO_USER_ID_COLUMN = "no user_id column"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one line (0 when it concerns the whole file)."""

    line: int
    kind: Problem
    detail: str


@dataclass(frozen=True)
class SnapshotSummary:
    """What a successful load published: the file, its format and the number of users."""

    path: Path
    fmt: str
    users: int


def validate_identifier(name: str) -> str:
    """Return `name` if it is a plain SQL identifier; raise ValueError otherwise."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"table name {name!r}: only [A-Za-z_][A-Za-z0-9_]* (max 63) allowed")
    return name


def detect_format(path: Path, fmt: str | None = None) -> str | None:
    """The snapshot format: `fmt` if given, else from the extension; None when unknown."""
    if fmt is not None:
        return fmt.lower() if fmt.lower() in FORMATS else None
    return EXTENSIONS.get(path.suffix.lower())


def load_snapshot(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    table: str = "snapshot",
    fmt: str | None = None,
    max_user_bytes: int = DEFAULT_MAX_USER_BYTES,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    temporary: bool = False,
) -> SnapshotSummary:
    """Validate the whole snapshot, then (re)create `table(user_id, user_json)` from it."""
    validate_identifier(table)
    path = Path(path)
    found = detect_format(path, fmt)
    if found is None:
        shown = fmt if fmt is not None else path.suffix or "(no extension)"
        rule = f"must be one of {', '.join(FORMATS)} (extensions {', '.join(EXTENSIONS)})"
        _fail(path, [Finding(0, Problem.UNKNOWN_FORMAT, f"format {shown!r}: {rule}")])
    if not path.is_file():
        _fail(
            path,
            [
                Finding(
                    0,
                    Problem.MISSING_FILE,
                    "file not found: the snapshot must be an existing regular file",
                )
            ],
        )
    _drop_scratch(con)
    try:
        before = _identity(path)
        findings = _stage(con, path, found, max_user_bytes)
        counts = Counter(f.kind for f in findings)
        if not findings:
            findings, counts = _row_problems(con, path, found, max_user_bytes, max_problems)
        _refuse_if_changed(path, before)
        if findings:
            _fail(path, findings, max_problems, counts)
        _publish(con, table, temporary=temporary)
        row = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return SnapshotSummary(path=path, fmt=found, users=int(row[0]) if row else 0)
    finally:
        _drop_scratch(con)


def _identity(path: Path) -> tuple[int, ...]:
    """What changes when a file is replaced or written: device, inode, size, times."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _refuse_if_changed(path: Path, before: tuple[int, ...]) -> None:
    """Refuse a snapshot that was written or replaced while it was read.

    An export rewriting the file in place mid-read gave a cut cohort: a 27% cut published
    5,393 false exits, under the mass-exit guard. What was read is only trusted when the file
    is the same one, untouched, after the read as before it.
    """
    try:
        after: tuple[int, ...] | None = _identity(path)
    except FileNotFoundError:
        after = None
    if after != before:
        raise SnapshotError(
            f"snapshot {path}: changed while it was read (its size, modification time or "
            "identity differ before and after); nothing was loaded or published",
            fix="wait for the export to finish writing the snapshot (better: have it write a "
            "temporary file and rename it into place), then push again",
        )


def _publish(con: duckdb.DuckDBPyConnection, table: str, *, temporary: bool) -> None:
    """Make the validated stage `table(user_id, user_json)`, rows in file order."""
    if temporary:
        # The stage is a temp table already: renamed, not copied, so a 1M-user load never
        # holds every user twice (about 100 MB of peak memory); its rowids stay in file order.
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")
        con.execute(f"ALTER TABLE {_STAGE} RENAME TO {table}")
        for column in ("ordinal", "problem"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT user_id, user_json FROM {_STAGE}")


def _drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    for name in (_STAGE, _REJECTS, _REJECT_SCANS, *_passes(con)):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _passes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The per-pass property tables a wide CSV left (temp tables named _PASS<n>)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, $p)",
        {"p": _PASS},
    ).fetchall()
    return [str(name) for (name,) in rows]


def _fail(
    path: Path,
    findings: Sequence[Finding],
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    counts: Counter[Problem] | None = None,
) -> NoReturn:
    counts = counts if counts is not None else Counter(f.kind for f in findings)
    total = sum(counts.values())
    by_kind = ", ".join(f"{kind.value}: {n}" for kind, n in sorted(counts.items()))
    shown = sorted(findings)[: max(max_problems, 0)]
    lines = [f"snapshot {path}: {total} problem(s) ({by_kind}); nothing was loaded"]
    for f in shown:
        where = f"{path}:{f.line}" if f.line > 0 else str(path)
        lines.append(f"  {where}: {f.kind.value}: {f.detail}")
    if total > len(shown):
        lines.append(f"  ... {total - len(shown)} more")
    raise SnapshotError("\n".join(lines))


def _stage(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, max_user_bytes: int
) -> list[Finding]:
    """Create the scratch table (ordinal, user_id, user_json, problem) or return file problems."""
    if fmt == "csv":
        return _stage_csv(con, path, max_user_bytes)
    if fmt == "jsonl":
        return _stage_jsonl(con, path, max_user_bytes)
    return _stage_parquet(con, path)


def _max_line_bytes(max_user_bytes: int) -> int:
    return max(_MIN_LINE_BYTES, 4 * max_user_bytes)


def _read_header(path: Path, max_line_bytes: int = _MIN_LINE_BYTES) -> list[str] | Finding:
    """The header's column names; [] for a blank file (an empty snapshot); or the problem."""
    with path.open("rb") as handle:
        raw = handle.readline(max_line_bytes + 1)  # bounded: a file may have no newline at all
    if len(raw) > max_line_bytes:
        detail = f"header line longer than {max_line_bytes} bytes"
        return Finding(1, Problem.TOO_MANY_COLUMNS, f"{detail}; at most {MAX_CSV_COLUMNS} columns")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        return Finding(1, Problem.BAD_ENCODING, f"header: not UTF-8 ({exc.reason})")
    if not text.strip():
        if _is_blank(path):
            return []
        return Finding(1, Problem.NO_USER_ID_COLUMN, "no header row (file starts empty)")
    header = next(csv.reader([text.rstrip("\r\n")]))
    if len(header) > MAX_CSV_COLUMNS:
        detail = f"header has {len(header):,} columns: at most {MAX_CSV_COLUMNS:,} allowed"
        return Finding(1, Problem.TOO_MANY_COLUMNS, f"{detail} (user_id included)")
    return header


def _is_blank(path: Path) -> bool:
    """True when the file holds nothing but whitespace (and a BOM), read in bounded chunks."""
    with path.open("rb") as handle:
        first = True
        while chunk := handle.read(_BLANK_SCAN_BYTES):
            if first:
                chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
            if chunk.strip():
                return False
    return True


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path, max_user_bytes: int) -> list[Finding]:
    header = _read_header(path, _max_line_bytes(max_user_bytes))
    if isinstance(header, Finding):
        return [header]
    if not header:
        con.execute(
            f"CREATE TEMP TABLE {_STAGE} (ordinal BIGINT, user_id VARCHAR, problem VARCHAR, "
            "user_json VARCHAR)"
        )
        return []
    if USER_ID not in header:
        detail = f"header {header!r}: needs a {USER_ID!r} column"
        return [Finding(1, Problem.NO_USER_ID_COLUMN, detail)]
    # Counted once: `header.count(name)` per name was quadratic (0.7 s of 10,000 columns).
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    blank = [i + 1 for i, name in enumerate(header) if not name.strip()]
    if repeated or blank:
        detail = f"header: repeated column names {repeated}, unnamed columns at {blank}"
        return [Finding(1, Problem.MALFORMED_ROW, detail + "; every column needs a unique name")]
    cols = [f"c{i}" for i in range(len(header))]
    uid = cols[header.index(USER_ID)]
    props = [(c, name) for c, name in zip(cols, header, strict=True) if c != uid]
    params: dict[str, object] = {"path": str(path)}
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in cols) + "}"
    read = f"columns = {columns}, max_line_size = {_max_line_bytes(max_user_bytes)}"
    source = f"read_csv($path, {read}, {_CSV_OPTIONS}) WITH ORDINALITY"
    uid_sql = f"nullif({uid}, '')"
    if len(props) > _WIDE_CSV_COLUMNS:
        return _stage_wide_csv(con, params, read, uid, props)
    entries = []
    for c, name in props:
        params[f"k_{c}"] = name
        # An empty cell is "no such property"; both "" and an unquoted empty read as NULL.
        entries.append(f"to_json($k_{c}) || ':' || to_json(nullif({c}, ''))")
    return _create_stage(con, params, source, uid_sql, entries, "NULL", "ordinality")


def _wide_properties(props: list[tuple[str, str]], keys: str) -> str:
    """SQL for `"key":value` texts of many columns, empty cells left out, in column order."""
    values = "list_value(" + ", ".join(c for c, _ in props) + ")"
    return (
        f"array_to_string(list_transform(list_filter(list_zip(${keys}::VARCHAR[], {values}), "
        "lambda kv: coalesce(kv[2], '') <> ''), "
        "lambda kv: to_json(kv[1]) || ':' || to_json(kv[2])), ',')"
    )


def _stage_wide_csv(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, object],
    read: str,
    uid: str,
    props: list[tuple[str, str]],
) -> list[Finding]:
    """Properties assembled from one list rather than one expression per column.

    DuckDB binds N expressions in O(N^2) (2,000 columns took 14 s), a list in O(N). Past
    _CSV_COLUMNS_PER_PASS columns the properties are read in passes, each into a temp table
    of its own, and joined to the rows by ordinal.
    """
    source = f"read_csv($path, {read}, {_CSV_OPTIONS}) WITH ORDINALITY"
    if len(props) <= _CSV_COLUMNS_PER_PASS:
        params = {**params, "keys": [name for _, name in props]}
        wide = _wide_properties(props, "keys")
        return _create_stage(
            con,
            params,
            source,
            f"nullif({uid}, '')",
            None,
            "NULL",
            "ordinality",
            props_text_sql=wide,
        )
    passes = []
    for n, start in enumerate(range(0, len(props), _CSV_COLUMNS_PER_PASS)):
        group = props[start : start + _CSV_COLUMNS_PER_PASS]
        passes.append(f"{_PASS}{n}")
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {passes[-1]} AS
                    SELECT ordinality, nullif({_wide_properties(group, "keys")}, '') AS props
                    FROM read_csv($path, {read}, {_CSV_PASS_OPTIONS}) WITH ORDINALITY""",
                {**params, "keys": [name for _, name in group]},
            )
        except duckdb.Error as exc:
            return [_whole_file_finding(exc, "unreadable")]
    joins = " ".join(f"LEFT JOIN {t} USING (ordinality)" for t in passes)
    texts = ", ".join(f"{t}.props" for t in passes)
    rows = f"(SELECT ordinality, {uid}, concat_ws(',', {texts}) AS wide FROM {source} {joins})"
    return _create_stage(
        con, params, rows, f"nullif({uid}, '')", None, "NULL", "ordinality", props_text_sql="wide"
    )


def _stage_jsonl(con: duckdb.DuckDBPyConnection, path: Path, max_user_bytes: int) -> list[Finding]:
    allowed = f"['{USER_ID}', '{USER_PROPERTIES}']"
    # Each CASE guards the next: JSON functions raise on invalid text, so validity comes first.
    problem = f"""CASE
        WHEN NOT json_valid(line) THEN 'invalid JSON'
        WHEN json_type(line) <> 'OBJECT' THEN 'a ' || json_type(line) || ': must be a JSON object'
        WHEN len(list_filter(json_keys(line), lambda k: NOT list_contains({allowed}, k))) > 0
            THEN 'unknown keys ' || list_filter(json_keys(line),
                lambda k: NOT list_contains({allowed}, k))::VARCHAR
                || ': only {USER_ID} and {USER_PROPERTIES} allowed'
        WHEN json_type(line, '$.{USER_ID}') NOT IN ('VARCHAR', 'NULL')
            THEN '{USER_ID} ' || json_extract(line, '$.{USER_ID}') || ': must be a string'
        WHEN json_type(line, '$.{USER_PROPERTIES}') NOT IN ('OBJECT', 'NULL')
            THEN '{USER_PROPERTIES} is ' || json_type(line, '$.{USER_PROPERTIES}')
                || ': must be an object'
        END"""
    uid = f"CASE WHEN problem IS NULL THEN nullif(line ->> '$.{USER_ID}', '') END"
    props = f"CASE WHEN problem IS NULL THEN line -> '$.{USER_PROPERTIES}' END"
    source = (
        f"(SELECT ordinality, line, {problem} AS problem FROM read_csv($path, "
        f"columns = {{'line': 'VARCHAR'}}, {_LINE_OPTIONS}, "
        f"max_line_size = {_max_line_bytes(max_user_bytes)}) WITH ORDINALITY "
        "WHERE trim(coalesce(line, '')) <> '')"
    )
    return _create_stage(
        con, {"path": str(path)}, source, uid, None, "problem", "ordinality", props_json=props
    )


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> list[Finding]:
    try:
        described = con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet($path))",
            {"path": str(path)},
        ).fetchall()
    except duckdb.Error as exc:
        return [_whole_file_finding(exc, "not a readable Parquet file")]
    names = [str(name) for name, _ in described]
    types = [str(kind) for _, kind in described]
    if USER_ID not in names:
        return [Finding(0, Problem.NO_USER_ID_COLUMN, f"columns {names!r}: need {USER_ID!r}")]
    if len(names) > MAX_PARQUET_COLUMNS:
        detail = (
            f"{len(names):,} columns: at most {MAX_PARQUET_COLUMNS:,} allowed (user_id included); "
            f"put many properties in one {USER_PROPERTIES!r} struct or map column instead"
        )
        return [Finding(0, Problem.TOO_MANY_COLUMNS, detail)]
    cols = [f"c{i}" for i in range(len(names))]
    uid = f"nullif({cols[names.index(USER_ID)]}::VARCHAR, '')"
    params: dict[str, object] = {"path": str(path)}
    alias = ", ".join(cols)
    source = f"read_parquet($path, file_row_number = true) AS t({alias})"
    others = [i for i, name in enumerate(names) if name != USER_ID]
    if USER_PROPERTIES in names:
        if len(others) > 1:
            detail = f"columns {names!r}: {USER_PROPERTIES!r} must be the only other column"
            return [Finding(0, Problem.MALFORMED_ROW, detail)]
        i = names.index(USER_PROPERTIES)
        col, kind = cols[i], types[i]
        if kind.startswith(("STRUCT", "MAP")):
            props_json = f"to_json({col})"
            problem = "NULL"
        elif kind in ("VARCHAR", "JSON"):
            props_json = f"CASE WHEN json_valid({col}) THEN {col}::JSON END"
            problem = (
                f"CASE WHEN {col} IS NULL THEN NULL WHEN NOT json_valid({col}) "
                f"THEN '{USER_PROPERTIES}: invalid JSON' WHEN json_type({col}) <> 'OBJECT' "
                f"THEN '{USER_PROPERTIES} is ' || json_type({col}) || ': must be an object' END"
            )
        else:
            detail = f"{USER_PROPERTIES} type {kind}: must be a struct, a map or JSON text"
            return [Finding(0, Problem.MALFORMED_ROW, detail)]
        return _create_stage(
            con, params, source, uid, None, problem, "file_row_number + 1", props_json=props_json
        )
    entries = []
    for i in others:
        params[f"k_{i}"] = names[i]
        entries.append(f"to_json($k_{i}) || ':' || to_json({cols[i]})")
    return _create_stage(con, params, source, uid, entries, "NULL", "file_row_number + 1")


def _whole_file_finding(exc: duckdb.Error, what: str) -> Finding:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "unicode" in text.lower() or "utf-8" in text.lower() or "encoding" in text.lower():
        return Finding(0, Problem.BAD_ENCODING, f"{what}: {text}")
    return Finding(0, Problem.MALFORMED_ROW, f"{what}: {text}")


def _create_stage(
    con: duckdb.DuckDBPyConnection,
    params: dict[str, object],
    source: str,
    uid: str,
    entries: list[str] | None,
    problem: str,
    ordinal: str,
    *,
    props_json: str | None = None,
    props_text_sql: str | None = None,
) -> list[Finding]:
    if props_text_sql is not None:
        props_text = "CASE WHEN props = '' THEN NULL ELSE '{' || props || '}' END"
        props_sql = props_text_sql
    elif entries is not None:
        # Text assembly, not maps: `"key":value` pairs joined by concat_ws, which skips the NULL
        # pairs of empty cells; about 4x faster than building a MAP per row.
        body = "concat_ws(',', " + ", ".join(entries) + ")" if entries else "''"
        props_text = "CASE WHEN props = '' THEN NULL ELSE '{' || props || '}' END"
        props_sql = body
    else:
        props_text = "CASE WHEN props::VARCHAR IN ('{}', 'null') THEN NULL ELSE props::VARCHAR END"
        props_sql = str(props_json)
    user_json = (
        f"""'{{"{USER_ID}":' || to_json(user_id) """
        f"""|| coalesce(',"{USER_PROPERTIES}":' || ({props_text}), '') || '}}'"""
    )
    sql = f"""CREATE TEMP TABLE {_STAGE} AS
        SELECT ordinal, user_id, problem,
               CASE WHEN problem IS NULL AND user_id IS NOT NULL THEN {user_json} END AS user_json
        FROM (SELECT {ordinal} AS ordinal, {uid} AS user_id, {problem} AS problem,
                     {props_sql} AS props
              FROM {source})"""
    try:
        con.execute(sql, params)
    except duckdb.Error as exc:
        return [_whole_file_finding(exc, "unreadable")]
    return []


def _rejects(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name", {"name": _REJECTS}
    ).fetchall()[0]
    if not exists or not exists[0]:
        return []
    rows = con.execute(
        f"SELECT line, error_type, error_message FROM {_REJECTS} ORDER BY line"
    ).fetchall()
    findings = []
    for line, error_type, message in rows:
        kind = str(error_type)
        if kind in ("INVALID ENCODING", "INVALID UNICODE"):
            problem = Problem.BAD_ENCODING
            detail = "not UTF-8"
        elif kind == "LINE SIZE OVER MAXIMUM":
            problem = Problem.USER_TOO_LARGE
            detail = f"line longer than the reader's maximum ({str(message).splitlines()[0]})"
        else:
            problem = Problem.MALFORMED_ROW
            detail = f"{kind.lower()}: {str(message).splitlines()[0]}"
        findings.append(Finding(int(line), problem, detail))
    return findings


def _row_problems(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str, max_user_bytes: int, max_problems: int
) -> tuple[list[Finding], Counter[Problem]]:
    """Every problem in the staged rows: counts for all, details for the first few per kind."""
    rejects = _rejects(con)
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE problem IS NOT NULL),
                   count(*) FILTER (WHERE problem IS NULL AND user_id IS NULL),
                   count(*) FILTER (WHERE strlen(user_json) > $max),
                   count(user_id) FILTER (WHERE problem IS NULL)
                     - count(DISTINCT user_id) FILTER (WHERE problem IS NULL),
                   count(*) FILTER (WHERE {_BREAKS_CHARACTER_RULE})
            FROM {_STAGE}""",
        {"max": max_user_bytes, **_BREAKS_PARAMS},
    ).fetchall()[0]
    assert row is not None
    malformed, missing, too_large, duplicates, characters = (int(n) for n in row)
    character_rows = (
        con.execute(
            f"""SELECT ordinal, user_id, user_json, {_CHARACTER_KIND} AS kind FROM {_STAGE}
                WHERE kind IS NOT NULL ORDER BY ordinal LIMIT $n""",
            {"n": max(max_problems, 0), **_CHARACTER_PARAMS},
        ).fetchall()
        if characters
        else []
    )
    limit = max(max_problems, 0)
    # CSV properties are text: only JSONL and Parquet carry numbers.
    non_finite, non_finite_listed = (0, []) if fmt == "csv" else _non_finite_rows(con, limit)
    counts = Counter(f.kind for f in rejects)
    counts.update(Problem(str(kind)) for _, _, _, kind in character_rows)
    if characters > len(character_rows):
        # Only the listed rows are classified; the rest count as the commoner kind.
        counts[Problem.CONTROL_CHARACTER] += characters - len(character_rows)
    counts.update(
        {
            Problem.MALFORMED_ROW: malformed + non_finite,
            Problem.MISSING_USER_ID: missing,
            Problem.USER_TOO_LARGE: too_large,
            Problem.DUPLICATE_USER_ID: duplicates,
        }
    )
    counts = +counts
    if not counts:
        return [], counts
    listed = [(o, Problem.MALFORMED_ROW, _NON_FINITE_DETAIL) for o in non_finite_listed]
    listed += [
        (int(o), Problem(str(kind)), _character_detail(str(uid), str(user_json)))
        for o, uid, user_json, kind in character_rows
    ]
    for ordinal, detail in con.execute(
        f"SELECT ordinal, problem FROM {_STAGE} WHERE problem IS NOT NULL "
        "ORDER BY ordinal LIMIT $n",
        {"n": limit},
    ).fetchall():
        listed.append((int(ordinal), Problem.MALFORMED_ROW, str(detail)))
    for (ordinal,) in con.execute(
        f"SELECT ordinal FROM {_STAGE} WHERE problem IS NULL AND user_id IS NULL "
        "ORDER BY ordinal LIMIT $n",
        {"n": limit},
    ).fetchall():
        listed.append((int(ordinal), Problem.MISSING_USER_ID, f"{USER_ID} is missing or empty"))
    for ordinal, size in con.execute(
        f"SELECT ordinal, strlen(user_json) FROM {_STAGE} "
        "WHERE strlen(user_json) > $max ORDER BY ordinal LIMIT $n",
        {"max": max_user_bytes, "n": limit},
    ).fetchall():
        detail = f"user JSON is {size} bytes: at most {max_user_bytes} allowed"
        listed.append((int(ordinal), Problem.USER_TOO_LARGE, detail))
    dupes: list[tuple[int, int, str]] = []
    if duplicates:
        dupes = [
            (int(o), int(first), str(uid))
            for o, first, uid in con.execute(
                f"""SELECT ordinal, first, user_id FROM (
                        SELECT ordinal, user_id, min(ordinal) OVER (PARTITION BY user_id) AS first
                        FROM {_STAGE} WHERE problem IS NULL AND user_id IS NOT NULL
                          AND user_id IN (SELECT user_id FROM {_STAGE} WHERE problem IS NULL
                                          GROUP BY user_id HAVING count(*) > 1))
                    WHERE ordinal > first ORDER BY ordinal LIMIT $n""",
                {"n": limit},
            ).fetchall()
        ]
    to_line = _line_mapper(path, fmt, [f.line for f in rejects])
    findings = list(rejects)
    findings += [Finding(to_line(o), kind, detail) for o, kind, detail in listed]
    findings += [
        Finding(
            to_line(o), Problem.DUPLICATE_USER_ID, f"{USER_ID} {uid!r} repeats line {to_line(f)}"
        )
        for o, f, uid in dupes
    ]
    return findings, counts


# The character rule's verdict per staged row: NULL, or the Problem it breaks.
_CHARACTER_KIND: Final = f"""CASE WHEN problem IS NOT NULL OR user_id IS NULL THEN NULL
    WHEN regexp_matches(user_id, $id_control) THEN '{Problem.CONTROL_CHARACTER.value}'
    WHEN regexp_matches(user_id, $id_padded) THEN '{Problem.PADDED_USER_ID.value}'
    WHEN regexp_matches(user_json, $json_control) THEN '{Problem.CONTROL_CHARACTER.value}'
    END"""
# Whether a row breaks the character rule at all, for the count over every row: one regex on
# the id instead of two (0.04 s against 0.08 s for 1M ids); the verdict above is only worked
# out for the rows that are listed.
_BREAKS_CHARACTER_RULE: Final = """problem IS NULL AND user_id IS NOT NULL
    AND (regexp_matches(user_id, $id_any) OR regexp_matches(user_json, $json_control))"""
_BREAKS_PARAMS: Final = {"id_any": f"{_ID_CONTROL}|{_ID_PADDED}", "json_control": _JSON_CONTROL}
_CHARACTER_PARAMS: Final = {
    "id_control": _ID_CONTROL,
    "id_padded": _ID_PADDED,
    "json_control": _JSON_CONTROL,
}


def _character_detail(user_id: str, user_json: str) -> str:
    """Which string of the user breaks the character rules, and how."""
    bad_id = next((ch for ch in user_id if ch < " " or ch == "\x7f"), None)
    if bad_id is not None:
        return (
            f"{USER_ID} {user_id[:40]!r} holds control character U+{ord(bad_id):04X}: "
            f"a {USER_ID} may hold none"
        )
    if user_id != user_id.strip():
        return (
            f"{USER_ID} {user_id[:40]!r} has leading or trailing whitespace: remove it in the "
            "export (ids are never trimmed: a trimmed id would name another user)"
        )
    try:
        props = json.loads(user_json).get(USER_PROPERTIES)
    except (ValueError, AttributeError):
        props = None
    where, char = _find_control(props, USER_PROPERTIES)
    shown = f"U+{ord(char):04X}" if char else "a control character"
    return (
        f"{where} holds {shown}: property values may hold tab, CR and LF, "
        "no other control character"
    )


def _find_control(value: object, path: str) -> tuple[str, str]:
    """The first string under `value` (keys included) holding a forbidden control character."""
    if isinstance(value, str):
        for ch in value:
            if (ch < " " or ch == "\x7f") and ch not in _ALLOWED_CONTROLS:
                return path, ch
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _find_control(key, f"{path} key {key[:40]!r}")
            if found[1]:
                return found
            found = _find_control(item, f"{path}.{key[:40]}")
            if found[1]:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_control(item, f"{path}[{index}]")
            if found[1]:
                return found
    return path, ""


def _non_finite_rows(con: duckdb.DuckDBPyConnection, limit: int) -> tuple[int, list[int]]:
    """How many users' JSON holds NaN or Infinity, and the first `limit` of their ordinals."""
    cursor = con.execute(
        f"SELECT ordinal, user_json FROM {_STAGE} "
        "WHERE regexp_matches(user_json, $pattern) ORDER BY ordinal",
        {"pattern": _NON_FINITE},
    )
    count = 0
    listed: list[int] = []
    while rows := cursor.fetchmany(_CANDIDATES_PER_FETCH):
        for ordinal, user_json in rows:
            if not _is_strict_json(str(user_json)):
                count += 1
                if len(listed) < limit:
                    listed.append(int(ordinal))
    return count, listed


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name}: not JSON")


def _is_strict_json(text: str) -> bool:
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return False
    return True


def _line_mapper(path: Path, fmt: str, rejected: list[int]) -> _LineMapper:
    if fmt == "parquet":
        return _LineMapper([], 0)
    excluded = set(rejected)
    if fmt == "csv":
        header = _read_header(path)
        # DuckDB skips blank lines in multi-column CSV, so they shift the row ordinals.
        if isinstance(header, list) and len(header) > 1:
            with path.open("rb") as handle:
                excluded.update(n for n, raw in enumerate(handle, 1) if not raw.strip(b"\r\n"))
        return _LineMapper(sorted(excluded), 1)
    return _LineMapper(sorted(excluded), 0)


class _LineMapper:
    """Maps the k-th row DuckDB emitted to its file line, skipping rejected and blank lines."""

    def __init__(self, excluded: list[int], header_lines: int) -> None:
        self._header = header_lines
        # Rows emitted before the i-th excluded line: its line, minus header and earlier exclusions.
        self._before = [line - header_lines - i - 1 for i, line in enumerate(excluded)]

    def __call__(self, ordinal: int) -> int:
        return ordinal + self._header + bisect.bisect_left(self._before, ordinal)
