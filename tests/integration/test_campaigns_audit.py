"""Campaigns are stored events (SPEC §9): a replay rebuilds the projections the live
runner made from histories with campaign credits, export names them, and a restarted
ledger earns under the campaigns it stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson

from services.audit.export import export_lines
from services.audit.replay import replay
from services.audit.verify import verify
from services.audit.wiring import attach
from services.infrastructure.store import StoreURL, open_recorder
from services.ledger.domain.campaigns.campaign import Terms
from tests.integration.audit_support import START, make_container, record_history

CAMPAIGNS = [
    ("big", "amount >= 200", {"kind": "multiplier", "factor": "1.5"}, None, None),
    ("card", "amount >= 10", {"kind": "stamp", "stamps_needed": 3, "reward_points": 70}, 700, None),
    ("store2", 'store_id == "store-2"', {"kind": "bonus", "points": 25}, 400, 50),
]


def add_campaigns(container) -> None:  # type: ignore[no-untyped-def]
    for campaign_id, condition, effect, budget, cap in CAMPAIGNS:
        terms = Terms(
            campaign_id=campaign_id,
            name=campaign_id,
            condition=condition,
            effect=effect,
            starts_at=START,
            ends_at=START + timedelta(days=3650),
            budget_points=budget,
            per_customer_cap=cap,
            announced=True,
        )
        container.ledger.create_campaign(
            terms, created_by="maria", created_with_key=None, now=START - timedelta(days=2)
        )
        container.ledger.approve_campaign(
            campaign_id, approved_by="oskar", approver_key=None, now=START - timedelta(days=1)
        )


def test_a_history_with_campaigns_replays_without_differences(
    store_url: str, tmp_path: Path
) -> None:
    container = make_container(store_url, tmp_path, with_projections=True)
    try:
        add_campaigns(container)
        record_history(container, 150, expire=True)
        container.projections.runner.catch_up()
        used = {c.campaign_id: c.used for c in container.ledger.load_campaigns()}
        assert used["card"] == 700 and used["store2"] <= 400 and used["big"] > 0
        recorder, factory = open_recorder(StoreURL.parse(store_url))
        try:
            report = replay(recorder, StoreURL.parse(store_url))
            assert report.ok, report.differences[:5]
            lines = [orjson.loads(line) for line in export_lines(recorder, None)]
        finally:
            factory.close()
        kinds = {line["topic"].rsplit(".", 1)[-1] for line in lines}
        assert {"CampaignPointsGranted", "Created", "Approved", "PointsGranted"} <= kinds
        audit = attach(container)  # the hash chain covers the campaigns' events too
        audit.follower.catch_up()
        chained = verify(audit.recorder, audit.chain)
        assert chained.ok and chained.checked == container.ledger.position()

        # As of a position: the customer's campaigns folded from the store up to there.
        queries = container.projections.queries
        first = next(line for line in lines if line["topic"].endswith("CampaignPointsGranted"))
        opened = next(
            line
            for line in lines
            if line["topic"].endswith("Opened") and line["originator_id"] == first["originator_id"]
        )
        customer_id = orjson.loads(opened["state"])["customer_id"]
        then = queries.campaigns(customer_id, as_of_position=first["position"])["campaigns"]
        grants = orjson.loads(first["state"])["campaigns"]
        assert then == [
            {"campaign_id": g["campaign_id"], "points": g["points"], "stamps": g.get("stamps")}
            for g in sorted(grants, key=lambda g: g["campaign_id"])
        ]
    finally:
        container.close()

    again = make_container(store_url, tmp_path)  # a restart: the campaigns are read back
    try:
        assert [c.summary()["budget_used"] for c in again.ledger.load_campaigns()] == [
            used[c[0]] for c in CAMPAIGNS
        ]
    finally:
        again.close()
