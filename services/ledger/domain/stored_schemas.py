"""The stored event shapes, documented from the classes: `schemas/stored/`.

One JSON Schema per stored event type: its topic (`x-topic`), its `x-class-version` and
the fields of its stored state (the JSON in the `state` column, as the transcoder writes
it; `originator_id` and `originator_version` are columns of their own). The files are
generated, never edited:

    python -m services.ledger.domain.stored_schemas           # (re)write schemas/stored/
    python -m services.ledger.domain.stored_schemas --check   # exit 1 if they differ

`tests/unit/test_stored_contract.py` fails when the committed files differ from what the
classes generate, and checks that the golden store's events match their schemas.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from services.ledger.domain import topics
from services.ledger.domain.account import CustomerAccount
from services.ledger.domain.campaigns.campaign import Campaign, CampaignCatalogue
from services.ledger.domain.intake import IntakeRecord
from services.ledger.domain.program import Program
from services.ledger.domain.receipts import ReceiptRecord

DEFAULT_DIR = Path("schemas") / "stored"
SCHEMA_BASE = "https://loyalty-ledger.dev/schemas/stored/"
COLUMNS = ("originator_id", "originator_version")  # stored beside the state, not in it
_AGGREGATES: dict[str, type] = {
    "account": CustomerAccount,
    "program": Program,
    "intake": IntakeRecord,
    "campaign": Campaign,
    "campaign_catalogue": CampaignCatalogue,
    "receipt": ReceiptRecord,
}
_AGGREGATE_TOPICS = {
    "account": topics.ACCOUNT,
    "program": topics.PROGRAM,
    "intake": topics.INTAKE,
    "campaign": topics.CAMPAIGN,
    "campaign_catalogue": topics.CAMPAIGN_CATALOGUE,
    "receipt": topics.RECEIPT,
}
_DATETIME = {
    "type": "object",
    "description": "the library's transcoding of a datetime (the ledger clock, UTC)",
    "properties": {
        "_type_": {"const": "datetime_iso"},
        "_data_": {"type": "string", "format": "date-time"},
    },
    "required": ["_type_", "_data_"],
    "additionalProperties": False,
}


def stored_classes() -> list[tuple[str, str, type]]:
    """(aggregate, topic, class) of every stored event type, in contract order."""
    return [
        (aggregate, topic, getattr(_AGGREGATES[aggregate], name))
        for aggregate, events in topics.AGGREGATE_EVENTS.items()
        for name, topic in events.items()
    ]


def _json_type(hint: Any) -> dict[str, Any]:
    if hint is Any:
        return {}
    if hint is datetime:
        return dict(_DATETIME)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_json_type(arg) for arg in args]
        simple = [o.get("type") for o in options]
        if all(isinstance(t, str) and len(o) == 1 for t, o in zip(simple, options, strict=True)):
            return {"type": simple}
        return {"anyOf": options}
    if origin is list:
        return {"type": "array", "items": _json_type(args[0]) if args else {}}
    if origin is dict or hint is dict:
        return {"type": "object"}
    simple_types = {str: "string", bool: "boolean", int: "integer", type(None): "null"}
    if hint in simple_types:
        return {"type": simple_types[hint]}
    raise TypeError(f"no JSON Schema type for {hint!r}")


def schema_of(aggregate: str, topic: str, cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    optional: set[str] = set()  # added later with a default: older events lack them
    for item in dataclasses.fields(cls):
        if item.name in COLUMNS:
            continue
        properties[item.name] = _json_type(hints[item.name])
        if item.default is not dataclasses.MISSING:
            optional.add(item.name)
    if "originator_topic" in properties:  # a first event names its aggregate's topic
        properties["originator_topic"] = {"const": _AGGREGATE_TOPICS[aggregate]}
    class_version = getattr(cls, "class_version", 1)
    if class_version > 1:  # the library stores it in the state from version 2 on
        properties["class_version"] = {"const": class_version}
    doc = (cls.__doc__ or "").strip()
    # The store keeps every version it was given: the fields a later version added (its
    # upcaster fills them in on reading) are only required of the states that name that
    # version (`ADDED_IN_VERSION` on the class: field -> the version that added it).
    added: dict[str, int] = getattr(cls, "ADDED_IN_VERSION", {})
    versions: dict[str, Any] = {}
    if added:
        versions = {
            "anyOf": [
                {"required": ["class_version"]},
                {"properties": {n: False for n in sorted(added)}},
            ]
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{file_name(aggregate, cls)}",
        "title": f"{aggregate}.{cls.__name__}",
        **({"description": doc} if doc and not doc.startswith(cls.__name__ + "(") else {}),
        "x-topic": topic,
        "x-class-version": class_version,
        **({"x-added-in-version": added} if added else {}),
        "type": "object",
        "properties": properties,
        # Rows stored before version 2 carry no `class_version` (the upcasters read them); a
        # field with a default, or one a later version added, may be missing from older rows.
        "required": sorted(set(properties) - optional - set(added) - {"class_version"}),
        **versions,
        **({"dependentRequired": {"class_version": sorted(added)}} if added else {}),
        "additionalProperties": False,
    }


def file_name(aggregate: str, cls: type) -> str:
    return f"{aggregate}.{cls.__name__}.json"


def generate() -> dict[str, bytes]:
    """File name -> content of every schema, as committed."""
    return {
        file_name(aggregate, cls): orjson.dumps(
            schema_of(aggregate, topic, cls), option=orjson.OPT_INDENT_2
        )
        + b"\n"
        for aggregate, topic, cls in stored_classes()
    }


def differences(directory: Path) -> list[str]:
    """What differs between `directory` and the generated schemas (empty: none)."""
    wanted = generate()
    found = {p.name: p.read_bytes() for p in directory.glob("*.json")} if directory.is_dir() else {}
    return [
        *(f"{name}: missing" for name in sorted(wanted.keys() - found.keys())),
        *(f"{name}: not a stored event type" for name in sorted(found.keys() - wanted.keys())),
        *(
            f"{name}: differs"
            for name in sorted(wanted)
            if name in found and found[name] != wanted[name]
        ),
    ]


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = generate()
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, content in wanted.items():
        (directory / name).write_bytes(content)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("-")]
    directory = Path(paths[0]) if paths else DEFAULT_DIR
    if check:
        found = differences(directory)
        for line in found:
            print(f"{directory}/{line}", file=sys.stderr)
        if found:
            print("run: python -m services.ledger.domain.stored_schemas", file=sys.stderr)
        return 1 if found else 0
    write(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
