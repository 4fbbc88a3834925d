"""The JSON Schema validator's errors, worded for the person who sent the event.

Computed only when an event fails (a valid one costs one `is_valid` call, `contract.py`):
each failed keyword becomes a `FieldError` in plain English, with the `description` of
the subschema that holds it where that says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from jsonschema_rs import ValidationErrorKind as Kind

from services.ledger.adapters.contract_violation import FieldError, json_kind, show


@dataclass
class Compiled:
    """The POS schemas, compiled once (`contract._load`): a validator per event type."""

    schemas: dict[str, dict[str, Any]]  # by $id
    envelope: jsonschema_rs.Validator
    by_type: dict[str, jsonschema_rs.Validator]
    descriptions: dict[str, str | None] = field(default_factory=dict)  # keyword location cache


def unknown_type(
    contract: Compiled, doc: dict[str, Any], event_type: Any, event_types: tuple[str, ...]
) -> list[FieldError]:
    expected = ", ".join(event_types)
    if "type" not in doc:
        first = FieldError("type", f"type is required; expected one of {expected}")
    elif not isinstance(event_type, str):
        first = FieldError(
            "type", f"must be a string, one of {expected}; got {json_kind(event_type)}"
        )
    else:
        first = FieldError(
            "type", f"unknown event type {show(event_type)}; expected one of {expected}"
        )
    # Still report what is wrong with the envelope, so one round trip shows everything.
    rest = [e for e in field_errors(contract, contract.envelope, doc) if e.field != "type"]
    return dedupe([first, *rest])


def field_errors(
    contract: Compiled, validator: jsonschema_rs.Validator, doc: Any
) -> list[FieldError]:
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
                where = f"in {path}" if path else f"in a {show(doc.get('type'))} event"
                errors += [
                    FieldError(_join(path, name), f"unknown field {show(name)} {where}")
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
    shown = show(value)
    location = error.absolute_keyword_location or ""
    shape = description if "#/$defs/" in location else None
    match error.kind:
        case Kind.Type(types=types):
            want = shape or " or ".join(_with_article(t) for t in types)
            return f"must be {want}; got {json_kind(value)} {shown}"
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
                return f"{shown} is not one of " + ", ".join(show(o) for o in options)
            return f"{shown} is not an allowed value"
        case Kind.Constant(expected_value=expected):
            return f"must be {show(expected)}; got {shown}"
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


def _description(contract: Compiled, location: str | None) -> str | None:
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


def _is_bare_constraint(contract: Compiled, location: str | None) -> bool:
    """A subschema that only adds `required` (like goodwill's points-or-amount rule)."""
    node = _subschema(contract, location) if location else None
    return isinstance(node, dict) and set(node) <= {"required", "description"}


def _subschema(contract: Compiled, location: str) -> Any:
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


def dedupe(errors: list[FieldError]) -> list[FieldError]:
    """Drop repeats; envelope fields first (in a fixed order), then the rest as found."""
    unique = list(dict.fromkeys(errors))
    last = len(_ENVELOPE_ORDER)
    return sorted(unique, key=lambda e: _ENVELOPE_ORDER.get(e.field.partition(".")[0], last))


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _with_article(json_type: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(
        json_type, "null" if json_type == "null" else f"a {json_type}"
    )
