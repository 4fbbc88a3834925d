"""The POS event contract: schemas/pos/*.json and services/ledger/adapters/contract.py."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from services.ledger.adapters import contract
from services.ledger.adapters.contract import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    ContractViolation,
    FieldError,
    depth,
    minor_unit,
    parse_event,
    schema_dir,
    validate_event,
)

POS = schema_dir() / "pos"
EXAMPLES = sorted((schema_dir() / "examples").glob("*.json"))
COUNTER_EXAMPLES = sorted((schema_dir() / "counter-examples").glob("*.json"))
SCHEMA_FILES = sorted(POS.glob("*.json"))
BASE = "https://loyalty-ledger.dev/schemas/pos/"

# JSON Schema's "integer" accepts 9.0; only the validator's whole-number rule refuses these.
WHOLE_NUMBER_RULE_ONLY = {"review-rating-float.json", "redemption-float-points.json"}
# Refused by the contract's checks beyond JSON Schema (a currency's minor unit, SPEC §8).
BEYOND_THE_SCHEMA = {"purchase-amount-three-decimals-eur.json"}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def example(name: str) -> dict[str, Any]:
    return load(schema_dir() / "examples" / name)


def refusal(doc: Any, problem_type: str = "invalid-event") -> ContractViolation:
    with pytest.raises(ContractViolation) as caught:
        validate_event(doc)
    assert caught.value.problem_type == problem_type
    return caught.value


def fields(violation: ContractViolation) -> list[str]:
    return [e.field for e in violation.errors]


# --- the schema files -------------------------------------------------------------------


def test_the_schema_set_is_complete() -> None:
    names = {p.name for p in SCHEMA_FILES}
    expected = {f"{t}.v1.json" for t in EVENT_TYPES} | {"envelope.v1.json", "event.v1.json"}
    assert names == expected


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_each_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = load(path)
    Draft202012Validator.check_schema(schema)
    assert jsonschema_rs.meta.is_valid(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE + path.name
    assert schema["title"] and schema["description"]


def test_envelope_defines_the_shared_definitions() -> None:
    defs = load(POS / "envelope.v1.json")["$defs"]
    assert {"id", "money", "positiveMoney", "timestamp", "points", "currency"} <= set(defs)
    currencies = defs["currency"]["enum"]
    assert len(currencies) == len(set(currencies)) > 150
    assert {"EUR", "USD", "GBP", "JPY", "CHF", "SEK", "INR", "RUB", "XCG", "ZWG"} <= set(currencies)
    assert not {"HRK", "LVL", "DEM", "EEK"} & set(currencies)  # withdrawn


def _python_jsonschema_validator(name: str) -> Draft202012Validator:
    resources = [(load(p)["$id"], Resource.from_contents(load(p))) for p in SCHEMA_FILES]
    registry: Registry[Any] = Registry().with_resources(resources)
    return Draft202012Validator(
        load(POS / name),
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _rust_event_validator() -> jsonschema_rs.Validator:
    registry = jsonschema_rs.Registry([(load(p)["$id"], load(p)) for p in SCHEMA_FILES])
    return jsonschema_rs.Draft202012Validator(
        load(POS / "event.v1.json"), registry=registry, validate_formats=True
    )


# --- examples and counter-examples ------------------------------------------------------


def test_there_are_examples_for_every_type() -> None:
    types = [load(p)["type"] for p in EXAMPLES]
    assert set(types) == set(EVENT_TYPES)
    goodwill = [load(p) for p in EXAMPLES if load(p)["type"] == "goodwill"]
    assert any("points" in g for g in goodwill) and any("amount" in g for g in goodwill)
    purchases = [load(p) for p in EXAMPLES if load(p)["type"] == "purchase"]
    assert any("items" in p for p in purchases) and any("items" not in p for p in purchases)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(path: Path) -> None:
    doc = load(path)
    before = copy.deepcopy(doc)
    assert validate_event(doc) is doc
    assert doc == before
    assert parse_event(path.read_bytes()) == before
    # The published event.v1.json agrees, in Rust and in the reference Python validator.
    assert _rust_event_validator().is_valid(doc)
    _python_jsonschema_validator("event.v1.json").validate(doc)
    _python_jsonschema_validator(f"{doc['type']}.v1.json").validate(doc)


def test_there_are_counter_examples_for_every_type() -> None:
    assert len(COUNTER_EXAMPLES) >= 25
    types = {load(p)["event"].get("type") for p in COUNTER_EXAMPLES}
    assert set(EVENT_TYPES) <= types
    for path in COUNTER_EXAMPLES:
        body = load(path)
        assert set(body) - {"expect_type"} == {"why", "expect_field", "event"}, path.name
        assert body["why"] and isinstance(body["expect_field"], str), path.name


@pytest.mark.parametrize("path", COUNTER_EXAMPLES, ids=lambda p: p.name)
def test_every_counter_example_is_refused_on_its_field(path: Path) -> None:
    body = load(path)
    violation = refusal(body["event"], body.get("expect_type", "invalid-event"))
    assert body["expect_field"] in fields(violation), violation.errors
    assert all(e.message for e in violation.errors)
    assert violation.detail
    if path.name not in WHOLE_NUMBER_RULE_ONLY | BEYOND_THE_SCHEMA:
        assert not _rust_event_validator().is_valid(body["event"])


# --- error reporting --------------------------------------------------------------------


def test_unknown_type_names_type_and_lists_the_types() -> None:
    doc = example("purchase.json") | {"type": "gift"}
    violation = refusal(doc)
    assert violation.errors[0] == FieldError(
        "type",
        'unknown event type "gift"; expected one of purchase, refund, referral, review, '
        "goodwill, incident, redemption, redemption_cancel, enrolment, redemption_hold, "
        "redemption_capture, redemption_void, donation",
    )


def test_unknown_type_still_reports_envelope_errors() -> None:
    doc = example("purchase.json") | {"type": "gift", "event_id": "has space"}
    del doc["customer_id"]
    assert fields(refusal(doc)) == ["type", "event_id", "customer_id"]


def test_missing_required_field_is_named() -> None:
    doc = example("refund.json")
    del doc["original_event_id"]
    del doc["occurred_at"]
    violation = refusal(doc)
    assert set(fields(violation)) == {"original_event_id", "occurred_at"}
    assert "" not in fields(violation)


def test_nested_fields_are_dotted_paths() -> None:
    doc = example("purchase-with-items.json")
    doc["items"][1]["qty"] = 0
    doc["items"][0]["unit_price"]["currency"] = "XYZ"
    assert set(fields(refusal(doc))) == {"items.1.qty", "items.0.unit_price.currency"}


def test_float_money_is_explained() -> None:
    doc = example("purchase.json") | {"amount": {"value": 25.0, "currency": "EUR"}}
    (error,) = refusal(doc).errors
    assert error.field == "amount.value"
    assert "decimal string" in error.message and "got a number 25.0" in error.message


def test_whole_numbers_must_not_carry_a_decimal_point() -> None:
    for name, field_name in [("redemption.json", "points"), ("review.json", "rating")]:
        doc = example(name)
        doc[field_name] = float(doc[field_name])
        assert fields(refusal(doc)) == [field_name]
    doc = example("purchase-with-items.json")
    doc["items"][1]["qty"] = 2.0
    assert fields(refusal(doc)) == ["items.1.qty"]
    doc = example("goodwill-points.json") | {"points": True}
    assert fields(refusal(doc)) == ["points"]


def test_one_error_per_timestamp() -> None:
    doc = example("purchase.json") | {"occurred_at": "2026-03-01T10:15:00"}
    (error,) = refusal(doc).errors
    assert error.field == "occurred_at" and "UTC offset" in error.message


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-03-01T10:15:00Z",
        "2026-03-01T10:15:00+02:00",
        "2026-03-01T10:15:00.123456789-11:30",
        "2024-02-29T23:59:59+14:00",
    ],
)
def test_good_timestamps(stamp: str) -> None:
    validate_event(example("purchase.json") | {"occurred_at": stamp})


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-03-01T10:15:00",
        "2026-03-01T10:15Z",
        "2026-03-01t10:15:00z",
        "2025-02-29T10:15:00Z",
        "2026-04-31T10:15:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:15:00+24:00",
        "2026-03-01T10:15:00+0200",
        "0000-03-01T10:15:00Z",
        "1772360100",
    ],
)
def test_bad_timestamps(stamp: str) -> None:
    assert fields(refusal(example("purchase.json") | {"occurred_at": stamp})) == ["occurred_at"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0.0001", True),
        ("1", True),
        ("999999999999.9999", True),
        ("0.10", True),
        ("0", False),
        ("0.0000", False),
        ("-1.00", False),
        ("1.", False),
        (".5", False),
        ("01.00", False),
        ("1 000.00", False),
        ("NaN", False),
        ("", False),
    ],
)
def test_positive_money_values(value: str, ok: bool) -> None:
    # CLF (Chile's unidad de fomento) has four decimals: the most the schema allows.
    doc = example("purchase.json") | {"amount": {"value": value, "currency": "CLF"}}
    if ok:
        validate_event(doc)
    else:
        assert fields(refusal(doc)) == ["amount.value"]


@pytest.mark.parametrize(
    ("value", "currency", "ok"),
    [
        ("10.12", "EUR", True),
        ("10.123", "EUR", False),  # was accepted: SPEC §8
        ("10", "JPY", True),
        ("10.5", "JPY", False),
        ("10.125", "BHD", True),
        ("10.1255", "BHD", False),
    ],
)
def test_an_amount_has_at_most_its_currencys_decimals(value: str, currency: str, ok: bool) -> None:
    doc = example("purchase.json") | {"amount": {"value": value, "currency": currency}}
    if ok:
        validate_event(doc)
        return
    with pytest.raises(ContractViolation) as refused:
        validate_event(doc)
    assert refused.value.problem_type == "bad-money-precision"
    assert [e.field for e in refused.value.errors] == ["amount.value"]


def test_item_prices_are_in_the_purchases_currency() -> None:
    doc = example("purchase-with-items.json")
    doc["items"][0]["unit_price"]["currency"] = (
        "USD" if doc["amount"]["currency"] != "USD" else "EUR"
    )
    assert fields(refusal(doc)) == ["items.0.unit_price.currency"]


def test_unit_price_may_be_zero() -> None:
    doc = example("purchase-with-items.json")
    doc["items"][0]["unit_price"]["value"] = "0.00"
    validate_event(doc)


def test_validate_event_refuses_a_non_object_as_a_whole() -> None:
    for doc in ([], "purchase", 1, None):
        assert refusal(doc).errors == [
            FieldError("", "an event must be a JSON object, not " + contract.json_kind(doc))
        ]


def test_detail_summarises_the_errors() -> None:
    doc = {"type": "purchase"}
    violation = refusal(doc)
    assert violation.title == "The event does not match the POS contract"
    assert fields(violation)[:4] == ["event_id", "customer_id", "occurred_at", "schema_version"]
    assert violation.detail.startswith("event_id: event_id is required; customer_id: ")
    assert violation.detail.endswith("; and 1 more")  # 6 errors, 5 shown
    assert str(violation) == violation.detail


# --- parse_event ------------------------------------------------------------------------


def test_parse_event_refuses_more_than_64_kib() -> None:
    doc = example("incident.json")
    doc["description"] = "x"
    raw = orjson.dumps(doc)
    padded = raw[:-1] + b" " * (MAX_EVENT_BYTES - len(raw)) + b"}"
    assert len(padded) == MAX_EVENT_BYTES
    assert parse_event(padded) == doc  # exactly 64 KiB is allowed
    with pytest.raises(ContractViolation) as caught:
        parse_event(padded + b" ")
    assert caught.value.problem_type == "payload-too-large"
    assert caught.value.errors == []


def test_parse_event_refuses_what_is_not_json() -> None:
    for raw in (b"{not json", b"", b"\xff\xfe", b'{"a": NaN}'):
        with pytest.raises(ContractViolation) as caught:
            parse_event(raw)
        assert caught.value.problem_type == "malformed-json"


def test_parse_event_refuses_a_json_array_as_malformed() -> None:
    """Documented choice: the body must be one JSON object, so an array (or any other
    JSON value) is `malformed-json` (HTTP 400), not `invalid-event`."""
    for raw in (b"[]", b'[{"type": "purchase"}]', b'"purchase"', b"42", b"null"):
        with pytest.raises(ContractViolation) as caught:
            parse_event(raw)
        assert caught.value.problem_type == "malformed-json"
    with pytest.raises(ContractViolation) as caught:
        parse_event(b"[]")
    assert "events:batch" in caught.value.detail


def test_parse_event_validates() -> None:
    raw = orjson.dumps(example("redemption.json") | {"points": 0})
    with pytest.raises(ContractViolation) as caught:
        parse_event(raw)
    assert caught.value.problem_type == "invalid-event"
    assert fields(caught.value) == ["points"]
    assert parse_event(raw.decode().replace('"points":0', '"points":7'))["points"] == 7


def test_too_large_constructor_used_by_the_batch_endpoint() -> None:
    violation = ContractViolation.too_large(MAX_EVENT_BYTES)
    assert violation.problem_type == "payload-too-large"
    assert str(MAX_EVENT_BYTES) in violation.detail


def test_import_reads_no_files() -> None:
    code = (
        "import services.ledger.adapters.contract as c; "
        "assert c._contract is None; c.load_contract(); assert c._contract is not None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- property test ----------------------------------------------------------------------

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=128).filter(lambda s: s.strip("."))
CURRENCIES = ["EUR", "USD", "GBP", "JPY", "SEK", "INR", "RUB", "CHF", "BHD", "CLF"]
currencies = st.sampled_from(CURRENCIES)


@st.composite
def money_values(draw: st.DrawFn, positive: bool, most_decimals: int = 4) -> str:
    whole = draw(st.integers(min_value=0, max_value=10**12 - 1))
    decimals = draw(st.integers(min_value=0, max_value=most_decimals))
    fraction = draw(st.integers(min_value=0, max_value=10**decimals - 1)) if decimals else 0
    if positive and whole == 0 and fraction == 0:
        whole = 1
    text = str(whole)
    return f"{text}.{fraction:0{decimals}d}" if decimals else text


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(min_value=0, max_value=9))
    if digits:
        text += "." + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
        )
    minutes = draw(
        st.one_of(st.none(), st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
    )
    if minutes is None:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{rest:02d}"


def money(positive: bool, currency: str) -> st.SearchStrategy[dict[str, str]]:
    """Money with at most its currency's decimals (SPEC §8)."""
    value = money_values(positive, most_decimals=minor_unit(currency))
    return st.fixed_dictionaries({"value": value, "currency": st.just(currency)})


