"""The ledger's transcoder writes what the library's `JSONTranscoder` writes, faster.

Stored event states are hashed into the audit chain and exported byte for byte, so the
orjson encoder must give the library's bytes (floats aside: any JSON float reads back
as the same float) and the library's decoder must read them back as they were.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.adapters.eventstore.transcoder import OrjsonTranscoder
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.program import Program


def transcoders() -> tuple[JSONTranscoder, JSONTranscoder]:
    pair = (JSONTranscoder(), OrjsonTranscoder())
    for transcoder in pair:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return pair


LIBRARY, OURS = transcoders()

moments = st.datetimes(
    min_value=datetime(1970, 1, 1), timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(),  # any code point: quotes, backslashes, control characters, non-ASCII
    moments,
    st.decimals(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
states = st.dictionaries(st.text(), values, max_size=8)


@given(states)
def test_the_same_bytes_as_the_library(state: dict[str, typing.Any]) -> None:
    assert OURS.encode(state) == LIBRARY.encode(state)
    assert LIBRARY.decode(OURS.encode(state)) == LIBRARY.decode(LIBRARY.encode(state))


@given(st.dictionaries(st.text(), st.floats(allow_nan=False, allow_infinity=False)))
def test_floats_read_back_as_the_same_floats(state: dict[str, float]) -> None:
    assert OURS.decode(OURS.encode(state)) == state


def test_what_orjson_cannot_write_the_library_writes() -> None:
    for state in (
        {"id": UUID(int=7), "when": datetime(2026, 1, 1, tzinfo=UTC)},  # top-level UUID
        {"big": 2**70},  # beyond 64 bits
        {"keys": {1: "not a string key"}},
    ):
        assert OURS.encode(state) == LIBRARY.encode(state)
        assert OURS.decode(OURS.encode(state)) == LIBRARY.decode(LIBRARY.encode(state))


def test_no_ledger_event_holds_a_uuid_below_its_top_level() -> None:
    """orjson would write a nested UUID as a plain string (read back as a str)."""
    classes = [
        value
        for aggregate in (CustomerAccount, IntakeRecord, Program)
        for value in vars(aggregate).values()
        if isinstance(value, type) and issubclass(value, CanMutateAggregate)
    ]
    assert len(classes) > 15
    for event_class in classes:
        hints = typing.get_type_hints(event_class)
        for item in dataclasses.fields(event_class):
            if item.name == "originator_id":  # popped before encoding: a column of its own
                continue
            hint = repr(hints[item.name])
            assert "UUID" not in hint, f"{event_class.__qualname__}.{item.name}: {hint}"
