"""The bulk msgspec path agrees with contract.decode on every record, valid or not."""

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
from sync.raw_records import apply_record, bulk_readable, chunk_users, read_record

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
    record = read_record(data)
    # THEN it accepted it only if Python's json and problems_of accept it, with the same reading
    if record is None:
        return  # contract.decode gives the verdict (tested end to end below)
    assert problems_of(json.loads(data)) == []
    message = decode(data)
    assert (record.cohort_name, record.cohort_id, record.message_id) == (
        message.cohort_name,
        message.cohort_id,
        message.message_id,
    )
    assert (record.in_cohort, int(record.computed_time)) == (
        message.in_cohort,
        int(message.computed_time),
    )
    assert apply_record(db, record, 0.0) in ("applied", "stale")
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
    data = _canonical(50, props)
    # WHEN read and applied in bulk
    record = read_record(data)
    # THEN msgspec takes them whole: no fallback, stored as Python would read them
    assert record is not None
    assert apply_record(db, record, 0.0) == "applied"
    assert apply_record(db, record, 0.0) == "duplicate"
    rows = db.execute("SELECT user_id, user_properties FROM membership").fetchall()
    assert {user: None if p is None else json.loads(p) for user, p in rows} == {
        user.user_id: user.user_properties for user in decode(data).users
    }


def test_records_longer_than_a_statement_apply_in_order(db: sqlite3.Connection) -> None:
    # GIVEN a record with more users than one statement takes, a user repeated across chunks
    chunk = chunk_users(db)
    users = [User(f"u{i}", {"n": i}) for i in range(chunk + 3)] + [User("u0", {"n": -1})]
    data = encode(CohortMessage("n", "c1", True, "1700000000", "m:1", tuple(users)))
    record = read_record(data)
    assert record is not None
    # WHEN applied
    assert apply_record(db, record, 0.0) == "applied"
    # THEN every user is written, and the first of equal versions wins
    rows = dict(db.execute("SELECT user_id, user_properties FROM membership").fetchall())
    assert len(rows) == chunk + 3 and json.loads(rows["u0"]) == {"n": 0}


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1}\x00',  # NUL bytes are left to Python, as before
        b"\xef\xbb\xbf{}",  # a BOM: Python's json accepts it in bytes
        b'{"user\\u005fid":1}',  # escapes are left to Python
        "{}".encode("utf-16"),
        b"\xff\xfe not json",
        b'{"a":"\xff"}',  # msgspec does not check UTF-8 inside strings it skips
    ],
)
def test_text_msgspec_could_read_differently_is_left_to_python(data: bytes) -> None:
    assert not bulk_readable(data)


_ENVELOPE = (
    '"cohort_name":"n","cohort_id":"c","in_cohort":true,"computed_time":"1","message_id":"m"'
)


@pytest.mark.parametrize(
    ("users", "accepted"),
    [
        ('[{"user_id":"u","user_properties":{}}]', True),
        ('[{"user_id":"u","user_properties":null}]', True),
        ('[{"user_id":"u"}]', True),
        ('[{"user_id":"u","user_properties" : {"user_properties":1}}]', True),
        ('[{"user_id":"u","user_properties" : 5}]', False),
        ('[{"user_id":"u","user_properties":[]}]', False),
        ('[{"user_id":"u","user_properties":"{}"}]', False),
        ('[{"user_id":"u","user_properties":{},"user_properties":1}]', False),
        ('[{"user_id":"u","user_properties":1,"user_properties":{}}]', True),
        ('[{"user_id":"u","user_properties":{"a":NaN}}]', False),
        ('[{"user_id":"","user_properties":{}}]', False),
        ('[{"user_id":"a","user_id":1}]', False),
        # msgspec checks every occurrence; Python keeps the last: left to Python, which accepts it
        ('[{"user_id":1,"user_id":"a"}]', False),
    ],
)
def test_only_objects_or_null_pass_as_properties(users: str, accepted: bool) -> None:
    data = ("{" + _ENVELOPE + ',"users":' + users + "}").encode()
    assert (read_record(data) is not None) == accepted
    if accepted:
        assert problems_of(json.loads(data)) == []
