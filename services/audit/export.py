"""Export a range of stored events as JSON Lines (SPEC §5), byte-exact.

One line per stored event, in store order:

    {"position": 42, "originator_id": "…", "originator_version": 3,
     "topic": "services.ledger.domain.account:CustomerAccount.PurchaseRecorded",
     "state": "<the stored state: the original JSON text, as a string>",
     "recorded_at": "…", "link": "<hash-chain link or null if not chained yet>"}

`state` is the stored bytes decoded as UTF-8 (the JSON transcoder's output), so
`line["state"].encode()` gives back exactly the stored bytes; a store that compresses or
encrypts its states would write `state_b64` instead. `recorded_at` is there for people;
`loyalty audit import` reads back only the stored columns and the position.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder

from services.audit.chain import ChainTable
from services.audit.history import recorded_at
from services.audit.stored import PAGE, StoredRow, iter_rows

MEDIA_TYPE = "application/x-ndjson"


@dataclass(frozen=True)
class ExportLine:
    """One line read back from an export."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes
    link: str | None

    @classmethod
    def parse(cls, line: bytes | str) -> ExportLine:
        doc: dict[str, Any] = orjson.loads(line)
        if "state_b64" in doc:
            state = base64.b64decode(doc["state_b64"])
        else:
            state = str(doc["state"]).encode("utf-8")
        return cls(
            position=int(doc["position"]),
            originator_id=str(doc["originator_id"]),
            originator_version=int(doc["originator_version"]),
            topic=str(doc["topic"]),
            state=state,
            link=doc.get("link"),
        )


def line_of(row: StoredRow, link: str | None) -> bytes:
    doc: dict[str, Any] = {
        "position": row.position,
        "originator_id": str(row.originator_id),
        "originator_version": row.originator_version,
        "topic": row.topic,
    }
    try:
        text = row.state.decode("utf-8")
        doc["state"] = text
        doc["recorded_at"] = recorded_at(orjson.loads(row.state))
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        doc["state_b64"] = base64.b64encode(row.state).decode("ascii")
        doc["recorded_at"] = None
    doc["link"] = link
    return orjson.dumps(doc) + b"\n"


def export_lines(
    recorder: ApplicationRecorder,
    chain: ChainTable | None,
    *,
    from_position: int = 0,
    to_position: int | None = None,
    page: int = PAGE,
) -> Iterator[bytes]:
    """JSON Lines for every stored event with from_position <= position <= to_position."""
    buffer: list[StoredRow] = []

    def flush() -> Iterator[bytes]:
        links = (
            chain.links_between(buffer[0].position, buffer[-1].position)
            if chain is not None
            else {}
        )
        for row in buffer:
            yield line_of(row, links.get(row.position))
        buffer.clear()

    for row in iter_rows(recorder, after=max(from_position, 1) - 1, stop=to_position, page=page):
        buffer.append(row)
        if len(buffer) >= page:
            yield from flush()
    if buffer:
        yield from flush()
