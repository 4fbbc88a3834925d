"""`loyalty audit verify`: recompute the hash chain and name the first broken position.

The stored events and the chain are walked side by side, in position order, up to the
chain's head (events after it are not chained yet; they are counted, not judged):

- an event and a link at the same position: the recomputed link must equal the stored one
  (an edited state, topic, id or version, or two rows swapped, breaks it here);
- a link without its event: the event was deleted;
- an event without a link below the head: the event was inserted afterwards.

Links are recomputed from the recomputed previous link, never from the stored one, so an
edited chain table is caught too. An `Anchor` (a head published elsewhere earlier, e.g. in
a signed report) also catches a chain rewritten from the start by someone who could write
both tables: docs/AUDIT.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import ApplicationRecorder

from services.audit.chain import GENESIS, ChainTable, Link, next_link
from services.audit.stored import StoredRow, count_after, iter_rows

ALTERED = "the stored event differs from the one chained (edited or reordered)"
DELETED = "a chained event is missing from the store (deleted)"
INSERTED = "a stored event below the chain's head was never chained (inserted afterwards)"
ANCHOR = "the chain does not reach the anchored link at this position"


@dataclass(frozen=True)
class Anchor:
    """A (position, link) pair published outside the database."""

    position: int
    link: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        position, sep, link = text.partition(":")
        if not sep or not position.isdigit() or len(link) != 64:
            raise ValueError("an anchor is POSITION:LINK (the link as 64 hex digits)")
        return cls(int(position), link.lower())


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_broken_position: int | None = None
    reason: str | None = None
    head: Link | None = None
    unchained: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken_position": self.first_broken_position,
            "reason": self.reason,
            "head": {"position": self.head.position, "link": self.head.link} if self.head else None,
            "unchained": self.unchained,
        }


def verify(
    recorder: ApplicationRecorder,
    table: ChainTable,
    *,
    anchor: Anchor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """Recompute the chain from position 0 to its head; stop at the first break."""
    head = table.head()
    upto = head.position if head else 0
    unchained = count_after(recorder, upto)
    if anchor is not None and anchor.position > upto:
        return VerifyResult(False, 0, anchor.position, ANCHOR, head, unchained)

    events = iter_rows(recorder, stop=upto)
    links = table.iter_links(upto=upto)
    event: StoredRow | None = next(events, None)
    link: Link | None = next(links, None)
    previous = GENESIS
    checked = 0
    anchor_seen = False

    def broken(position: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, position, reason, head, unchained)

    while event is not None or link is not None:
        if link is None or (event is not None and event.position < link.position):
            assert event is not None
            return broken(event.position, INSERTED)
        if event is None or link.position < event.position:
            return broken(link.position, DELETED)
        previous = next_link(previous, event)
        if previous.hex() != link.link:
            return broken(event.position, ALTERED)
        checked += 1
        if anchor is not None and event.position == anchor.position:
            if previous.hex() != anchor.link:
                return broken(event.position, ANCHOR)
            anchor_seen = True
        if on_progress is not None and checked % 10_000 == 0:
            on_progress(event.position, upto)
        event = next(events, None)
        link = next(links, None)
    if anchor is not None and not anchor_seen:
        return broken(anchor.position, ANCHOR)
    if on_progress is not None:
        on_progress(upto, upto)
    return VerifyResult(True, checked, None, None, head, unchained)
