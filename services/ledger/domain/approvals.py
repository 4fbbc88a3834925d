"""Maker-checker: a request that waits for a second person (SPEC §3, §6).

A goodwill grant above the small-money limit (or for a trust tester) and a manual
adjustment above the approval limit wait as a `PendingApproval` until an admin approves or
rejects them. Both follow ONE second-person rule, `check_second_person`.

Who requested and with which key:
- an adjustment is requested over the admin API: `requested_by` is the name typed in the
  request, `requested_with_key` the id of the admin key that sent it (stored in
  `AdjustmentRequested`);
- a goodwill is requested by the POS event itself: `issued_by` is the name, and the key is
  the POS key (HTTP) or none at all (Kafka). The ledger does not record which POS key sent
  an event, so the key is unknown (`None`) and only the names are compared. A POS key can
  never approve anything (approvals take an admin key, and a key has one role), so a known
  POS key would always differ from the approver's key anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from services.ledger.domain import errors

Kind = Literal["goodwill", "adjustment", "rule_change", "erasure", "campaign"]


@dataclass(slots=True)
class PendingApproval:
    """A goodwill grant or manual adjustment waiting for a second person."""

    kind: Kind
    requested_by: str
    requested_with_key: str | None  # the requesting API key's id, where it is known
    points: int
    details: dict[str, Any] = field(default_factory=dict)  # the request event's fields

    def check_second_person(self, approver: str, approver_key: str | None) -> None:
        """The approver is another person: another name AND, where both keys are known,
        another key (a name is only typed; a key is authenticated)."""
        if approver == self.requested_by:
            raise errors.MakerChecker(
                f"{approver!r} requested this; a different person must approve it",
                field="approved_by",
            )
        if (
            self.requested_with_key is not None
            and approver_key is not None
            and approver_key == self.requested_with_key
        ):
            raise errors.MakerChecker(
                "this was requested with the same API key; approve it with another admin's key"
            )


def check_waiting(
    requests: dict[str, PendingApproval], request_id: str, kind: Kind
) -> PendingApproval:
    """The request of this kind waiting under `request_id`, or `NotPending`."""
    request = requests.get(request_id)
    if request is None or request.kind != kind:
        raise errors.NotPending(f"no {kind} {request_id!r} is waiting for a decision")
    return request
