"""The customer account (see `aggregate.py` for the map of its parts)."""

from services.ledger.domain.account.aggregate import CustomerAccount, register_referral
from services.ledger.domain.account.events import event_fields
from services.ledger.domain.account.state import Effect
from services.ledger.domain.clock import parse_ts
from services.ledger.domain.lots import floor_points

__all__ = [
    "CustomerAccount",
    "Effect",
    "event_fields",
    "floor_points",
    "parse_ts",
    "register_referral",
]
