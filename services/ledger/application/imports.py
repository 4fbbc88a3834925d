"""Opening balances for a programme moving to the ledger (SPEC §9): one line per
customer, `{"import_id", "customer_id", "points", "earned_at", "expires_at"}`.

A line is validated here (`OpeningBalanceIn`, the same for the CLI's JSON Lines and the
admin batch endpoint), then recorded through `Ledger.record_batch` like a POS event of
the internal type `opening_balance`: so a line is judged once, a repeat of an
`import_id` is a `duplicate` (the same content) or an `event-id-conflict` (other
content), and a refusal (a line already past its expiry, `opening-balance-expired`) is
recorded and answered the same way every time. The intake id is that of
`opening-balance/<import_id>`: the "/" keeps it apart from every POS event_id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.http.params import ID_MAX_LENGTH, ID_PATTERN, LedgerTime
from services.ledger.domain.clock import iso

if TYPE_CHECKING:
    from services.ledger.application.ledger import Ledger, Outcome

BATCH_LIMIT = 1000
EVENT_ID_PREFIX = "opening-balance/"


class OpeningBalanceIn(BaseModel):
    """One customer's points from the previous programme: an available lot with its
    original dates (it expires on `expires_at`)."""

    model_config = ConfigDict(extra="forbid")

    import_id: str = Field(
        pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="idempotency key of the line"
    )
    customer_id: str = Field(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)
    points: int = Field(ge=1, le=10_000_000, strict=True)
    earned_at: LedgerTime = Field(description="when the points were earned (RFC 3339)")
    expires_at: LedgerTime = Field(description="when they expire; already past: refused")


def document_of(line: OpeningBalanceIn) -> dict[str, Any]:
    """The line as the ledger records it (its fingerprint: a retry sends the same line)."""
    return {
        "event_id": EVENT_ID_PREFIX + line.import_id,
        "type": "opening_balance",
        "customer_id": line.customer_id,
        "occurred_at": iso(line.earned_at),
        "store_id": None,
        "schema_version": 1,
        "import_id": line.import_id,
        "points": line.points,
        "earned_at": iso(line.earned_at),
        "expires_at": iso(line.expires_at),
    }


def record_balances(ledger: Ledger, lines: Iterable[OpeningBalanceIn]) -> list[Outcome]:
    """One transaction for the lines (at most `BATCH_LIMIT`); each outcome's `event_id`
    is the line's `import_id`."""
    outcomes = ledger.record_batch([document_of(line) for line in lines])
    for outcome in outcomes:
        outcome.event_id = outcome.event_id.removeprefix(EVENT_ID_PREFIX)
    return outcomes


class BadLine(ValueError):
    """A line of the file that is not an opening balance: nothing is imported."""


def read_lines(path: Path) -> Iterator[OpeningBalanceIn]:
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.strip():
                continue
            try:
                yield OpeningBalanceIn.model_validate(orjson.loads(raw))
            except orjson.JSONDecodeError as error:
                raise BadLine(f"{path}:{number}: not JSON ({error})") from None
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise BadLine(f"{path}:{number}: {where}: {first['msg']}") from None


@dataclass
class ImportReport:
    accepted: int = 0
    duplicate: int = 0
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # id, type, detail


def import_file(
    ledger: Ledger,
    path: Path,
    *,
    chunk: int = 500,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Every line of a JSON Lines file, checked first (a bad line: `BadLine`, nothing
    imported), then recorded `chunk` lines per transaction."""
    lines = list(read_lines(path))
    report = ImportReport()
    for start in range(0, len(lines), chunk):
        for outcome in record_balances(ledger, lines[start : start + chunk]):
            if outcome.status == "accepted":
                report.accepted += 1
            elif outcome.status == "duplicate":
                report.duplicate += 1
            else:
                assert outcome.error is not None
                report.refused.append((outcome.event_id, outcome.error.slug, str(outcome.error)))
        if on_progress is not None:
            on_progress(min(start + chunk, len(lines)), len(lines))
    return report
