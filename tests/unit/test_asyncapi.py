"""schemas/asyncapi.yaml: valid AsyncAPI 3.0.0 by the AsyncAPI project's own JSON Schema
(npm @asyncapi/specs, installed by the test), every $ref resolving to a file of this
repository, and the topics, headers and partitioner it names the ones the code uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import jsonschema
import pytest
import yaml
from jsonschema.validators import Draft7Validator, Draft202012Validator
from kafka.partitioner.default import DefaultPartitioner, murmur2
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from services.ledger.ingest import dead_letters
from services.ledger.ingest.kafka_consumer import DLQ_TOPIC, POS_TOPIC
from services.projections import relay
from services.projections.messages import KINDS
from tests.support import npm
from tests.unit.test_compose import SPEC_TOPICS

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
DOCUMENT = SCHEMAS / "asyncapi.yaml"
ASYNCAPI_SPECS = ("@asyncapi/specs", "6.11.1")
ASYNCAPI_PARSER = ("@asyncapi/parser", "3.6.3")
# Spectral's severities, as the parser reports them: 0 error, 1 warning, 2 info, 3 hint.
PARSE = """
const { Parser, fromFile } = require('@asyncapi/parser');
(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[1]).parse();
  console.log(JSON.stringify({
    parsed: Boolean(document),
    diagnostics: diagnostics.map(d => ({severity: d.severity, code: d.code, message: d.message,
                                        path: d.path.join('/')})),
  }));
})();
"""
DOC_URI = "urn:loyalty-ledger:asyncapi"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


def refs(node: Any, path: str = "#") -> Iterator[tuple[str, str]]:
    """(where, $ref value) for every $ref in a YAML/JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            else:
                yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from refs(value, f"{path}/{index}")