def items(currency: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "sku": st.text(min_size=1, max_size=64),
            "qty": st.integers(min_value=1, max_value=10**6),
            "unit_price": money(False, currency),
        },
        optional={"category": st.text(min_size=1, max_size=64)},
    )


def _purchase(currency: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": ids,
            "type": st.just("purchase"),
            "customer_id": ids,
            "occurred_at": timestamps(),
            "schema_version": st.just(1),
            "receipt_id": ids,
            "amount": money(True, currency),
        },
        optional={"store_id": ids, "items": st.lists(items(currency), max_size=5)},
    )


purchases = currencies.flatmap(_purchase)


@settings(max_examples=300, deadline=None)
@given(purchases)
def test_generated_purchases_always_validate(event: dict[str, Any]) -> None:
    assert validate_event(event) is event
    assert parse_event(orjson.dumps(event)) == event


@settings(max_examples=100, deadline=None)
@given(purchases, st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_numeric_money_is_always_refused(event: dict[str, Any], number: float) -> None:
    event["amount"]["value"] = number
    assert fields(refusal(event)) == ["amount.value"]


@pytest.mark.parametrize("nesting", [b"[" * 255 + b"]" * 255, b'{"a":' * 300 + b"1" + b"}" * 300])
def test_json_nested_past_the_validators_limit_is_an_invalid_event(nesting: bytes) -> None:
    """A 783-byte message of nested arrays made the schema validator raise ValueError:
    a poison message that stopped the Kafka intake on every start."""
    raw = b'{"event_id": "deep", "type": "purchase", "x": ' + nesting + b"}"
    with pytest.raises(ContractViolation) as refused:
        parse_event(raw)
    assert refused.value.problem_type == "invalid-event"
    assert "levels deep" in refused.value.detail


def test_depth_counts_objects_and_arrays() -> None:
    assert depth(1) == 0 and depth([]) == 1 and depth({"a": [{"b": 1}]}) == 3


def test_schema_version_one_point_zero_is_refused_whatever_the_intake() -> None:
    """`const: 1` admits 1.0: the HTTP guard refused it, the Kafka intake did not."""
    raw = orjson.dumps(example("purchase.json") | {"schema_version": 1.0})
    with pytest.raises(ContractViolation) as refused:
        parse_event(raw)
    assert [e.field for e in refused.value.errors] == ["schema_version"]
