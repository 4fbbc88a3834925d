"""The hash chain's encoding and the export format, without a store."""

from __future__ import annotations

import dataclasses
from uuid import uuid4

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.audit.chain import GENESIS, canonical, next_link
from services.audit.export import ExportLine, line_of
from services.audit.importer import ImportRefused, check_file
from services.audit.stored import StoredRow
from services.audit.verify import Anchor

ROW = StoredRow(
    position=7,
    originator_id=uuid4(),
    originator_version=2,
    topic="services.ledger.domain.account:CustomerAccount.PurchaseRecorded",
    state=b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"},'
    b'"points":25,"comment":"caf\xc3\xa9 \\"quoted\\" \\u0000"}',
)


@pytest.mark.parametrize(
    "change",
    [
        {"position": 8},
        {"originator_id": uuid4()},
        {"originator_version": 3},
        {"topic": ROW.topic.replace("Purchase", "Review")},
        {"state": ROW.state.replace(b"25", b"26")},
    ],
)
def test_every_stored_column_is_covered_by_the_link(change: dict[str, object]) -> None:
    other = dataclasses.replace(ROW, **change)  # type: ignore[arg-type]
    assert canonical(other) != canonical(ROW)
    assert next_link(GENESIS, other) != next_link(GENESIS, ROW)


def test_a_link_covers_the_previous_link() -> None:
    assert next_link(GENESIS, ROW) != next_link(next_link(GENESIS, ROW), ROW)
    assert next_link(GENESIS, ROW) == next_link(GENESIS, dataclasses.replace(ROW))


def test_topic_and_state_boundaries_cannot_be_shifted() -> None:
    """Length prefixes: moving bytes from the topic into the state changes the encoding."""
    shifted = dataclasses.replace(
        ROW, topic=ROW.topic[:-1], state=ROW.topic[-1:].encode() + ROW.state
    )
    assert canonical(shifted) != canonical(ROW)


@given(st.binary(max_size=200), st.text(max_size=50))
def test_an_export_line_gives_back_the_stored_bytes(state: bytes, topic: str) -> None:
    row = dataclasses.replace(ROW, state=state, topic=topic)
    line = ExportLine.parse(line_of(row, None))
    assert (line.state, line.topic, line.position) == (state, topic, row.position)


def test_a_json_state_is_exported_as_its_text() -> None:
    doc = orjson.loads(line_of(ROW, "ab" * 32))
    assert doc["state"].encode("utf-8") == ROW.state
    assert doc["recorded_at"] == "2026-01-01T00:00:00+00:00"
    assert doc["link"] == "ab" * 32


def _lines(*rows: StoredRow, linked: int | None = None) -> list[ExportLine]:
    previous, lines = GENESIS, []
    for index, row in enumerate(rows):
        previous = next_link(previous, row)
        link = previous.hex() if linked is None or index < linked else None
        lines.append(ExportLine.parse(line_of(row, link)))
    return lines


def _history() -> list[StoredRow]:
    a, b = uuid4(), uuid4()
    return [
        StoredRow(1, a, 1, "t:A.Created", b"{}"),
        StoredRow(2, b, 1, "t:B.Created", b"{}"),
        StoredRow(5, a, 2, "t:A.Changed", b'{"x":1}'),
    ]


def test_a_whole_chained_history_passes_the_file_check() -> None:
    check = check_file(iter(_lines(*_history())))
    assert (check.events, check.last_position) == (3, 5)


def test_unchained_lines_may_only_come_last() -> None:
    assert check_file(iter(_lines(*_history(), linked=2))).last_link is not None
    lines = _lines(*_history())
    lines[0] = dataclasses.replace(lines[0], link=None)
    with pytest.raises(ImportRefused, match="after unchained"):
        check_file(iter(lines))


def test_the_file_check_refuses_missing_versions_and_disorder() -> None:
    rows = _history()
    with pytest.raises(ImportRefused, match="every event"):
        check_file(iter(_lines(rows[1], rows[2])))
    with pytest.raises(ImportRefused, match="does not follow"):
        check_file(iter(_lines(rows[1], rows[0])))


def test_an_anchor_is_position_and_link() -> None:
    assert Anchor.parse("42:" + "AB" * 32) == Anchor(42, "ab" * 32)
    with pytest.raises(ValueError):
        Anchor.parse("42-abc")
