"""How the POS contract says no: a `ContractViolation` naming each failing field.

A refusal names every failing field as a dotted path (`amount.value`, `items.0.qty`, `""`
for the whole document), so the problem document can say exactly what to fix
(`contract_messages.py` words the schema's errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MAX_EVENT_BYTES = 64 * 1024
_MAX_DETAIL_ERRORS = 5
MAX_SHOWN = 60
# The deepest valid event is three levels (event, items, item); the schema validator gives
# up with a ValueError somewhere past 250, so a deeper document is refused by name first.
MAX_DEPTH = 16


@dataclass(frozen=True)
class FieldError:
    """One reason an event was refused. `field` is a dotted path ("amount.value",
    "items.0.qty"), or "" for the whole document."""

    field: str
    message: str


class ContractViolation(Exception):
    """The bytes or the document break the POS contract; nothing was recorded.

    `problem_type` is the problem slug: `malformed-json`, `payload-too-large` or
    `invalid-event`."""

    def __init__(
        self,
        problem_type: str,
        title: str,
        detail: str,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem_type = problem_type
        self.title = title
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])

    @classmethod
    def too_large(cls, limit: int = MAX_EVENT_BYTES, size: int | None = None) -> ContractViolation:
        got = f"; got {size} bytes" if size is not None else ""
        return cls(
            "payload-too-large",
            "The event is too large",
            f"an event may be at most {limit} bytes of JSON{got}",
        )

    @classmethod
    def malformed(cls, detail: str) -> ContractViolation:
        return cls("malformed-json", "The event is not a JSON object", detail)

    @classmethod
    def bad_money_precision(cls, errors: list[FieldError]) -> ContractViolation:
        return cls(
            "bad-money-precision",
            "An amount has more decimals than its currency has",
            "; ".join(f"{e.field}: {e.message}" for e in errors[:_MAX_DETAIL_ERRORS]),
            errors,
        )

    @classmethod
    def invalid(cls, errors: list[FieldError]) -> ContractViolation:
        shown = "; ".join(
            f"{e.field}: {e.message}" if e.field else e.message for e in errors[:_MAX_DETAIL_ERRORS]
        )
        more = len(errors) - _MAX_DETAIL_ERRORS
        if more > 0:
            shown += f"; and {more} more"
        return cls("invalid-event", "The event does not match the POS contract", shown, errors)

    def __repr__(self) -> str:
        return f"ContractViolation({self.problem_type!r}, {self.detail!r})"


def too_deep(limit: int = MAX_DEPTH) -> ContractViolation:
    return ContractViolation.invalid(
        [
            FieldError(
                "", f"objects and arrays nest more than {limit} levels deep; a POS event is flat"
            )
        ]
    )


def show(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 3] + "..."
    return text


_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def json_kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)
