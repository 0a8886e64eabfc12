"""The bulk SQLite path agrees with contract.decode on every record, valid or not."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.contract import FIELDS, CohortMessage, User, decode, encode, problems_of
from sync.errors import ContractError
from sync.membership_store import (
    SCHEMA,
    InvalidRecord,
    MembershipStore,
    PageEntry,
    RawRecord,
    ValidRecord,
)
from sync.raw_records import apply_text, bulk_supported, bulk_text, envelope_of

pytestmark = pytest.mark.unit

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"


def decoded(sequence_number: str, data: bytes) -> PageEntry:
    """What the consumer did before the bulk path: decode in Python."""
    try:
        return ValidRecord(sequence_number, decode(data))
    except ContractError as exc:
        return InvalidRecord(sequence_number, str(exc), data)


def connect() -> sqlite3.Connection:
    """An in-memory database with the store's tables."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    return db


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = connect()
    yield connection
    connection.close()


# --- payload strategies ------------------------------------------------------------------------


class Pairs(list[tuple[str, Any]]):
    """A JSON object as written: its keys in order, duplicates allowed."""


def dump(value: Any, ascii_only: bool, spaced: bool) -> str:
    """JSON text of a value, Pairs written key by key (so duplicate keys survive)."""
    if isinstance(value, Pairs):
        comma, colon = (", ", ": ") if spaced else (",", ":")
        return (
            "{"
            + comma.join(
                json.dumps(k, ensure_ascii=ascii_only) + colon + dump(v, ascii_only, spaced)
                for k, v in value
            )
            + "}"
        )
    if isinstance(value, list):
        return (
            "[" + (", " if spaced else ",").join(dump(v, ascii_only, spaced) for v in value) + "]"
        )
    return json.dumps(value, ensure_ascii=ascii_only)


def maybe(strategy: st.SearchStrategy[Any], other: st.SearchStrategy[Any], odds: int = 10) -> Any:
    """Mostly `strategy`, `other` once in `odds`."""
    return st.integers(1, odds).flatmap(lambda roll: other if roll == 1 else strategy)


# Control characters are escaped as \u00XX, which sends the record to Python: rarely, then.
_texts = st.text(
    maybe(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), st.characters(), 200),
    max_size=6,
)
_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | maybe(st.floats(allow_nan=False), st.floats())
    | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=6,
)
_user_ids = maybe(
    st.sampled_from(["u1", "u2", "u3"]),
    st.sampled_from(["", "user_id", '{"a":1}', "é\\x", 'q"'])
    | st.integers(0, 2)
    | st.none()
    | st.just(Pairs()),
)
_properties = maybe(
    st.dictionaries(
        st.sampled_from(["plan", "n", "user_id", "user_properties"]), _any_json, max_size=2
    ),
    _any_json,
)


