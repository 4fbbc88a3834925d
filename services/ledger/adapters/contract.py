"""The public POS event contract (SPEC §2): JSON Schema 2020-12 files in `schemas/pos/`.

Both intakes, `POST /v1/events` and the Kafka consumer, go through the intake service
(`application/intake.py`), which hands the raw bytes to `parse_command` (a batch's
decoded items to `validate_command`): the document is checked here and turned into its
typed command (`domain/commands.py`) once. A refusal is a `ContractViolation`
(`contract_violation.py`) that names every failing field as a dotted path
(`amount.value`, `items.0.qty`, `""` for the whole document), so the problem document
can say exactly what to fix; `contract_messages.py` words the schema's errors.

Validation is on the ingest hot path: the schema files are read once, lazily (nothing
is read at import time), one compiled `jsonschema_rs` validator per event type is built
from them, and an event is dispatched on its `type` to that validator. A valid event
costs one `is_valid` call; the readable errors are computed only when it fails.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from services import resources
from services.ledger.adapters.contract_messages import Compiled, dedupe, field_errors, unknown_type
from services.ledger.adapters.contract_violation import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    ContractViolation,
    FieldError,
    json_kind,
    show,
    too_deep,
)
from services.ledger.domain.commands import PosCommand, command_of
from services.ledger.domain.currencies import minor_unit

__all__ = [
    "EVENT_TYPES",
    "MAX_DEPTH",
    "MAX_EVENT_BYTES",
    "ContractViolation",
    "FieldError",
    "depth",
    "json_kind",
    "load_contract",
    "minor_unit",
    "parse_command",
    "parse_event",
    "schema_dir",
    "too_deep",
    "validate_command",
    "validate_event",
    "validate_item",
]

SCHEMA_BASE = "https://loyalty-ledger.dev/schemas/pos/"
EVENT_TYPES: tuple[str, ...] = (
    "purchase",
    "refund",
    "referral",
    "review",
    "goodwill",
    "incident",
    "redemption",
    "redemption_cancel",
    "enrolment",
    "redemption_hold",
    "redemption_capture",
    "redemption_void",
    "donation",
)

# JSON Schema's "integer" is mathematical: it accepts 5.0. The ledger counts points in
# Python ints, so these fields must also not be JSON numbers with a decimal point.
_INTEGER_FIELDS: dict[str, tuple[str, ...]] = {
    "review": ("rating",),
    "goodwill": ("points",),
    "redemption": ("points",),
    "redemption_hold": ("points", "hold_seconds"),
    "redemption_capture": ("points",),
    "donation": ("points",),
}


def schema_dir() -> Path:
    """The public contract's `schemas/` directory (the POS schemas are in its `pos/`),
    package data (services/resources)."""
    return resources.schema_dir()


_lock = threading.Lock()
_contract: Compiled | None = None


def _no_remote(uri: str) -> Any:
    raise ValueError(f"the POS contract does not load remote schemas ({uri})")


def _load() -> Compiled:
    global _contract
    with _lock:
        if _contract is None:
            schemas: dict[str, dict[str, Any]] = {}
            for path in sorted((schema_dir() / "pos").glob("*.json")):
                schema = orjson.loads(path.read_bytes())
                schemas[schema["$id"]] = schema
            registry = jsonschema_rs.Registry(list(schemas.items()))

            def build(name: str) -> jsonschema_rs.Validator:
                return jsonschema_rs.Draft202012Validator(
                    schemas[SCHEMA_BASE + name],
                    validate_formats=True,
                    registry=registry,
                    retriever=_no_remote,
                )

            _contract = Compiled(
                schemas=schemas,
                envelope=build("envelope.v1.json"),
                by_type={t: build(f"{t}.v1.json") for t in EVENT_TYPES},
            )
        return _contract


def load_contract() -> None:
    """Read and compile the schemas now (e.g. at startup) instead of on the first event."""
    _load()


def parse_event(raw: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Bytes as received (HTTP body, Kafka value) to a valid event document, or raise."""
    size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    if size > MAX_EVENT_BYTES:
        raise ContractViolation.too_large(MAX_EVENT_BYTES, size)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ContractViolation.malformed(f"the body is not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise ContractViolation.malformed(
            f"an event is one JSON object, not {json_kind(doc)}"
            + (" (send several events to POST /v1/events:batch)" if isinstance(doc, list) else "")
        )
    return validate_event(doc)


def parse_command(raw: bytes | bytearray | memoryview | str) -> PosCommand:
    """Bytes as received to the command the valid event stands for, or raise."""
    return command_of(parse_event(raw))


def validate_command(doc: Any) -> PosCommand:
    """A decoded event (an item of a batch) to its command, or raise."""
    return command_of(validate_event(doc))


def validate_item(item: Any) -> PosCommand:
    """An item of a batch (`POST /v1/events:batch`), decoded with the batch: no deeper
    than `MAX_DEPTH`, at most `MAX_EVENT_BYTES` as JSON, valid: its command, or raise."""
    if depth(item) > MAX_DEPTH:  # orjson.dumps would give up too (past 254)
        raise too_deep()
    if len(orjson.dumps(item)) > MAX_EVENT_BYTES:
        raise ContractViolation.too_large(MAX_EVENT_BYTES)
    return validate_command(item)


