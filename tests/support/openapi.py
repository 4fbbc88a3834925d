"""The service's OpenAPI document with the JSON Schemas it `$ref`s bundled in, for tools
that resolve nothing remote (schemathesis here): every `/schemas/pos/<file>` reference, and
the references between those files, become `#/components/schemas/pos.<file>` pointers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from services.ledger.adapters.contract import schema_dir

SERVED = "/schemas/pos/"


def _component(name: str) -> str:
    return "pos." + name.removesuffix(".json")


def _rewrite(node: Any, here: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref" and isinstance(value, str):
                out[key] = _pointer(value, here)
            else:
                out[key] = _rewrite(value, here)
        return out
    if isinstance(node, list):
        return [_rewrite(item, here) for item in node]
    return node


def _pointer(ref: str, here: str) -> str:
    if ref.startswith("#/components/"):
        return ref
    target, _, fragment = ref.partition("#")
    target = target.removeprefix(SERVED)
    name = target or here
    return f"#/components/schemas/{_component(name)}" + fragment


def bundled(document: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    for path in sorted((schema_dir() / "pos").glob("*.json")):
        schemas[_component(path.name)] = _rewrite(json.loads(path.read_text()), path.name)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(SERVED):
                return {**node, "$ref": _pointer(ref, "")}
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    out["paths"] = walk(out["paths"])
    return out


def schema_file(name: str) -> Path:
    return schema_dir() / "pos" / name