def pointer(doc: Any, fragment: str) -> Any:
    """The node a JSON pointer fragment (`/a/b~1c`, or empty for the root) names."""
    node = doc
    for part in [p for p in fragment.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_the_document_is_valid_asyncapi_3_by_the_published_json_schema(
    document: dict[str, Any],
) -> None:
    assert document["asyncapi"] == "3.0.0"
    schema = npm.json_file(*ASYNCAPI_SPECS, "schemas/3.0.0.json")
    errors = sorted(Draft7Validator(schema).iter_errors(document), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors)


def test_the_asyncapi_parser_reads_the_document_with_no_error_or_warning() -> None:
    """The AsyncAPI project's own parser (the one its CLI, Studio and generator use) reads
    the document and resolves the payload files; only information-level notes remain."""
    modules = npm.package(*ASYNCAPI_PARSER).parents[1]
    node = shutil.which("node")
    assert node, "node is needed to run @asyncapi/parser (Debian: apt-get install nodejs)"
    result = subprocess.run(
        [node, "-e", PARSE, str(DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    serious = [d for d in answer["diagnostics"] if d["severity"] <= 1]
    assert answer["parsed"] and not serious, json.dumps(answer["diagnostics"], indent=1)


def test_the_published_schema_refuses_a_broken_document(document: dict[str, Any]) -> None:
    """The check above can fail: a channel without its address object is refused."""
    schema = npm.json_file(*ASYNCAPI_SPECS, "schemas/3.0.0.json")
    broken = json.loads(json.dumps(document))
    broken["operations"]["receivePosEvents"]["action"] = "consume"  # 3.0: send | receive
    assert list(Draft7Validator(schema).iter_errors(broken))


def test_every_ref_resolves_to_a_file_of_the_repository_and_a_node_in_it(
    document: dict[str, Any],
) -> None:
    """Local refs name a node of the document; file refs a file under schemas/ (and the
    node their fragment names); the JSON Schemas those files reference resolve too."""
    checked: set[Path] = set()
    pending: list[tuple[Path, Any]] = [(DOCUMENT, document)]
    while pending:
        base, tree = pending.pop()
        for where, ref in refs(tree):
            target, fragment = urldefrag(ref)
            if not target:
                assert pointer(tree, fragment) is not None, f"{base.name} {where}: {ref}"
                continue
            assert "://" not in target, f"{base.name} {where}: {ref} is not a file here"
            path = (base.parent / target).resolve()
            assert path.is_file(), f"{base.name} {where}: {ref} -> {path} does not exist"
            assert path.is_relative_to(ROOT), f"{base.name} {where}: {ref} leaves the repo"
            loaded = json.loads(path.read_text(encoding="utf-8"))
            assert pointer(loaded, fragment) is not None, f"{base.name} {where}: {ref}"
            if path not in checked:
                checked.add(path)
                pending.append((path, loaded))
    assert {p.relative_to(SCHEMAS).as_posix() for p in checked} >= {
        "pos/event.v1.json",
        "pos/envelope.v1.json",
        *(f"projections/{kind}.v1.json" for kind in KINDS),
    }


def test_the_examples_are_valid_by_the_message_schemas(document: dict[str, Any]) -> None:
    """Every example's payload passes the $ref'd JSON Schema (2020-12, as the service
    validates), and its headers the message's headers schema."""
    registry: Registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    contracts = [*SCHEMAS.glob("pos/*.json"), *SCHEMAS.glob("projections/*.json")]
    for path in contracts:
        contents = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(contents["$id"], DRAFT202012.create_resource(contents))
        Draft202012Validator.check_schema(contents)
    by_file = {
        p.relative_to(SCHEMAS).as_posix(): json.loads(p.read_text())["$id"] for p in contracts
    }
    checked = 0
    for name, message in document["components"]["messages"].items():
        for example in message.get("examples", []):
            if "payload" in example:
                ref = message["payload"]["schema"]["$ref"]
                schema = {"$ref": by_file[ref.removeprefix("./")]}
                Draft202012Validator(schema, registry=registry).validate(example["payload"])
                checked += 1
            if "headers" in example:
                schema = {"$ref": f"{DOC_URI}#/components/messages/{name}/headers"}
                validator = Draft202012Validator(
                    schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
                )
                validator.validate(example["headers"])
                checked += 1
    assert checked >= 4


def test_a_payload_against_the_contract_fails_its_example_check(
    document: dict[str, Any],
) -> None:
    contents = json.loads((SCHEMAS / "pos/event.v1.json").read_text())
    registry = Registry().with_resources(
        (c["$id"], DRAFT202012.create_resource(c))
        for c in (json.loads(p.read_text()) for p in SCHEMAS.glob("pos/*.json"))
    )
    example = document["components"]["messages"]["PosEvent"]["examples"][0]["payload"]
    bad = {**example, "amount": {"value": 125.4, "currency": "EUR"}}  # money as a number
    with pytest.raises(jsonschema.ValidationError):
        Draft202012Validator(contents, registry=registry).validate(bad)


def test_topics_headers_and_kinds_are_the_ones_the_code_uses(document: dict[str, Any]) -> None:
    channels = document["channels"]
    assert channels["posEvents"]["address"] == POS_TOPIC
    assert channels["deadLetters"]["address"] == DLQ_TOPIC
    assert channels["projectionChanges"]["address"] == relay.CHANGES_TOPIC
    for channel in channels.values():
        partitions = SPEC_TOPICS[channel["address"]]
        if partitions is not None:  # docker-compose.yml's kafka-init creates them so
            assert channel["bindings"]["kafka"]["partitions"] == partitions

    messages = document["components"]["messages"]
    ours = [
        dead_letters.PROBLEM,
        dead_letters.PROBLEM_TYPE,
        dead_letters.SOURCE_TOPIC,
        dead_letters.SOURCE_PARTITION,
        dead_letters.SOURCE_OFFSET,
        dead_letters.SOURCE_TIMESTAMP,
        dead_letters.CONSUMER_GROUP,
        dead_letters.DEAD_LETTERED_AT,
    ]
    assert messages["DeadLetter"]["headers"]["required"] == ours
    change_headers = document["components"]["schemas"]["ChangeHeaders"]
    assert change_headers["required"] == [relay.MESSAGE_ID, relay.KIND, relay.POSITION]
    assert change_headers["properties"]["kind"]["enum"] == list(KINDS)
    feed = channels["projectionChanges"]["messages"]
    assert sorted(m["$ref"].rsplit("/", 1)[1] for m in feed.values()) == sorted(KINDS)


def test_the_partitioner_named_is_the_ledgers_own_and_javas(document: dict[str, Any]) -> None:
    """kafka-python's default partitioner (the ledger's producers use it) is the Java
    client's murmur2: the same hashes as Kafka's own UtilsTest. librdkafka's default
    (CRC32) puts most keys elsewhere: the warning in the document is not idle."""
    partitioner = document["channels"]["posEvents"]["x-partitioner"]
    assert partitioner["algorithm"] == "murmur2"
    assert "partitioner=murmur2_random" in partitioner["clients"]["librdkafka"]
    java = {  # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, expected in java.items():
        assert murmur2(key) == expected & 0xFFFFFFFF, key
    assert isinstance(relay.KafkaProducer.DEFAULT_CONFIG["partitioner"], DefaultPartitioner)

    keys = [f"cust-{n}".encode() for n in range(100)]
    murmur = [(murmur2(k) & 0x7FFFFFFF) % 6 for k in keys]
    crc = [zlib.crc32(k) % 6 for k in keys]
    assert sum(m != c for m, c in zip(murmur, crc, strict=True)) > 50