@st.composite
def _users(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(_any_json)  # not an object at all
    user = Pairs()
    if draw(st.integers(0, 9)) > 0:
        user.append(("user_id", draw(_user_ids)))
    if draw(st.integers(0, 3)) > 0:
        user.append(("user_properties", draw(_properties)))
    if draw(st.integers(0, 4)) == 0:  # an extra key, or a duplicate (Python keeps the last)
        key = draw(st.sampled_from(["user_id", "user_properties", "other"]))
        user.append((key, draw(_user_ids if key == "user_id" else _properties)))
    return Pairs(draw(st.permutations(user))) if draw(st.integers(0, 4)) == 0 else user


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "cohort_name": maybe(st.sampled_from(["Power users", "é", "a\nb"]), _any_json, 25),
    "cohort_id": maybe(st.sampled_from(["c1", "c2"]), _any_json, 25),
    "in_cohort": maybe(st.booleans(), _any_json, 25),
    "computed_time": maybe(
        st.sampled_from(["0", "1700000000", "999999999999"]),
        st.sampled_from(["\u0661\u0662", "1" * 13, "1a", "", " 1"]) | _any_json,
        25,
    ),
    "message_id": maybe(st.sampled_from(["m:1", "m:2", "m\\3"]), _any_json, 25),
    "users": maybe(st.lists(_users(), max_size=4), _any_json, 25),
}


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Mostly contract-shaped JSON with random breaks, spacing, escapes and duplicate keys."""
    payload = Pairs()
    for name in FIELDS:
        if draw(st.integers(0, 29)) > 0:
            payload.append((name, draw(_FIELDS[name])))
    if draw(st.integers(0, 4)) == 0:  # a duplicate top-level key (Python keeps the last)
        name = draw(maybe(st.just("users"), st.sampled_from(FIELDS), 2))
        payload.append((name, draw(_FIELDS[name])))
    text = dump(payload, draw(st.integers(0, 19)) == 0, draw(st.integers(0, 4)) == 0)
    tweak = draw(st.integers(0, 29))
    if tweak == 0:
        text = draw(st.sampled_from(["\ufeff", " \n", "\x00"])) + text
    elif tweak == 1:
        text += draw(st.sampled_from(["\x00", " ", "x", "NaN"]))
    elif tweak == 2:
        text = text.replace('"plan": ', '"plan": NaN, "x": ', 1)
    return text.encode("utf-8", "surrogatepass")


def _canonical(count: int, props: bool) -> bytes:
    return encode(
        CohortMessage(
            "Power users",
            "c1",
            True,
            "1700000000",
            "m:1",
            tuple(User(f"u{i}", {"plan": "pro", "n": i} if props else None) for i in range(count)),
        )
    )


# --- the properties ----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=payloads())
def test_bulk_accepts_only_what_problems_of_accepts_and_reads_it_alike(data: bytes) -> None:
    # GIVEN any payload, and an empty store
    db = connect()
    # WHEN the bulk path reads and applies it
    text = bulk_text(data)
    envelope = None if text is None else envelope_of(db, text)
    verdict = None if text is None or envelope is None else apply_text(db, text, envelope, 0.0)
    # THEN it accepted it only if Python's json and problems_of accept it, with the same reading
    if verdict is None:
        return  # contract.decode gives the verdict (tested end to end below)
    assert problems_of(json.loads(data)) == []
    message = decode(data)
    assert envelope is not None
    assert (envelope.cohort_name, envelope.cohort_id, envelope.message_id) == (
        message.cohort_name,
        message.cohort_id,
        message.message_id,
    )
    assert (envelope.in_cohort, envelope.computed_time) == (
        message.in_cohort,
        int(message.computed_time),
    )
    rows = db.execute("SELECT user_id, user_properties FROM membership").fetchall()
    stored = {user: None if props is None else json.loads(props) for user, props in rows}
    first: dict[str, Any] = {}
    for user in message.users:  # the first update of a user wins on an equal version
        first.setdefault(user.user_id, user.user_properties)
    assert stored == first


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages=st.lists(st.lists(payloads(), max_size=4), min_size=1, max_size=3))
def test_store_results_match_python_decoding(
    tmp_path_factory: pytest.TempPathFactory, pages: list[list[bytes]]
) -> None:
    # GIVEN the same pages of records, given raw to one store and decoded in Python to another
    folder = tmp_path_factory.mktemp("raw")
    with MembershipStore(folder / "bulk.db") as bulk, MembershipStore(folder / "py.db") as py:
        sequence = 0
        for page in pages:
            raw: list[PageEntry] = []
            parsed: list[PageEntry] = []
            for data in page:
                sequence += 1
                raw.append(RawRecord(str(sequence), data))
                parsed.append(decoded(str(sequence), data))
            # WHEN each page is applied
            # THEN both count every record alike, and end with the same state and quarantine
            assert bulk.apply_page(ARN, "s", raw) == py.apply_page(ARN, "s", parsed)
        assert bulk.states() == py.states()
        assert bulk.quarantined() == py.quarantined()


@pytest.mark.parametrize("props", [True, False])
def test_canonical_records_never_fall_back_to_python(db: sqlite3.Connection, props: bool) -> None:
    # GIVEN records as the publisher encodes them
    text = bulk_text(_canonical(50, props))
    assert text is not None
    # WHEN read and applied in bulk
    envelope = envelope_of(db, text)
    # THEN SQLite takes them whole: no per-user type checks, no fallback
    assert envelope is not None and envelope.plain and not envelope.scan
    assert apply_text(db, text, envelope, 0.0) == "applied"
    assert apply_text(db, text, envelope, 0.0) == "duplicate"


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1}\x00',  # SQLite's parser would stop at the NUL
        b"\xef\xbb\xbf{}",  # a BOM: Python's json accepts it in bytes
        b'{"user\\u005fid":1}',  # an escaped key: SQLite matches keys by raw text
        "{}".encode("utf-16"),
        b"\xff\xfe not json",
    ],
)
def test_text_sqlite_would_read_differently_is_left_to_python(data: bytes) -> None:
    assert bulk_text(data) is None


def test_sqlite_here_rejects_json5() -> None:
    assert bulk_supported(sqlite3.connect(":memory:"))
