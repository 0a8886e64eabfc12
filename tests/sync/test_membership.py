"""Last-writer-wins membership: the pure core and its SQLite store agree, whatever the order."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.contract import CohortMessage, User
from sync.errors import StateError
from sync.membership import (
    Member,
    MemberState,
    Version,
    property_columns,
    render_members,
    tiebreak_of,
)
from sync.membership_store import (
    Checkpoint,
    InvalidRecord,
    MembershipStore,
    PageOutcome,
    ValidRecord,
    members,
)
from tests.oracle import apply_message, members_of

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"


def message(
    mid: str, computed: int, in_cohort: bool, *users: str, cohort: str = "c1", props: bool = False
) -> CohortMessage:
    return CohortMessage(
        cohort_name=f"name-{cohort}",
        cohort_id=cohort,
        in_cohort=in_cohort,
        computed_time=str(computed),
        message_id=mid,
        users=tuple(User(u, {"plan": mid} if props else None) for u in users),
    )


@pytest.fixture
def store(tmp_path: Path) -> MembershipStore:
    with MembershipStore(tmp_path / "state.db") as opened:
        yield opened  # type: ignore[misc]


def page(*messages: CohortMessage, first_sequence: int = 1) -> list[ValidRecord]:
    return [ValidRecord(str(first_sequence + i), m) for i, m in enumerate(messages)]


# --- the pure core ---------------------------------------------------------------------------


@pytest.mark.unit
def test_newer_update_overrides_and_older_does_not() -> None:
    # GIVEN u1 entered at t=10
    state: dict[tuple[str, str], MemberState] = {}
    assert apply_message(state, message("m1", 10, True, "u1")) == 1
    # WHEN an older exit (t=5) arrives late, THEN it changes nothing
    assert apply_message(state, message("m0", 5, False, "u1")) == 0
    assert [m.user_id for m in members_of(state, "c1")] == ["u1"]
    # WHEN a newer exit (t=11) arrives, THEN u1 is out
    assert apply_message(state, message("m2", 11, False, "u1")) == 1
    assert members_of(state, "c1") == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("first", "second", "winner_in_cohort"),
    [
        (("a", True), ("b", False), False),  # exiting wins a tie, whichever came first
        (("b", False), ("a", True), False),
        (("a", True), ("b", True), True),  # same direction: larger message_id wins
        (("b", True), ("a", True), True),
    ],
)
def test_ties_on_computed_time_are_deterministic(
    first: tuple[str, bool], second: tuple[str, bool], winner_in_cohort: bool
) -> None:
    state: dict[tuple[str, str], MemberState] = {}
    apply_message(state, message(first[0], 7, first[1], "u1", props=True))
    apply_message(state, message(second[0], 7, second[1], "u1", props=True))
    recorded = state[("c1", "u1")]
    assert recorded.in_cohort is winner_in_cohort
    assert recorded.version == Version(7, tiebreak_of(winner_in_cohort, "b"))
    assert recorded.user_properties == {"plan": "b"}


@pytest.mark.unit
def test_computed_time_compares_as_an_integer_not_a_string() -> None:
    state: dict[tuple[str, str], MemberState] = {}
    apply_message(state, message("m1", 100, True, "u1"))
    # "99" > "100" as strings; as integers it is older and must lose.
    assert apply_message(state, message("m2", 99, False, "u1")) == 0
    assert state[("c1", "u1")].in_cohort is True


@pytest.mark.unit
def test_render_members_csv_has_a_snapshots_shape_and_jsonl_keeps_json() -> None:
    people = [Member("u1", {"city": "Zürich", "n": 1}), Member("u,2", None)]
    columns = property_columns(people)

    assert columns == ["city", "n"]
    assert "".join(render_members(people, "csv", columns)) == (
        'user_id,city,n\nu1,Zürich,1\n"u,2",,\n'
    )
    lines = list(render_members(people, "jsonl"))
    assert [json.loads(line) for line in lines] == [
        {"user_id": "u1", "user_properties": {"city": "Zürich", "n": 1}},
        {"user_id": "u,2", "user_properties": None},
    ]
    assert all(line.endswith("\n") for line in lines)


@pytest.mark.unit
def test_render_members_empty_csv_still_has_a_header() -> None:
    assert list(render_members([], "csv")) == ["user_id\n"]
    assert list(render_members([], "jsonl")) == []


@pytest.mark.unit
def test_render_members_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match=r"format 'xml': must be one of csv, jsonl"):
        list(render_members([], "xml"))


# --- the store ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_store_counts_each_record_once_and_advances_the_checkpoint(store: MembershipStore) -> None:
    # GIVEN a page with a new message, a duplicate, a stale one and a poison record
    entries = [
        *page(message("m2", 20, True, "u1", "u2"), message("m2", 20, True, "u1", "u2")),
        ValidRecord("3", message("m1", 10, False, "u1")),
        InvalidRecord("4", "record data: not UTF-8 JSON", b"\xff" * 5000),
    ]
    # WHEN it is applied
    outcome = store.apply_page(ARN, "shardId-0", entries)
    # THEN every record counts in exactly one field, and the checkpoint is the last record
    assert outcome == PageOutcome(applied=1, duplicates=1, stale=1, quarantined=1)
    assert store.checkpoints(ARN) == {"shardId-0": Checkpoint("4", False)}
    assert [m.user_id for m in members(store, "c1")] == ["u1", "u2"]
    [poison] = store.quarantined()
    assert (poison.shard_id, poison.sequence_number) == ("shardId-0", "4")
    assert poison.reason == "record data: not UTF-8 JSON"
    assert poison.data_prefix == b"\xff" * 1024


@pytest.mark.unit
def test_store_page_is_atomic(store: MembershipStore) -> None:
    # GIVEN a committed first page
    store.apply_page(ARN, "s", page(message("m1", 1, True, "u1")))

    # WHEN the second page fails half-way (a user id SQLite cannot bind)
    broken = message("m3", 3, True, "u3")
    broken = CohortMessage(**{**broken.__dict__, "users": (User(object()),)})  # type: ignore[arg-type]
    with pytest.raises(sqlite3.ProgrammingError):
        store.apply_page(ARN, "s", page(message("m2", 2, True, "u2"), broken, first_sequence=2))
    # THEN neither its rows, its seen ids nor its checkpoint were kept
    assert [m.user_id for m in store.members("c1")] == ["u1"]
    assert not store.has_seen("m2")
    assert store.checkpoints(ARN) == {"s": Checkpoint("1", False)}


@pytest.mark.unit
def test_store_closed_flag_keeps_the_sequence_number(store: MembershipStore) -> None:
    store.apply_page(ARN, "s", page(message("m1", 1, True, "u1")))
    store.apply_page(ARN, "s", [], shard_closed=True)
    assert store.checkpoints(ARN) == {"s": Checkpoint("1", True)}


@pytest.mark.unit
def test_store_prunes_seen_ids_past_the_retention_window(tmp_path: Path) -> None:
    now = [1_000_000.0]
    with MembershipStore(tmp_path / "s.db", retention_hours=24, clock=lambda: now[0]) as store:
        store.apply_page(ARN, "s", page(message("old", 1, True, "u1")))
        now[0] += 23 * 3600
        store.apply_page(ARN, "s", page(message("new", 2, True, "u2"), first_sequence=2))
        now[0] += 2 * 3600
        assert store.prune_seen() == 1
        assert (store.has_seen("old"), store.has_seen("new")) == (False, True)
        # A replay past the window is applied again but LWW leaves membership unchanged.
        outcome = store.apply_page(ARN, "s", page(message("old", 1, True, "u1"), first_sequence=3))
        assert outcome == PageOutcome(stale=1)


@pytest.mark.unit
def test_store_stream_start_is_fixed_at_first_contact(store: MembershipStore) -> None:
    assert store.stream_start(ARN, from_start=False, now_epoch_seconds=500.0) == 500.0
    assert store.stream_start(ARN, from_start=False, now_epoch_seconds=900.0) == 500.0
    assert store.stream_start(ARN, from_start=True, now_epoch_seconds=900.0) == 0.0
    assert store.stream_start(ARN, from_start=False, now_epoch_seconds=900.0) == 0.0


@pytest.mark.unit
@pytest.mark.parametrize("hours", [0, 8761])
def test_store_rejects_retention_out_of_range(tmp_path: Path, hours: int) -> None:
    with pytest.raises(StateError, match=rf"retention_hours {hours}: must be 1 to 8760"):
        MembershipStore(tmp_path / "s.db", retention_hours=hours)


@pytest.mark.unit
def test_store_rejects_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all, just text" * 100)
    with pytest.raises(
        StateError, match=r"--state .*state.db: neither a DuckDB nor a SQLite database, not a "
    ):
        MembershipStore(path)
    assert path.read_bytes() == b"not a database at all, just text" * 100


# --- the invariant -----------------------------------------------------------------------------

_messages = st.lists(
    st.builds(
        message,
        st.just(""),  # replaced by a unique id below
        st.integers(0, 5),  # few distinct times, so ties are common
        st.booleans(),
        st.text("abcd", min_size=1, max_size=2),
        st.sampled_from(["u1", "u2"]),
        cohort=st.sampled_from(["c1", "c2"]),
        props=st.booleans(),
    ),
    max_size=12,
).map(
    lambda ms: [CohortMessage(**{**m.__dict__, "message_id": f"id-{i}"}) for i, m in enumerate(ms)]
)


@pytest.mark.unit
@settings(max_examples=60, deadline=None)
@given(messages=_messages, data=st.data())
def test_any_shuffle_and_duplication_gives_the_in_order_membership(
    tmp_path_factory: pytest.TempPathFactory, messages: list[CohortMessage], data: st.DataObject
) -> None:
    # GIVEN the membership from applying each message once, in order
    expected: dict[tuple[str, str], MemberState] = {}
    for m in messages:
        apply_message(expected, m)
    # WHEN the same messages arrive duplicated and shuffled, over several pages
    extra = data.draw(st.lists(st.sampled_from(messages))) if messages else []
    delivered = data.draw(st.permutations(messages + extra))
    cut = data.draw(st.integers(0, len(delivered)))
    path = tmp_path_factory.mktemp("prop") / "state.db"
    with MembershipStore(path) as store:
        store.apply_page(ARN, "s", page(*delivered[:cut]))
        store.apply_page(ARN, "s", page(*delivered[cut:], first_sequence=cut + 1))
        actual = store.states()
    # THEN the store holds exactly the in-order result (the in-memory core agrees too)
    assert actual == expected
    shuffled: dict[tuple[str, str], MemberState] = {}
    for m in delivered:
        apply_message(shuffled, m)
    assert shuffled == expected
