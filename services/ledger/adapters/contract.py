"""The public POS event contract (SPEC §2): JSON Schema 2020-12 files in `schemas/pos/`.

Both intakes, `POST /v1/events` and the Kafka consumer, hand the raw bytes to
`parse_event`; a batch hands each decoded event to `validate_event`. A refusal is a
`ContractViolation` that names every failing field as a dotted path (`amount.value`,
`items.0.qty`, `""` for the whole document), so the problem document can say exactly
what to fix.

Validation is on the ingest hot path: the schema files are read once, lazily (nothing
is read at import time), one compiled `jsonschema_rs` validator per event type is built
from them, and an event is dispatched on its `type` to that validator. A valid event
costs one `is_valid` call; the readable errors are computed only when it fails.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema_rs import ValidationErrorKind as Kind

from services import resources
from services.ledger.domain.currencies import minor_unit

MAX_EVENT_BYTES = 64 * 1024

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
_MAX_DETAIL_ERRORS = 5
_MAX_SHOWN = 60
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


def schema_dir() -> Path:
    """The public contract's `schemas/` directory (the POS schemas are in its `pos/`),
    package data (services/resources)."""
    return resources.schema_dir()


@dataclass
class _Contract:
    schemas: dict[str, dict[str, Any]]  # by $id
    envelope: jsonschema_rs.Validator
    by_type: dict[str, jsonschema_rs.Validator]
    descriptions: dict[str, str | None] = field(default_factory=dict)  # keyword location cache


_lock = threading.Lock()
_contract: _Contract | None = None


def _no_remote(uri: str) -> Any:
    raise ValueError(f"the POS contract does not load remote schemas ({uri})")


def _load() -> _Contract:
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

            _contract = _Contract(
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
            f"an event is one JSON object, not {_json_kind(doc)}"
            + (" (send several events to POST /v1/events:batch)" if isinstance(doc, list) else "")
        )
    return validate_event(doc)


def validate_event(doc: Any) -> dict[str, Any]:
    """Check a decoded event against its type's schema; return it unchanged if it is valid,
    else raise `ContractViolation` (`invalid-event`) with one `FieldError` per problem."""
    contract = _contract or _load()
    if not isinstance(doc, dict):
        raise ContractViolation.invalid(
            [FieldError("", f"an event must be a JSON object, not {_json_kind(doc)}")]
        )
    event_type = doc.get("type")
    if not isinstance(event_type, str) or event_type not in contract.by_type:
        raise ContractViolation.invalid(_unknown_type(contract, doc, event_type))
    validator = contract.by_type[event_type]
    try:
        if validator.is_valid(doc):
            if _has_float_integers(doc, event_type):
                raise ContractViolation.invalid(_float_integer_errors(doc, event_type))
            _check_money(doc)
            return doc
        errors = _errors(contract, validator, doc)
    except (ValueError, RecursionError) as error:
        # A pure function of the document: it fails the same way on every delivery, so it
        # is refused (and dead-lettered), never left to stop an intake.
        raise _unvalidatable(doc, error) from None
    failed = {e.field for e in errors}
    errors += [e for e in _float_integer_errors(doc, event_type) if e.field not in failed]
    raise ContractViolation.invalid(_dedupe(errors))


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
    return f"{money['currency']} has {allowed}; got {_show(money['value'])}"


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


def too_deep(limit: int = MAX_DEPTH) -> ContractViolation:
    return ContractViolation.invalid(
        [
            FieldError(
                "", f"objects and arrays nest more than {limit} levels deep; a POS event is flat"
            )
        ]
    )


def _unvalidatable(doc: Any, error: Exception) -> ContractViolation:
    if depth(doc) > MAX_DEPTH:
        return too_deep()
    return ContractViolation.invalid([FieldError("", f"the event could not be validated: {error}")])


# --- errors -----------------------------------------------------------------------------


def _unknown_type(contract: _Contract, doc: dict[str, Any], event_type: Any) -> list[FieldError]:
    expected = ", ".join(EVENT_TYPES)
    if "type" not in doc:
        first = FieldError("type", f"type is required; expected one of {expected}")
    elif not isinstance(event_type, str):
        first = FieldError(
            "type", f"must be a string, one of {expected}; got {_json_kind(event_type)}"
        )
    else:
        first = FieldError(
            "type", f"unknown event type {_show(event_type)}; expected one of {expected}"
        )
    # Still report what is wrong with the envelope, so one round trip shows everything.
    rest = [e for e in _errors(contract, contract.envelope, doc) if e.field != "type"]
    return _dedupe([first, *rest])


def _errors(contract: _Contract, validator: jsonschema_rs.Validator, doc: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    failed_pattern: set[str] = set()
    formats: list[FieldError] = []
    for error in validator.iter_errors(doc):
        path = _dotted(error.instance_path)
        location = error.absolute_keyword_location
        match error.kind:
            case (
                Kind.AdditionalProperties(unexpected=names)
                | Kind.UnevaluatedProperties(unexpected=names)
            ):
                where = f"in {path}" if path else f"in a {_show(doc.get('type'))} event"
                errors += [
                    FieldError(_join(path, name), f"unknown field {_show(name)} {where}")
                    for name in names
                ]
            case Kind.Required(property=prop):
                message = f"{prop} is required"
                hint = _description(contract, location)
                if hint and _is_bare_constraint(contract, location):
                    message += f": {hint}"
                errors.append(FieldError(_join(path, prop), message))
            case Kind.Format():
                formats.append(FieldError(path, _message(error, None)))
            case _:
                if isinstance(error.kind, Kind.Pattern):
                    failed_pattern.add(path)
                errors.append(FieldError(path, _message(error, _description(contract, location))))
    # A timestamp without an offset fails both its pattern and its format: say it once.
    return errors + [e for e in formats if e.field not in failed_pattern]


def _message(error: jsonschema_rs.ValidationError, description: str | None) -> str:
    """Plain English for one failed keyword. `description` is the `description` of the
    subschema holding the keyword; the shared definitions in envelope.v1.json `$defs`
    and the patterns describe what a value must look like, so they say what was expected."""
    value: Any = error.instance
    shown = _show(value)
    location = error.absolute_keyword_location or ""
    shape = description if "#/$defs/" in location else None
    match error.kind:
        case Kind.Type(types=types):
            want = shape or " or ".join(_with_article(t) for t in types)
            return f"must be {want}; got {_json_kind(value)} {shown}"
        case Kind.Pattern(pattern=pattern):
            if description:
                return f"{shown} is not {description}"
            return f"{shown} does not match the pattern {pattern}"
        case Kind.Format(format="date-time"):
            return f"{shown} is not a real date and time (check the day, month and time)"
        case Kind.Format(format=fmt):
            return f"{shown} is not a valid {fmt}"
        case Kind.Enum(options=options):
            if shape:
                return f"{shown} is not {shape}"
            if len(options) <= 10:
                return f"{shown} is not one of " + ", ".join(_show(o) for o in options)
            return f"{shown} is not an allowed value"
        case Kind.Constant(expected_value=expected):
            return f"must be {_show(expected)}; got {shown}"
        case Kind.Minimum(limit=limit):
            return f"must be at least {limit}; got {shown}"
        case Kind.Maximum(limit=limit):
            return f"must be at most {limit}; got {shown}"
        case Kind.ExclusiveMinimum(limit=limit):
            return f"must be more than {limit}; got {shown}"
        case Kind.ExclusiveMaximum(limit=limit):
            return f"must be less than {limit}; got {shown}"
        case Kind.MinLength(limit=1):
            return "must not be empty"
        case Kind.MinLength(limit=limit):
            return f"must be at least {limit} characters long; got {len(value)}"
        case Kind.MaxLength(limit=limit):
            return f"must be at most {limit} characters long; got {len(value)}"
        case Kind.MinItems(limit=limit):
            return f"must have at least {limit} items; got {len(value)}"
        case Kind.MaxItems(limit=limit):
            return f"must have at most {limit} items; got {len(value)}"
        case Kind.Not() | Kind.FalseSchema():
            return description or "is not allowed here"
    return error.message


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
    return f"must be a whole number written without a decimal point; got {_show(value)}"


def _description(contract: _Contract, location: str | None) -> str | None:
    """The `description` of the subschema that holds the failing keyword (not of a whole
    schema file: those describe the event, not the field)."""
    if not location:
        return None
    cache = contract.descriptions
    if location in cache:
        return cache[location]
    node = _subschema(contract, location)
    found = node.get("description") if isinstance(node, dict) else None
    cache[location] = found
    return found


def _is_bare_constraint(contract: _Contract, location: str | None) -> bool:
    """A subschema that only adds `required` (like goodwill's points-or-amount rule)."""
    node = _subschema(contract, location) if location else None
    return isinstance(node, dict) and set(node) <= {"required", "description"}


def _subschema(contract: _Contract, location: str) -> Any:
    uri, _, pointer = location.partition("#")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    if len(tokens) < 2:  # the keyword sits at the top of a schema file
        return None
    node: Any = contract.schemas.get(uri)
    for token in tokens[:-1]:
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


_ENVELOPE_ORDER = {
    name: i
    for i, name in enumerate(
        ("type", "event_id", "customer_id", "occurred_at", "store_id", "schema_version")
    )
}


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    """Drop repeats; envelope fields first (in a fixed order), then the rest as found."""
    unique = list(dict.fromkeys(errors))
    last = len(_ENVELOPE_ORDER)
    return sorted(unique, key=lambda e: _ENVELOPE_ORDER.get(e.field.partition(".")[0], last))


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
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


def _json_kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _with_article(json_type: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(
        json_type, "null" if json_type == "null" else f"a {json_type}"
    )
