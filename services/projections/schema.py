"""What the read side's tables are: their columns, keys and indexes (both dialects);
`tables.ProjectionTables` makes and writes them.

| key | one row per | |
|---|---|---|
| customers | account | originator id -> customer id, clock, last position |
| balance, tier, segment, trust, ltv | customer | the answers at the customer's clock |
| lots | lot | with expiry dates; `due_customers` reads it |
| holds | checkout hold | open, captured, voided or expired; `due_customers` reads the open |
| purchases | purchase | net of refunds: tier, segment and LTV are folded from them |
| campaign_credits | customer and campaign | the points it gave, a stamp card's stamps (SPEC §9) |
| timeline | account event | both timestamps, the points moved and the trust change |
| nps_responses | review | NPS over any window; `nps_totals` per (store, touchpoint) |
| liability, goodwill_months | program / month | outstanding points, goodwill per month |
| donations | charity and month | points donated (SPEC §9) |
| program | program | the rules in force (from the rule events) |
| tracking | projection | the position processed, updated with the rows |
| outbox | change | the change feed (`proj_outbox`, the relay's contract) |
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Table:
    key: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    compared: bool = True

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


TEXT, BIG, INT = "TEXT NOT NULL", "BIGINT NOT NULL", "INTEGER NOT NULL"
# Columns added to existing tables (SPEC §9 holds): `create` adds them to older tables.
LATER_COLUMNS: dict[str, tuple[str, ...]] = {
    "balance": ("held",),
    "liability": ("held",),
    "timeline": ("held",),
}
NULL_TEXT, NULL_BIG = "TEXT", "BIGINT"

TABLES: tuple[Table, ...] = (
    Table(
        "customers",
        (
            ("originator_id", TEXT),
            ("customer_id", TEXT),
            ("opened_position", BIG),
            ("last_position", BIG),
            ("clock", NULL_TEXT),
            ("rules_version", INT),
        ),
        ("originator_id",),
        ("UNIQUE (customer_id)",),
    ),
    Table(
        "balance",
        (
            ("customer_id", TEXT),
            ("available", BIG),
            ("pending", BIG),
            ("debt", BIG),
            ("outstanding", BIG),
            ("lifetime_earned", BIG),
            ("redeemed", BIG),
            ("expired", BIG),
            ("held", BIG),
        ),
        ("customer_id",),
    ),
    Table(
        "holds",
        (
            ("customer_id", TEXT),
            ("hold_id", TEXT),
            ("points", BIG),
            ("reward_id", TEXT),
            ("held_at", TEXT),
            ("expires_at", TEXT),
            ("status", TEXT),
            ("captured", BIG),
        ),
        ("customer_id", "hold_id"),
        # the sweep's candidates (`due_customers`): the open holds by expiry
        ("(expires_at) WHERE status = 'open'",),
    ),
    Table(
        "lots",
        (
            ("customer_id", TEXT),
            ("lot_id", TEXT),
            ("source", TEXT),
            ("status", TEXT),
            ("points", BIG),
            ("used", BIG),
            ("reversed", BIG),
            ("expired", BIG),
            ("remaining", BIG),
            ("earned_at", TEXT),
            ("matures_at", NULL_TEXT),
            ("expires_at", TEXT),
            ("rule_version", INT),
        ),
        ("customer_id", "lot_id"),
        # the sweep's candidates (`due_customers`): only the open lots are indexed; a
        # customer's open lots in the order the balance pages them (`lot_pages.py`),
        # compared as code points on PostgreSQL too ({C}: COLLATE "C" there)
        (
            "(matures_at) WHERE status = 'pending'",
            "(expires_at) WHERE status = 'available'",
            "(customer_id, expires_at{C}, earned_at{C}, lot_id{C}) WHERE remaining > 0",
        ),
    ),
    Table(
        "purchases",
        (
            ("customer_id", TEXT),
            ("event_id", TEXT),
            ("occurred_at", TEXT),
            ("store_id", NULL_TEXT),
            ("amount", TEXT),
            ("refunded", TEXT),
            ("net", TEXT),
        ),
        ("customer_id", "event_id"),
    ),
    Table(
        "tier",
        (
            ("customer_id", TEXT),
            ("tier", TEXT),
            ("multiplier", TEXT),
            ("rolling_spend", TEXT),
            ("next_tier", NULL_TEXT),
            ("missing_spend", NULL_TEXT),
            ("held_by_grace", INT),
            ("why", TEXT),
            ("evaluated_at", NULL_TEXT),
        ),
        ("customer_id",),
    ),
    Table(
        "segment",
        (
            ("customer_id", TEXT),
            ("segment", TEXT),
            ("why", TEXT),
            ("purchases_12m", INT),
            ("last_promoter_at", NULL_TEXT),
            ("referrals_rewarded", INT),
            ("evaluated_at", NULL_TEXT),
        ),
        ("customer_id",),
    ),
    Table(
        "trust",
        (
            ("customer_id", TEXT),
            ("deposit", BIG),
            ("status", TEXT),
            ("good_jobs", BIG),
            ("mistakes", BIG),
            ("restored", BIG),
            ("flagged", INT),
            ("goodwill_grants", TEXT),
            ("incidents", TEXT),
            ("resolving", TEXT),
            ("resolved", TEXT),
        ),
        ("customer_id",),
    ),
    Table(
        "ltv",
        (
            ("customer_id", TEXT),
            ("ltv", TEXT),
            ("realised", TEXT),
            ("m", TEXT),
            ("a", INT),
            ("t", INT),
            ("currency", TEXT),
            ("evaluated_at", NULL_TEXT),
        ),
        ("customer_id",),
    ),
    Table(
        "timeline",
        (
            ("customer_id", TEXT),
            ("position", BIG),
            ("type", TEXT),
            ("event_id", NULL_TEXT),
            ("occurred_at", NULL_TEXT),
            ("recorded_at", TEXT),
            ("available", BIG),
            ("pending", BIG),
            ("debt", BIG),
            ("trust", INT),
            ("held", BIG),
        ),
        ("customer_id", "position"),
    ),
    Table(
        "nps_responses",
        (
            ("position", BIG),
            ("customer_id", TEXT),
            ("event_id", TEXT),
            ("store_id", TEXT),
            ("touchpoint", TEXT),
            ("rating", INT),
            ("occurred_at", TEXT),
        ),
        ("position",),
        ("(occurred_at)", "(store_id, occurred_at)", "(touchpoint, occurred_at)"),
    ),
    Table(
        "nps_totals",
        (
            ("store_id", TEXT),
            ("touchpoint", TEXT),
            ("promoters", BIG),
            ("passives", BIG),
            ("detractors", BIG),
        ),
        ("store_id", "touchpoint"),
    ),
    Table(
        "liability",
        (
            ("program", TEXT),
            ("pending", BIG),
            ("available", BIG),
            ("debt", BIG),
            ("outstanding", BIG),
            ("customers", BIG),
            ("held", BIG),
        ),
        ("program",),
    ),
    Table(
        "campaign_credits",
        (("customer_id", TEXT), ("campaign_id", TEXT), ("points", BIG), ("stamps", NULL_BIG)),
        ("customer_id", "campaign_id"),
    ),
    Table("goodwill_months", (("month", TEXT), ("points", BIG), ("grants", BIG)), ("month",)),
    Table(
        "donations",
        (("charity_id", TEXT), ("month", TEXT), ("points", BIG), ("donations", BIG)),
        ("charity_id", "month"),
    ),
    Table(
        "program",
        (("program", TEXT), ("rule_version", INT), ("rules", TEXT)),
        ("program",),
    ),
    Table("tracking", (("name", TEXT), ("position", BIG)), ("name",), compared=False),
)
BY_KEY = {t.key: t for t in TABLES}
OUTBOX_COLUMNS = ("message_id", "customer_id", "kind", "payload", "position", "created_at")


_PG_TYPES = {TEXT: "text", NULL_TEXT: "text", BIG: "int8", INT: "int4"}


@cache
def copy_types(key: str) -> list[str]:
    """PostgreSQL type names of a table's columns, in order (for binary COPY)."""
    if key == "outbox":
        return ["text", "text", "text", "text", "int8", "text"]
    return [_PG_TYPES[kind] for _, kind in BY_KEY[key].columns]
