"""A campaign's condition: an expression over the purchase and the customer (SPEC §9).

The language is `rule-engine`'s (docs/ARCHITECTURE.md says why): a grammar of its own,
parsed into a tree and evaluated by the library, never by `eval`. Every name a condition
may use is declared below with its type, so a condition that names an unknown field or
compares a number with a string is refused when the campaign is created, with the
position in the expression (`InvalidCondition`), not when a purchase arrives.

Deterministic on replay: the library's `$now`, `$today` and `$random` builtins (the wall
clock, randomness) are refused, and so is every other `$` builtin; the only time a
condition sees is the purchase's `occurred_at` (`weekday`, `hour`, `birthday_today`, in
the offset the till wrote it with). Numbers are `Decimal` (the library's FLOAT is a
Decimal), so money compares exactly.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import rule_engine
from rule_engine import DataType

from services.ledger.domain import errors

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """A receipt line as a condition sees it (`items`)."""

    sku: str
    category: str | None  # null when the till sent none
    qty: Decimal
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """The customer as a condition sees them (`customer`)."""

    tier: str
    segment: str
    purchases: Decimal


ITEM = DataType.OBJECT.from_dataclass("Item", ItemFacts)
CUSTOMER = DataType.OBJECT.from_dataclass("Customer", CustomerFacts)
# Every name a condition may use, and its type (the facts `facts()` gives).
FIELDS: dict[str, Any] = {
    "amount": DataType.FLOAT,
    "net_amount": DataType.FLOAT,
    "store_id": DataType.STRING,
    "items": DataType.ARRAY(ITEM),
    "weekday": DataType.STRING,
    "hour": DataType.FLOAT,
    "customer": CUSTOMER,
    "birthday_today": DataType.BOOLEAN,
}
_CONTEXT = rule_engine.Context(
    type_resolver=rule_engine.type_resolver_from_dict(FIELDS),
    default_timezone="UTC",
    # One decimal context for every evaluation, whatever the thread's: the same answer
    # on every replay and every process.
    decimal_context=decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN),
    mapping_attribute_lookup=False,
    resolver=lambda thing, name: thing.get(name),  # `Facts`, computed when asked
)
MAX_LENGTH = 2000


class InvalidCondition(errors.LedgerError):
    slug = "invalid-condition"
    title = "The campaign's condition is not a valid expression"

    def __init__(self, detail: str, *, position: int) -> None:
        super().__init__(f"at position {position}: {detail}", field="condition")
        self.position = position


@functools.cache
def _lexer() -> Any:
    # Building the library's parser builds its tables (half a second): once a process.
    return rule_engine.parser.Parser()._lexer


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(type, value, position) of each token, by the library's own lexer."""
    lexer = _lexer().clone()
    lexer.input(text)
    return [(token.type, str(token.value), token.lexpos) for token in lexer]


def _symbol_position(tokens: list[tuple[str, str, int]], name: str) -> int:
    for kind, value, position in tokens:
        if kind == "SYMBOL" and value == name:
            return position
    return 0


def _type_error_position(text: str, tokens: list[tuple[str, str, int]]) -> int:
    """Where a type error is: the start of the last token of the shortest prefix of the
    expression that parses and already fails its types (the library does not say)."""
    for n in range(1, len(tokens) + 1):
        end = tokens[n][2] if n < len(tokens) else len(text)
        try:
            rule_engine.Rule(text[:end], context=_CONTEXT)
        except rule_engine.errors.RuleSyntaxError:
            continue
        except rule_engine.errors.EngineError:
            return tokens[n - 1][2]
    return 0


def _check_no_nested_comprehension(tokens: list[tuple[str, str, int]]) -> None:
    """A comprehension inside a comprehension costs lines x lines a purchase (500 x 500
    on the largest receipt), on every purchase the intake decides: refused."""
    open_brackets: list[bool] = []  # per open "[": whether it holds a comprehension's for
    for kind, _, position in tokens:
        if kind == "LBRACKET":
            open_brackets.append(False)
        elif kind == "RBRACKET" and open_brackets:
            open_brackets.pop()
        elif kind == "FOR":
            if any(open_brackets[:-1]):
                raise InvalidCondition(
                    "a comprehension inside another is not allowed (its cost grows with "
                    "the square of the receipt's lines)",
                    position=position,
                )
            if open_brackets:
                open_brackets[-1] = True


@dataclass(frozen=True)
class Condition:
    """A checked condition, ready to match purchases' facts."""

    text: str
    rule: Any

    def matches(self, facts: Facts) -> bool:
        """Whether the purchase meets the condition. One the library cannot evaluate for
        this purchase (`items[2]` of a receipt with one line, a division by zero) does not
        meet it: the same facts give the same answer on every replay, and a purchase is
        never refused, nor a batch stopped, by a campaign."""
        try:
            return bool(self.rule.matches(facts))
        except (rule_engine.errors.EngineError, ArithmeticError):
            return False


