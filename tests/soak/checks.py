"""The soak's invariants, over plain data read back after the run (so a test can feed
them a fabricated history and watch them fail).

Each check returns a `Verdict`: its name, whether it held, how many items it looked at,
and the first few violations, each a line a person can act on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

SHOWN = 10


@dataclass(frozen=True)
class Produced:
    """One message the soak sent, and where the broker put it."""

    partition: int
    offset: int
    customer_id: str  # the key
    event_id: str | None
    valid: bool  # False: a poison message (not JSON, breaks the contract, a tombstone)


@dataclass(frozen=True)
class Intake:
    """One intake record in the store."""

    event_id: str
    accepted: bool
    slug: str | None = None  # a refusal's rule
    source: tuple[int, int] | None = None  # a refusal's (partition, offset)


@dataclass(frozen=True)
class Letter:
    """One dead letter on the DLQ."""

    source: tuple[int, int]  # (partition, offset) of the message it stands for
    slug: str


@dataclass(frozen=True)
class Change:
    """One change-feed message (or outbox row): its message id and customer."""

    message_id: str
    customer_id: str


@dataclass
class Verdict:
    name: str
    checked: int
    violations: list[str] = field(default_factory=list)
    total: int = 0

    @property
    def ok(self) -> bool:
        return self.total == 0

    def add(self, line: str) -> None:
        self.total += 1
        if len(self.violations) < SHOWN:
            self.violations.append(line)

    def line(self) -> str:
        state = "ok" if self.ok else f"FAILED ({self.total} violations)"
        head = f"{self.name}: {state}, {self.checked} checked"
        return "\n    ".join([head, *self.violations])


def each_event_once(
    produced: Iterable[Produced], intake: Iterable[Intake], letters: Iterable[Letter]
) -> Verdict:
    """Every produced event_id is stored once (accepted), or refused once and its first
    message dead-lettered once with the refusal's reason; every poison message is
    dead-lettered once and never stored; nothing is both; the DLQ holds nothing else."""
    produced = list(produced)
    verdict = Verdict("every event_id stored once, refused once or dead-lettered once", 0)
    records: dict[str, list[Intake]] = defaultdict(list)
    for record in intake:
        records[record.event_id].append(record)
    by_source: dict[tuple[int, int], list[Letter]] = defaultdict(list)
    for letter in letters:
        by_source[letter.source].append(letter)
    messages = {(m.partition, m.offset): m for m in produced}
    explained: set[tuple[int, int]] = set()

    for event_id, found in records.items():
        if len(found) > 1:
            kinds = Counter("accepted" if r.accepted else "refused" for r in found)
            verdict.add(f"{event_id}: {len(found)} intake records ({dict(kinds)})")
    for message in produced:
        if not message.valid:
            continue
        verdict.checked += 1
        found = records.get(message.event_id or "", [])
        if not found:
            verdict.add(f"{message.event_id} (p{message.partition}@{message.offset}): lost")
            continue
        first = found[0]
        here = by_source.get((message.partition, message.offset), [])
        if first.accepted and here:
            verdict.add(
                f"{message.event_id}: accepted and dead-lettered "
                f"({here[0].slug}, p{message.partition}@{message.offset})"
            )
        if not first.accepted and first.source == (message.partition, message.offset):
            explained.add(first.source)
            if len(here) != 1:
                verdict.add(f"{message.event_id}: refused ({first.slug}), {len(here)} dead letters")
            elif here[0].slug != first.slug:
                verdict.add(
                    f"{message.event_id}: refused as {first.slug}, dead-lettered as {here[0].slug}"
                )
    for record in (r for found in records.values() for r in found):
        if not record.accepted and record.source not in messages:
            verdict.add(f"{record.event_id}: refused for a message never produced {record.source}")
    for message in produced:
        if message.valid:
            continue
        verdict.checked += 1
        source = (message.partition, message.offset)
        explained.add(source)
        here = by_source.get(source, [])
        if len(here) != 1:
            verdict.add(f"poison p{message.partition}@{message.offset}: {len(here)} dead letters")
        if message.event_id in records:
            verdict.add(f"poison {message.event_id}: stored")
    for source, found in by_source.items():
        if source not in explained:
            verdict.add(f"dead letter for p{source[0]}@{source[1]} ({found[0].slug}): unexplained")
    return verdict


def customer_order_kept(
    produced: Iterable[Produced], intake: Iterable[Intake], accounts: dict[str, list[str]]
) -> Verdict:
    """Each customer's account holds their accepted events in the order produced (a
    customer's messages share a partition: offset order is the order sent)."""
    accepted = {r.event_id for r in intake if r.accepted}
    expected: dict[str, list[str]] = defaultdict(list)
    owner: dict[str, str] = {}
    seen: set[str] = set()
    for message in sorted(produced, key=lambda m: (m.partition, m.offset)):
        eid = message.event_id
        if message.valid and eid in accepted and eid not in seen:
            seen.add(eid)
            expected[message.customer_id].append(eid)
            owner[eid] = message.customer_id
    verdict = Verdict("per-customer order kept", len(expected))
    for customer, wanted in expected.items():
        # An account also holds events keyed by another customer (a referrer's bonus):
        # only the customer's own events have an order to keep.
        actual = [
            e for e in _first_occurrences(accounts.get(customer, [])) if owner.get(e) == customer
        ]
        present = set(actual)
        if actual != [e for e in wanted if e in present]:
            at = next(i for i, (a, b) in enumerate(zip(actual, wanted, strict=False)) if a != b)
            verdict.add(f"{customer}: stored {actual[at : at + 3]}, produced {wanted[at : at + 3]}")
    return verdict


def feed_complete_and_ordered(outbox: Iterable[Change], feed: Iterable[Change]) -> Verdict:
    """Every outbox row is on the change feed at least once, and each customer's first
    deliveries come in outbox order (repeats allowed: the relay is at least once)."""
    rows = list(outbox)
    verdict = Verdict("change feed: every outbox row, in order per customer", len(rows))
    delivered: dict[str, list[str]] = defaultdict(list)
    for change in feed:
        delivered[change.customer_id].append(change.message_id)
    expected: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        expected[row.customer_id].append(row.message_id)
    for customer, wanted in expected.items():
        got = _first_occurrences(delivered.get(customer, []))
        missing = set(wanted) - set(got)
        if missing:
            verdict.add(f"{customer}: {len(missing)} outbox rows never on the feed")
        kept = [m for m in got if m in set(wanted)]
        if kept != [m for m in wanted if m not in missing]:
            verdict.add(f"{customer}: feed order {kept[:4]}, outbox order {wanted[:4]}")
    return verdict


def _first_occurrences(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