def validate_event(doc: Any) -> dict[str, Any]:
    """Check a decoded event against its type's schema; return it unchanged if it is valid,
    else raise `ContractViolation` (`invalid-event`) with one `FieldError` per problem."""
    contract = _contract or _load()
    if not isinstance(doc, dict):
        raise ContractViolation.invalid(
            [FieldError("", f"an event must be a JSON object, not {json_kind(doc)}")]
        )
    event_type = doc.get("type")
    if not isinstance(event_type, str) or event_type not in contract.by_type:
        raise ContractViolation.invalid(unknown_type(contract, doc, event_type, EVENT_TYPES))
    validator = contract.by_type[event_type]
    try:
        if validator.is_valid(doc):
            if _has_float_integers(doc, event_type):
                raise ContractViolation.invalid(_float_integer_errors(doc, event_type))
            _check_money(doc)
            return doc
        errors = field_errors(contract, validator, doc)
    except (ValueError, RecursionError) as error:
        # A pure function of the document: it fails the same way on every delivery, so it
        # is refused (and dead-lettered), never left to stop an intake.
        raise _unvalidatable(doc, error) from None
    failed = {e.field for e in errors}
    errors += [e for e in _float_integer_errors(doc, event_type) if e.field not in failed]
    raise ContractViolation.invalid(dedupe(errors))


def _check_money(doc: dict[str, Any]) -> None:
    """SPEC §8: an amount has at most its currency's ISO 4217 minor unit of decimals (EUR
    2, JPY 0, BHD 3); a purchase's item prices are in the purchase's currency. On a
    schema-valid document: the money fields have their shape."""
    amount = doc.get("amount")
    items = doc.get("items")
    if amount is None and not items:
        return
    tender = doc.get("points_tender")
    found: list[tuple[str, dict[str, str]]] = [("amount", amount)] if amount else []
    found += [("points_tender", tender)] if tender else []
    found += [(f"items.{i}.unit_price", item["unit_price"]) for i, item in enumerate(items or ())]
    precision = [
        FieldError(f"{where}.value", _precision_message(money))
        for where, money in found
        if _decimals(money["value"]) > minor_unit(money["currency"])
    ]
    if precision:
        raise ContractViolation.bad_money_precision(precision)
    if amount and tender and tender["currency"] != amount["currency"]:
        raise ContractViolation.invalid(
            [
                FieldError(
                    "points_tender.currency",
                    f"must be the purchase's currency {amount['currency']}; "
                    f"got {tender['currency']}",
                )
            ]
        )
    if amount and items:
        currency = amount["currency"]
        mixed = [
            FieldError(
                f"items.{i}.unit_price.currency",
                f"must be the purchase's currency {currency}; got {item['unit_price']['currency']}",
            )
            for i, item in enumerate(items)
            if item["unit_price"]["currency"] != currency
        ]
        if mixed:
            raise ContractViolation.invalid(mixed)


def _decimals(value: str) -> int:
    return len(value.partition(".")[2])


def _precision_message(money: dict[str, str]) -> str:
    unit = minor_unit(money["currency"])
    allowed = "no decimals" if unit == 0 else f"at most {unit} decimal{'s' if unit > 1 else ''}"
    return f"{money['currency']} has {allowed}; got {show(money['value'])}"


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply objects and arrays nest in a decoded document (a scalar is 0), counted
    no further than `limit + 1`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, level)
        if level > limit:
            break
        stack.extend(
            (child, level + 1) for child in (node.values() if isinstance(node, dict) else node)
        )
    return deepest


def _unvalidatable(doc: Any, error: Exception) -> ContractViolation:
    if depth(doc) > MAX_DEPTH:
        return too_deep()
    return ContractViolation.invalid([FieldError("", f"the event could not be validated: {error}")])


# --- errors -----------------------------------------------------------------------------


def _float_integer_errors(doc: dict[str, Any], event_type: str) -> list[FieldError]:
    errors = [
        FieldError(name, _whole_number(doc[name]))
        for name in ("schema_version", *_INTEGER_FIELDS.get(event_type, ()))
        if isinstance(doc.get(name), float)
    ]
    items = doc.get("items") if event_type == "purchase" else None
    if isinstance(items, list):
        errors += [
            FieldError(f"items.{i}.qty", _whole_number(item["qty"]))
            for i, item in enumerate(items)
            if isinstance(item, dict) and isinstance(item.get("qty"), float)
        ]
    return errors


def _has_float_integers(doc: dict[str, Any], event_type: str) -> bool:
    """Fast check on a schema-valid event (so the fields, if present, have their shape)."""
    if type(doc["schema_version"]) is float:  # `const: 1` admits 1.0
        return True
    if event_type == "purchase":
        items: list[dict[str, Any]] | None = doc.get("items")
        return items is not None and any(type(item["qty"]) is float for item in items)
    return any(type(doc.get(name)) is float for name in _INTEGER_FIELDS.get(event_type, ()))


def _whole_number(value: float) -> str:
    return f"must be a whole number written without a decimal point; got {show(value)}"