def compile_condition(text: str) -> Condition:
    """The condition, checked: its syntax, every name, every type. `InvalidCondition`
    names the position (0-based, in characters) of what is wrong."""
    if len(text) > MAX_LENGTH:
        raise InvalidCondition(f"longer than {MAX_LENGTH} characters", position=MAX_LENGTH)
    try:
        tokens = _tokens(text)
    except rule_engine.errors.EngineError as error:
        raise InvalidCondition(str(error), position=0) from None
    _check_no_nested_comprehension(tokens)
    for kind, value, position in tokens:
        if kind == "SYMBOL" and value.startswith("$"):
            raise InvalidCondition(
                f"{value!r}: builtins are not allowed (a condition sees only the purchase "
                "and the customer; its time is the purchase's occurred_at)",
                position=position,
            )
    try:
        rule = rule_engine.Rule(text, context=_CONTEXT)
    except rule_engine.errors.RuleSyntaxError as error:
        token = error.token
        position = token.lexpos if token is not None else len(text)
        raise InvalidCondition(f"syntax error: {error.message}", position=position) from None
    except rule_engine.errors.SymbolResolutionError as error:
        known = ", ".join(FIELDS)
        raise InvalidCondition(
            f"unknown field {error.symbol_name!r} (known: {known})",
            position=_symbol_position(tokens, error.symbol_name),
        ) from None
    except rule_engine.errors.AttributeResolutionError as error:
        name = str(error.attribute_name)
        raise InvalidCondition(
            f"unknown field {name!r}", position=_symbol_position(tokens, name)
        ) from None
    except rule_engine.errors.EngineError as error:
        raise InvalidCondition(
            f"type error: {error.message}", position=_type_error_position(text, tokens)
        ) from None
    return Condition(text, rule)


@dataclass(frozen=True)
class Standing:
    """The customer as the write side knows them at the purchase (docs/ARCHITECTURE.md
    "Campaigns": what `customer.segment` means on the write side)."""

    tier: str
    segment: str
    purchases: int
    birthday: str | None = None  # "--MM-DD", when the customer gave one


class Facts:
    """What a condition sees of a purchase document (SPEC §2) and its customer, each
    field computed when a condition first asks for it: a condition on the weekday never
    counts the customer's purchases (`standing` is called at most once)."""

    __slots__ = ("_doc", "_find", "_found", "_local", "_values")

    def __init__(self, doc: Mapping[str, Any], standing: Standing | Callable[[], Standing]) -> None:
        self._doc = doc
        self._found = standing if isinstance(standing, Standing) else None
        self._find = standing
        self._values: dict[str, Any] = {}
        self._local: datetime | None = None

    def _standing(self) -> Standing:
        if self._found is None:
            find: Any = self._find
            self._found = find()
        return self._found

    def get(self, name: str) -> Any:
        values = self._values
        if name not in values:
            values[name] = getattr(self, "_" + name)()
        return values[name]

    def as_dict(self) -> dict[str, Any]:
        return {name: self.get(name) for name in FIELDS}

    def _local_time(self) -> datetime:
        if self._local is None:
            self._local = _local_time(self._doc["occurred_at"])
        return self._local

    def _amount(self) -> Decimal:
        return Decimal(self._doc["amount"]["value"])

    def _net_amount(self) -> Decimal:
        tender = self._doc.get("points_tender")  # SPEC §9: paid with points earns nothing
        amount: Decimal = self.get("amount")
        return amount - Decimal(tender["value"]) if tender else amount

    def _store_id(self) -> str | None:
        return self._doc.get("store_id")

    def _items(self) -> list[ItemFacts]:
        return [
            ItemFacts(
                sku=item["sku"],
                category=item.get("category"),
                qty=Decimal(item["qty"]),
                unit_price=Decimal(item["unit_price"]["value"]),
            )
            for item in self._doc.get("items") or ()
        ]

    def _weekday(self) -> str:
        return WEEKDAYS[self._local_time().weekday()]

    def _hour(self) -> Decimal:
        return Decimal(self._local_time().hour)

    def _customer(self) -> CustomerFacts:
        standing = self._standing()
        return CustomerFacts(
            tier=standing.tier, segment=standing.segment, purchases=Decimal(standing.purchases)
        )

    def _birthday_today(self) -> bool:
        birthday = self._standing().birthday
        return birthday is not None and birthday == self._local_time().strftime("--%m-%d")


def facts(doc: Mapping[str, Any], standing: Standing | Callable[[], Standing]) -> Facts:
    """The facts of `doc`; `standing` is the customer, or how to find them when asked."""
    return Facts(doc, standing)


def _local_time(value: str) -> datetime:
    """The purchase's time in the offset the till wrote (a happy hour is the shop's)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
