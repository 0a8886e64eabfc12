"""sync.messages: records match the contract byte for byte and never break a limit."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.contract import CohortMessage, User, decode, encode, problems_of
from sync.errors import InputError, RecordLimitError
from sync.messages import OutgoingRecord, build_messages, message_id

pytestmark = pytest.mark.unit

COHORT = {
    "cohort_id": "abc123",
    "cohort_name": "Power users ✓",
    "in_cohort": True,
    "computed_time": "1700000000",
    "sync_id": "sync-1",
    "first_sequence": 0,
}


def user_json(user_id: str, props: dict[str, Any] | None = None) -> str:
    obj: dict[str, Any] = {"user_id": user_id}
    if props is not None:
        obj["user_properties"] = props
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def users_of(record: OutgoingRecord) -> list[str]:
    """Re-serialize the decoded users the way upstream does, to compare with the input."""
    payload = json.loads(record.data)
    return [json.dumps(u, ensure_ascii=False, separators=(",", ":")) for u in payload["users"]]


def build(users: list[str], **overrides: Any) -> list[OutgoingRecord]:
    return list(build_messages(**{**COHORT, "users": users, **overrides}))


def test_message_id_is_sync_id_and_sequence() -> None:
    assert message_id("some-message-id", 54) == "some-message-id:54"


def test_one_record_equals_contract_encoding_byte_for_byte() -> None:
    # GIVEN users serialized compactly, as the contract itself would
    users = [user_json("u1", {"plan": "pro", "ünï": 1}), user_json("u2")]
    # WHEN they fit one message
    [record] = build(users)
    # THEN the bytes are exactly what sync.contract.encode produces
    expected = CohortMessage(
        cohort_name="Power users ✓",
        cohort_id="abc123",
        in_cohort=True,
        computed_time="1700000000",
        message_id="sync-1:0",
        users=(User("u1", {"plan": "pro", "ünï": 1}), User("u2")),
    )
    assert record.data == encode(expected)
    assert json.loads(record.data) == expected.to_json()
    assert problems_of(json.loads(record.data)) == []
    assert record == OutgoingRecord(
        message_id="sync-1:0",
        partition_key="sync-1:0",
        data=record.data,
        user_count=2,
        in_cohort=True,
    )
    assert record.size_bytes == len(record.data) + len(b"sync-1:0")


def test_exiting_users_carry_in_cohort_false() -> None:
    [record] = build([user_json("u1")], in_cohort=False)
    assert decode(record.data).in_cohort is False
    assert record.in_cohort is False


def test_empty_users_build_no_records() -> None:
    assert build([]) == []


def test_splits_by_count_with_consecutive_sequences() -> None:
    users = [user_json(f"u{i}") for i in range(2500)]
    records = build(users, first_sequence=5, max_users_per_message=1000)
    assert [r.user_count for r in records] == [1000, 1000, 500]
    assert [r.message_id for r in records] == ["sync-1:5", "sync-1:6", "sync-1:7"]
    assert [u for r in records for u in users_of(r)] == users


def test_splits_by_bytes_exactly_at_the_limit() -> None:
    # GIVEN the exact size of a record holding the first three users
    users = [user_json(f"u{i}", {"p": "é" * 10}) for i in range(6)]
    exact = build(users[:3])[0].size_bytes
    # WHEN the limit is exactly that size, THEN three users fit in the first record
    assert [r.user_count for r in build(users, max_record_bytes=exact)] == [3, 3]
    # WHEN the limit is one byte less, THEN only two do
    assert build(users, max_record_bytes=exact - 1)[0].user_count == 2


def test_limit_counts_utf8_bytes_not_characters() -> None:
    users = [user_json(f"ü{i}", {"name": "日本語" * 20}) for i in range(50)]
    records = build(users, max_record_bytes=1000)
    assert all(r.size_bytes <= 1000 for r in records)
    # Greedy by bytes: each record is too full to take one more user.
    one_user = len(users[0].encode()) + 1
    assert all(r.size_bytes + one_user > 1000 for r in records[:-1])
    assert [u for r in records for u in users_of(r)] == users


def test_growing_sequence_number_still_respects_the_limit() -> None:
    # "s:9" -> "s:10" adds a byte to the message id, counted twice: in data and partition key.
    users = [user_json("u", {"k": "v"}) for _ in range(2)]
    at_9 = build(users[:1], sync_id="s", first_sequence=9)[0].size_bytes
    at_10 = build(users[:1], sync_id="s", first_sequence=10)[0].size_bytes
    assert at_10 == at_9 + 2
    records = build(users, sync_id="s", first_sequence=9, max_record_bytes=at_10)
    assert [(r.message_id, r.size_bytes) for r in records] == [("s:9", at_9), ("s:10", at_10)]
    with pytest.raises(RecordLimitError) as info:
        build(users, sync_id="s", first_sequence=9, max_record_bytes=at_10 - 1)
    assert str(info.value) == (
        f"user 'u': a message holding only this user is {at_10} bytes (data plus partition key);"
        f" a Kinesis record holds at most {at_10 - 1}"
    )


def test_partition_key_can_be_the_cohort_id() -> None:
    records = build(
        [user_json("u1"), user_json("u2")], max_users_per_message=1, partition_key="cohort_id"
    )
    assert [r.partition_key for r in records] == ["abc123", "abc123"]
    assert [decode(r.data).message_id for r in records] == ["sync-1:0", "sync-1:1"]


def test_a_user_too_big_for_any_record_is_named() -> None:
    users = [user_json("small"), user_json("whale", {"blob": "x" * 5000})]
    with pytest.raises(RecordLimitError) as info:
        build(users, max_record_bytes=2000)
    message = str(info.value)
    assert "user 'whale'" in message
    assert "5" in message and "bytes" in message
    assert "at most 2000" in message


def test_invalid_header_reports_every_problem_at_once() -> None:
    with pytest.raises(InputError) as info:
        build([user_json("u")], cohort_id="", computed_time="1.5", max_users_per_message=0)
    message = str(info.value)
    assert "cohort_id '': must be a non-empty string" in message
    assert "computed_time '1.5': must be epoch seconds" in message
    assert "max_users_per_message 0: must be >= 1" in message


def test_too_long_partition_key_is_refused() -> None:
    with pytest.raises(RecordLimitError, match="at most 256 allowed; use a shorter sync_id"):
        build([user_json("u")], sync_id="s" * 300)


def test_users_are_consumed_lazily() -> None:
    # The generator reads ahead in blocks; it must not need the whole input before yielding.
    def endless() -> Any:
        n = 0
        while True:
            yield user_json(f"u{n}")
            n += 1

    first = next(build_messages(**COHORT, users=endless(), max_users_per_message=10))
    assert first.user_count == 10


user_ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)
props = st.none() | st.dictionaries(
    st.text(max_size=5), st.integers() | st.text(max_size=30) | st.booleans(), max_size=3
)
users_strategy = st.lists(st.builds(user_json, user_ids, props), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    users=users_strategy,
    max_users=st.integers(1, 20),
    slack=st.integers(0, 400),
    first_sequence=st.sampled_from([0, 7, 98, 999]),
    key=st.sampled_from(["message_id", "cohort_id"]),
)
def test_property_split_preserves_users_and_limits(
    users: list[str], max_users: int, slack: int, first_sequence: int, key: Any
) -> None:
    # The limit: big enough for the largest single user, plus random slack.
    biggest = max(
        (
            build([u], first_sequence=first_sequence + len(users), partition_key=key)[0].size_bytes
            for u in users
        ),
        default=200,
    )
    limit = biggest + slack
    records = build(
        users,
        first_sequence=first_sequence,
        max_users_per_message=max_users,
        max_record_bytes=limit,
        partition_key=key,
    )
    assert all(r.size_bytes <= limit for r in records)
    assert all(1 <= r.user_count <= max_users for r in records)
    assert [u for r in records for u in users_of(r)] == users
    assert [r.message_id for r in records] == [
        f"sync-1:{first_sequence + i}" for i in range(len(records))
    ]
    for record in records:
        message = decode(record.data)
        assert message.message_id == record.message_id
        assert len(message.users) == record.user_count
    # Greedy: no record could have taken the next record's first user.
    for record, following in pairwise(records):
        if record.user_count < max_users:
            grown = build(
                users_of(record) + users_of(following)[:1],
                first_sequence=int(record.message_id.split(":")[1]),
                max_users_per_message=max_users + 1,
                partition_key=key,
            )[0]
            assert grown.size_bytes > limit


def test_contract_problems_spell_json_values_as_json_never_python() -> None:
    payload = {
        "cohort_name": None,
        "cohort_id": "c1",
        "in_cohort": None,
        "computed_time": None,
        "message_id": "m:0",
        "users": [{"user_id": None}],
    }

    problems = problems_of(payload)

    assert problems == [
        "cohort_name null: must be a non-empty string",
        "in_cohort null: must be true or false",
        "computed_time null: must be epoch seconds as a string of digits",
        "users[0] user_id null: must be a non-empty string",
    ]
    assert not any("None" in p for p in problems)
