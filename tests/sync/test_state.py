"""The publisher's state store: diff, atomic staging, outbox delivery and resume."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.contract import decode
from sync.errors import StateError
from sync.messages import OutgoingRecord, build_messages
from sync.outbox import Outbox
from sync.staging import DiffCounts, Staging
from sync.state import StateStore

pytestmark = pytest.mark.unit

COHORT = "coh_1"
NAME = "Power users"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/cohorts"
Snapshot = Mapping[str, Mapping[str, Any] | None]


def write_jsonl(path: Path, users: Snapshot) -> Path:
    lines = []
    for user_id, props in users.items():
        obj: dict[str, Any] = {"user_id": user_id}
        if props is not None:
            obj["user_properties"] = props
        lines.append(json.dumps(obj))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def builder(sync_id: str, users_per_message: int = 2):
    def build(in_cohort: bool, users: Iterable[str], first_sequence: int):
        return build_messages(
            cohort_id=COHORT,
            cohort_name=NAME,
            in_cohort=in_cohort,
            computed_time="1700000000",
            sync_id=sync_id,
            first_sequence=first_sequence,
            users=users,
            max_users_per_message=users_per_message,
        )

    return build


def push(store: StateStore, path: Path, users: Snapshot, sync_id: str):
    store.staging.load_snapshot(write_jsonl(path, users))
    return store.staging.stage(
        cohort_id=COHORT,
        cohort_name=NAME,
        computed_time="1700000000",
        sync_id=sync_id,
        build=builder(sync_id),
    )


def sent(records: Iterable[OutgoingRecord]) -> dict[bool, dict[str, Any]]:
    """Users per direction decoded from record data: {in_cohort: {user_id: properties}}."""
    out: dict[bool, dict[str, Any]] = {True: {}, False: {}}
    for record in records:
        message = decode(record.data)
        assert message.in_cohort is record.in_cohort
        assert len(message.users) == record.user_count
        for user in message.users:
            out[message.in_cohort][user.user_id] = user.user_properties
    return out


@pytest.fixture
def store() -> Iterator[StateStore]:
    with StateStore(":memory:", threads=1) as s:
        s.bind(COHORT, NAME, STREAM)
        yield s


def test_first_sync_sends_everyone(store: StateStore, tmp_path: Path) -> None:
    users = {"u1": {"city": "SF"}, "u2": None, "u3": {"n": 3}}
    store.staging.load_snapshot(write_jsonl(tmp_path / "s.jsonl", users))
    assert store.staging.plan(COHORT) == DiffCounts(3, 0, 0, 0, first_sync=True)

    staged = push(store, tmp_path / "s.jsonl", users, "sync-1")

    assert (staged.entering, staged.exiting, staged.messages) == (3, 0, 2)
    records = list(store.outbox.pending())
    assert [r.message_id for r in records] == ["sync-1:0", "sync-1:1"]
    assert sent(records) == {True: {"u1": {"city": "SF"}, "u2": None, "u3": {"n": 3}}, False: {}}
    assert staged.bytes == sum(r.size_bytes for r in records)


def test_a_first_sync_diffs_without_listing_everyone(store: StateStore, tmp_path: Path) -> None:
    # GIVEN a cohort with nobody stored, and another cohort with members
    push(store, tmp_path / "a.jsonl", {"u1": None}, "s1")
    store.bind("coh_2", "Other", STREAM)
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"u1": None, "u2": {"p": 1}}))
    # WHEN the new cohort's diff is planned (twice: the second from the cache)
    first, again = store.staging.plan("coh_2"), store.staging.plan("coh_2")
    # THEN everyone enters, and no per-user delta was materialized for it
    assert first == again == DiffCounts(2, 0, 0, 0, first_sync=True)
    assert store.connection.execute("SELECT count(*) FROM _delta").fetchall() == [(0,)]
    # AND the cohort that has members still gets a real diff
    assert store.staging.plan(COHORT) == DiffCounts(1, 0, 1, 0, first_sync=False)
    assert store.connection.execute("SELECT count(*) FROM _delta").fetchall() == [(1,)]


def test_second_sync_sends_only_changes_with_last_known_properties(
    store: StateStore, tmp_path: Path
) -> None:
    # GIVEN a delivered first sync
    push(store, tmp_path / "a.jsonl", {"u1": {"plan": "pro"}, "u2": {"plan": "free"}}, "s1")
    store.outbox.ack([r.message_id for r in store.outbox.pending()])
    # WHEN u2 leaves, u3 enters, u1 stays with a new property
    snapshot = {"u1": {"plan": "team"}, "u3": {"plan": "pro"}}
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", snapshot))
    assert store.staging.plan(COHORT) == DiffCounts(1, 1, 1, 1, first_sync=False)
    staged = push(store, tmp_path / "b.jsonl", snapshot, "s2")
    # THEN only u3 (entering) and u2 (exiting, with its last-known properties) are sent
    assert (staged.entering, staged.exiting) == (1, 1)
    records = list(store.outbox.pending())
    assert [(r.message_id, r.in_cohort) for r in records] == [("s2:0", True), ("s2:1", False)]
    assert sent(records) == {True: {"u3": {"plan": "pro"}}, False: {"u2": {"plan": "free"}}}
    # AND the stored membership carries u1's new properties
    assert dict(store.members(COHORT)) == {
        "u1": '{"user_id":"u1","user_properties":{"plan":"team"}}',
        "u3": '{"user_id":"u3","user_properties":{"plan":"pro"}}',
    }


def test_property_change_alone_sends_nothing(store: StateStore, tmp_path: Path) -> None:
    push(store, tmp_path / "a.jsonl", {"u1": {"a": 1}}, "s1")
    store.outbox.ack([r.message_id for r in store.outbox.pending()])

    staged = push(store, tmp_path / "b.jsonl", {"u1": {"a": 2}}, "s2")

    assert (staged.entering, staged.exiting, staged.messages) == (0, 0, 0)
    assert list(store.outbox.pending()) == []
    assert dict(store.members(COHORT)) == {"u1": '{"user_id":"u1","user_properties":{"a":2}}'}


def test_stage_is_atomic_when_build_fails_midway(store: StateStore, tmp_path: Path) -> None:
    push(store, tmp_path / "a.jsonl", {"u1": None, "u2": None}, "s1")
    before_members = list(store.members(COHORT))
    before_outbox = [r.message_id for r in store.outbox.pending()]

    def exploding(in_cohort: bool, users: Iterable[str], first_sequence: int):
        records = builder("s2", users_per_message=1)(in_cohort, users, first_sequence)
        for index, record in enumerate(records):
            if not in_cohort and index == 0:
                raise RuntimeError("killed while building exiting messages")
            yield record

    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"u3": None, "u4": None}))
    with pytest.raises(RuntimeError, match="killed while building"):
        store.staging.stage(
            cohort_id=COHORT,
            cohort_name=NAME,
            computed_time="1",
            sync_id="s2",
            build=exploding,
        )

    assert list(store.members(COHORT)) == before_members
    assert [r.message_id for r in store.outbox.pending()] == before_outbox
    assert store.outbox.counts().pending == len(before_outbox)
    assert outbox_rows(store, "s2") == 0  # the entering records written before the failure went
    # The snapshot is still loaded: the same sync can be re-staged after the failure.
    staged = store.staging.stage(
        cohort_id=COHORT, cohort_name=NAME, computed_time="1", sync_id="s2", build=builder("s2")
    )
    assert (staged.entering, staged.exiting) == (2, 2)


def outbox_rows(store: StateStore, sync_id: str) -> int:
    rows = store.connection.execute(
        "SELECT count(*) FROM outbox WHERE sync_id = $s", {"s": sync_id}
    ).fetchall()
    return int(rows[0][0])


def test_a_failure_after_the_records_are_written_leaves_nothing_pending(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delivered first sync, and a second whose membership step fails after every one
    # of its records was written (each in a commit of its own)
    push(store, tmp_path / "a.jsonl", {"u1": None, "u2": None}, "s1")
    store.outbox.ack([r.message_id for r in store.outbox.pending()])
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"u3": None}))

    def interrupted(*args: object, **kwargs: object) -> None:
        assert outbox_rows(store, "s2") == 3  # u3 in, u1 and u2 out: all written by now
        raise KeyboardInterrupt

    monkeypatch.setattr(Staging, "_replace_membership", interrupted)
    # WHEN it is staged
    with pytest.raises(KeyboardInterrupt):
        push_loaded(store, "s2")
    # THEN nothing of it is pending, counted or kept, and the membership is the first sync's
    assert list(store.outbox.pending()) == []
    assert store.outbox.counts().pending == 0
    assert outbox_rows(store, "s2") == 0
    assert sorted(u for u, _ in store.members(COHORT)) == ["u1", "u2"]


def test_records_of_a_stage_killed_before_its_commit_are_never_pending(tmp_path: Path) -> None:
    # GIVEN a state file holding records of a sync that was never recorded (the process died
    # between writing them and the commit of the sync and membership)
    db = tmp_path / "state.duckdb"
    with StateStore(db) as store:
        store.bind(COHORT, NAME, STREAM)
        push(store, tmp_path / "a.jsonl", {"u1": None}, "s1")
        records = builder("killed")(True, ['{"user_id":"u2"}', '{"user_id":"u3"}'], 0)
        Outbox(store.connection).add("killed", 0, records)
    # WHEN the state is read without writing, then opened again
    with StateStore(db, read_only=True) as reader:
        counts, pending = reader.outbox.counts(), [r.message_id for r in reader.outbox.pending()]
        orphans_seen = outbox_rows(reader, "killed")
    with StateStore(db) as reopened:
        left = outbox_rows(reopened, "killed")
        still_pending = [r.message_id for r in reopened.outbox.pending()]
    # THEN they were never pending nor counted, and the writable open deleted them
    assert orphans_seen == 1
    assert (counts.pending, counts.pending_users) == (1, 1)
    assert pending == still_pending == ["s1:0"]
    assert left == 0


def push_loaded(store: StateStore, sync_id: str):
    return store.staging.stage(
        cohort_id=COHORT,
        cohort_name=NAME,
        computed_time="1700000000",
        sync_id=sync_id,
        build=builder(sync_id, users_per_message=1),
    )


def test_pending_ack_and_resume_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "state.duckdb"
    users = {f"u{i}": {"i": i} for i in range(7)}
    with StateStore(db, threads=1) as first:
        first.bind(COHORT, NAME, STREAM)
        staged = push(first, tmp_path / "s.jsonl", users, "s1")
        assert staged.messages == 4
        head = list(first.outbox.pending(limit=2))
        first.outbox.ack([r.message_id for r in head])
        first.outbox.record_failure(["s1:2"], "ProvisionedThroughputExceededException")
    # A new process sees exactly the unacked records, same ids, same bytes, in order.
    with StateStore(db, threads=1) as second:
        rest = list(second.outbox.pending())
        assert [r.message_id for r in rest] == ["s1:2", "s1:3"]
        counts = second.outbox.counts()
        assert (counts.pending, counts.failing, counts.max_tries) == (2, 1, 1)
        assert counts.pending_users == 3
        assert sent(head + rest)[True] == users
        second.outbox.ack([r.message_id for r in rest])
        assert list(second.outbox.pending()) == []
        # Acknowledged records are deleted, not kept: the outbox is what is pending.
        assert second.connection.execute("SELECT count(*) FROM outbox").fetchall() == [(0,)]
        assert second.summary().cohorts[0].last_sync.status == "delivered"  # type: ignore[union-attr]


def test_ack_while_iterating_pending(store: StateStore, tmp_path: Path) -> None:
    push(store, tmp_path / "s.jsonl", {f"u{i:03}": None for i in range(300)}, "s1")
    seen = []
    for record in store.outbox.pending():
        seen.append(record.message_id)
        store.outbox.ack([record.message_id])
    assert len(seen) == 150
    assert store.outbox.counts().pending == 0


def test_pending_orders_by_sync_then_sequence_and_filters(
    store: StateStore, tmp_path: Path
) -> None:
    push(store, tmp_path / "a.jsonl", {"a": None, "b": None, "c": None}, "z-first")
    push(store, tmp_path / "b.jsonl", {"d": None}, "a-second")
    ids = [r.message_id for r in store.outbox.pending()]
    assert ids == ["z-first:0", "z-first:1", "a-second:0", "a-second:1", "a-second:2"]
    assert [r.message_id for r in store.outbox.pending(sync_id="a-second")] == ids[2:]
    assert [r.message_id for r in store.outbox.pending(limit=3)] == ids[:3]


def test_plan_is_recomputed_per_cohort_and_after_a_new_snapshot(
    store: StateStore, tmp_path: Path
) -> None:
    push(store, tmp_path / "a.jsonl", {"a": None, "b": None}, "s1")
    store.bind("coh_2", "Other", STREAM)
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"b": None, "c": None}))
    assert store.staging.plan(COHORT) == DiffCounts(1, 1, 1, 0, first_sync=False)
    assert store.staging.plan("coh_2") == DiffCounts(2, 0, 0, 0, first_sync=True)
    store.staging.load_snapshot(write_jsonl(tmp_path / "c.jsonl", {"c": None}))
    assert store.staging.plan(COHORT) == DiffCounts(1, 2, 0, 0, first_sync=False)
    staged = store.staging.stage(
        cohort_id=COHORT, cohort_name=NAME, computed_time="1", sync_id="s2", build=builder("s2")
    )
    assert (staged.entering, staged.exiting) == (1, 2)


def test_a_cohorts_first_sync_leaves_other_cohorts_members_alone(
    store: StateStore, tmp_path: Path
) -> None:
    # GIVEN a delivered cohort, and a second cohort bound to the same stream
    push(store, tmp_path / "a.jsonl", {"a": {"p": 1}, "b": None}, "s1")
    store.outbox.ack([r.message_id for r in store.outbox.pending()])
    store.bind("coh_2", "Other", STREAM)
    # WHEN the second cohort's first sync sends its whole snapshot, a stored user included
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"b": {"p": 2}, "c": None}))
    assert store.staging.plan("coh_2") == DiffCounts(2, 0, 0, 0, first_sync=True)
    staged = store.staging.stage(
        cohort_id="coh_2", cohort_name="Other", computed_time="1", sync_id="s2", build=builder("s2")
    )
    # THEN everyone enters the second cohort and the first keeps its own members
    assert (staged.entering, staged.exiting) == (2, 0)
    assert sent(store.outbox.pending(sync_id="s2")) == {True: {"b": {"p": 2}, "c": None}, False: {}}
    assert dict(store.members("coh_2")) == {
        "b": '{"user_id":"b","user_properties":{"p":2}}',
        "c": '{"user_id":"c"}',
    }
    assert dict(store.members(COHORT)) == {
        "a": '{"user_id":"a","user_properties":{"p":1}}',
        "b": '{"user_id":"b"}',
    }


def test_preview_builds_everything_and_keeps_nothing(store: StateStore, tmp_path: Path) -> None:
    push(store, tmp_path / "a.jsonl", {"a": {"p": 1}, "b": None}, "s1")
    before = (list(store.members(COHORT)), [r.message_id for r in store.outbox.pending()])
    store.staging.load_snapshot(
        write_jsonl(tmp_path / "b.jsonl", {"b": None, "c": None, "d": None})
    )

    previewed = store.staging.preview(cohort_id=COHORT, sync_id="s2", build=builder("s2"))

    assert (list(store.members(COHORT)), [r.message_id for r in store.outbox.pending()]) == before
    staged = store.staging.stage(
        cohort_id=COHORT, cohort_name=NAME, computed_time="1", sync_id="s2", build=builder("s2")
    )
    assert previewed == staged
    assert (staged.entering, staged.exiting, staged.messages) == (2, 1, 2)


def test_binding_another_stream_is_refused(store: StateStore) -> None:
    other = "arn:aws:kinesis:us-east-1:123456789012:stream/other"
    with pytest.raises(StateError, match=r"bound to stream .*cohorts.*not .*other"):
        store.bind("coh_2", "Other", other)
    store.bind(COHORT, "Renamed", STREAM)  # same stream: rebinding (renaming) is fine


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("plan", "no snapshot loaded"),
        ("stage", "no snapshot loaded"),
    ],
)
def test_plan_and_stage_need_a_snapshot(store: StateStore, call: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        if call == "plan":
            store.staging.plan(COHORT)
        else:
            store.staging.stage(
                cohort_id=COHORT,
                cohort_name=NAME,
                computed_time="1",
                sync_id="s",
                build=builder("s"),
            )


def test_stage_refuses_unbound_cohort_and_reused_sync_id(store: StateStore, tmp_path: Path) -> None:
    push(store, tmp_path / "a.jsonl", {"a": None}, "s1")
    store.staging.load_snapshot(write_jsonl(tmp_path / "b.jsonl", {"b": None}))
    with pytest.raises(StateError, match="cohort_id 'nope': not bound"):
        store.staging.stage(
            cohort_id="nope", cohort_name=NAME, computed_time="1", sync_id="s2", build=builder("s2")
        )
    with pytest.raises(StateError, match="sync_id 's1': already staged"):
        store.staging.stage(
            cohort_id=COHORT, cohort_name=NAME, computed_time="1", sync_id="s1", build=builder("s1")
        )


props = st.one_of(st.none(), st.fixed_dictionaries({"v": st.integers(0, 2)}))
snapshots = st.lists(
    st.dictionaries(st.sampled_from([f"u{i}" for i in range(8)]), props, max_size=8),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=snapshots)
def test_applying_each_sync_reproduces_each_snapshot(sequence: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, StateStore(":memory:", threads=1) as store:
        store.bind(COHORT, NAME, STREAM)
        members: dict[str, Any] = {}
        synced = False  # a sync that sent nothing is not recorded, so it is not the first
        for index, snapshot in enumerate(sequence):
            store.staging.load_snapshot(write_jsonl(Path(tmp) / f"{index}.jsonl", snapshot))
            planned = store.staging.plan(COHORT)
            staged = store.staging.stage(
                cohort_id=COHORT,
                cohort_name=NAME,
                computed_time="1",
                sync_id=f"s{index}",
                build=builder(f"s{index}"),
            )
            assert (planned.entering, planned.exiting) == (staged.entering, staged.exiting)
            assert planned.first_sync is not synced
            synced = synced or staged.messages > 0
            delta = sent(store.outbox.pending(sync_id=f"s{index}"))
            assert not set(delta[True]) & set(members)
            assert set(delta[False]) <= set(members)
            for user_id in delta[False]:
                assert delta[False][user_id] == members.pop(user_id)
            members.update(delta[True])
            assert set(members) == set(snapshot)
            # Last-known properties: refresh what a consumer cannot see (staying users).
            members = {u: (p or None) for u, p in snapshot.items()}
            assert {u: json.loads(j).get("user_properties") for u, j in store.members(COHORT)} == {
                u: (p or None) for u, p in snapshot.items()
            }


def test_a_sync_that_sends_nothing_leaves_no_sync_and_no_computed_time(
    store: StateStore, tmp_path: Path
) -> None:
    # GIVEN a cohort synced once at computed_time 1700000000
    store.bind(COHORT, NAME, STREAM)
    users = {"u1": {"plan": "pro"}, "u2": None}
    assert push(store, tmp_path / "a.jsonl", users, "s1").messages == 1
    # WHEN the same members come again (one property changed: stored, never sent)
    store.staging.load_snapshot(
        write_jsonl(tmp_path / "b.jsonl", {**users, "u1": {"plan": "team"}})
    )
    staged = store.staging.stage(
        cohort_id=COHORT,
        cohort_name=NAME,
        computed_time="1700000999",
        sync_id="s2",
        build=builder("s2"),
    )
    # THEN nothing is staged, no sync row is added and computed_time stays where it was
    assert (staged.messages, staged.entering, staged.exiting) == (0, 0, 0)
    assert store.connection.execute("SELECT sync_id FROM syncs").fetchall() == [("s1",)]
    assert store.last_computed_time(COHORT) == 1700000000
    # AND the property change is stored all the same
    assert dict(store.members(COHORT))["u1"] == '{"user_id":"u1","user_properties":{"plan":"team"}}'


def test_compact_rewrites_a_sparse_file_to_its_live_data(tmp_path: Path) -> None:
    # GIVEN a file-backed state whose first sync's records were all acknowledged
    db = tmp_path / "state.duckdb"
    with StateStore(db, threads=1) as store:
        store.bind(COHORT, NAME, STREAM)
        users = {f"user-{i:06d}": {"blob": "x" * 200} for i in range(20_000)}
        push(store, tmp_path / "s.jsonl", users, "s1")
        store.checkpoint()  # the records reach the file (a big stage's WAL does by itself)
        store.outbox.ack([r.message_id for r in store.outbox.pending()])
        store.checkpoint()
        sparse = db.stat().st_size
        # WHEN it is compacted
        assert store.compact() is True
        # THEN the file shrank to the live data, and the store still works on the new file
        assert db.stat().st_size < 0.7 * sparse
        assert sum(1 for _ in store.members(COHORT)) == 20_000
        store.bind(COHORT, "renamed", STREAM)  # ON CONFLICT needs the primary key it kept
        assert store.compact() is False  # nothing left to gain
    assert not (tmp_path / "state.duckdb.compact").exists()
    with StateStore(db, read_only=True) as reopened:
        summary = reopened.summary()
    assert [(c.cohort_name, c.members) for c in summary.cohorts] == [("renamed", 20_000)]
    assert summary.cohorts[0].last_sync is not None
    assert summary.cohorts[0].last_sync.status == "delivered"
    assert summary.outbox.pending == 0


# A year of daily syncs at 1% churn turns the cohort over 3.65 times; what could grow the file
# is that turnover (freed blocks of acked records and rewritten membership), not the day count.
# The same turnover in fewer, larger days proves the same bound at a tenth of the cost: without
# compaction the file passes the bound within a few days (break `compact` to see it fail).
YEAR_USERS = 10_000
YEAR_CHURN = YEAR_USERS // 10
YEAR_DAYS = 37  # 37 days x 10% churn = 3.7 turnovers, a year's worth at 1% a day


def test_a_simulated_year_of_daily_pushes_keeps_the_state_file_bounded(tmp_path: Path) -> None:
    # GIVEN a cohort of 10,000 users; each day 10% leave and 10% join (oldest out, newest in)
    db = tmp_path / "state.duckdb"
    sizes = []
    rewrites = 0
    with StateStore(db, threads=1) as store:
        store.bind(COHORT, NAME, STREAM)
        for day in range(YEAR_DAYS):
            # WHEN each day stages, delivers (acks) and compacts as run_push does; one open
            # store for speed, and compaction's floor lowered to this small file's scale
            first = day * YEAR_CHURN
            store.staging.use_snapshot(
                store.connection.sql(
                    f"""SELECT 'user-' || lpad(i::VARCHAR, 8, '0') AS user_id,
                               '{{"user_id":"user-' || lpad(i::VARCHAR, 8, '0')
                               || '","user_properties":{{"plan":"p' || (i % 7) || '"}}}}'
                               AS user_json
                        FROM range({first}, {first + YEAR_USERS}) AS t(i)"""
                )
            )
            staged = store.staging.stage(
                cohort_id=COHORT,
                cohort_name=NAME,
                computed_time=str(1_700_000_000 + day * 86_400),
                sync_id=f"day{day}",
                build=builder(f"day{day}", users_per_message=1000),
            )
            assert (staged.entering, staged.exiting) == (
                (YEAR_USERS, 0) if day == 0 else (YEAR_CHURN, YEAR_CHURN)
            )
            store.outbox.ack([r.message_id for r in store.outbox.pending()])
            rewrites += store.compact(min_blocks=2)
            sizes.append(db.stat().st_size)
    # THEN the file never grew past 1.5x its size after day 1, compaction is what kept it there,
    # and the outbox is empty
    worst = max(range(YEAR_DAYS), key=sizes.__getitem__)
    assert sizes[worst] <= 1.5 * sizes[0], (worst, sizes[worst], sizes[0])
    assert rewrites > 1
    with StateStore(db, read_only=True) as reader:
        summary = reader.summary()
    assert summary.outbox.pending == 0
    assert summary.syncs == YEAR_DAYS
    assert summary.cohorts[0].members == YEAR_USERS


def test_a_first_syncs_acknowledged_records_never_reach_the_file(tmp_path: Path) -> None:
    # GIVEN a file-backed first sync whose outbox (~30 MB) is past DuckDB's default 16 MiB
    # checkpoint threshold, but within the store's own
    db = tmp_path / "state.duckdb"
    with StateStore(db) as store:
        store.bind(COHORT, NAME, STREAM)
        store.staging.use_snapshot(
            store.connection.sql(
                """SELECT 'user-' || lpad(i::VARCHAR, 8, '0') AS user_id,
                          '{"user_id":"user-' || lpad(i::VARCHAR, 8, '0')
                          || '","user_properties":{"note":"'
                          || repeat(chr((97 + i % 26)::INTEGER), 120)
                          || '"}}' AS user_json
                   FROM range(200000) AS t(i)"""
            )
        )
        staged = store.staging.stage(
            cohort_id=COHORT,
            cohort_name=NAME,
            computed_time="1700000000",
            sync_id="s1",
            build=builder("s1", users_per_message=1000),
        )
        assert staged.bytes > 24 * 2**20
        # WHEN every record is acknowledged, a few at a time as a push acks, then compacted
        ids = [r.message_id for r in store.outbox.pending()]
        largest = 0
        for start in range(0, len(ids), 25):
            store.outbox.ack(ids[start : start + 25])
            largest = max(largest, db.stat().st_size)
        rewritten = store.compact()
        # THEN the blobs lived and died in the WAL: the file never held them, so there was
        # nothing to rewrite, and it holds only the membership
        assert largest < staged.bytes / 2, (largest, staged.bytes)
        assert rewritten is False
        assert db.stat().st_size < staged.bytes / 2
        assert not Path(str(db) + ".wal").exists() or Path(str(db) + ".wal").stat().st_size == 0
        assert store.summary().cohorts[0].members == 200_000
