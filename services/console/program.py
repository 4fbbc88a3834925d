"""The program page (SPEC §10): liability over time, points issued / redeemed / expired
per month, goodwill per month, NPS by store and by touchpoint, as charts with their tables.

NPS is a `service` read; the liability is the auditors' (SPEC §6): a service key sees the
NPS part only; auditors also see the campaigns with their budgets (read from the write
side, `Ledger.load_campaigns`). Not there yet (no stored events today): points donated.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.console import charts
from services.console.queries import nps_breakdown, points_by_month
from services.console.sessions import Session
from services.console.web import render, signed_in
from services.http.dependencies import LedgerDep, QueriesDep

router = APIRouter()
Reader = Annotated[Session, Depends(signed_in("service", "auditor"))]


@router.get("/program")
async def program(
    request: Request, session: Reader, queries: QueriesDep, ledger: LedgerDep
) -> Response:
    auditor = session.may("auditor")

    def read() -> dict[str, Any]:
        by_store, by_touchpoint = nps_breakdown(queries)
        found: dict[str, Any] = {
            "overall": queries.nps(),
            "by_store": by_store,
            "by_touchpoint": by_touchpoint,
            "nps_store_chart": charts.nps(
                [s for s, _ in by_store], [a["nps"] for _, a in by_store]
            ),
            "nps_touchpoint_chart": charts.nps(
                [t for t, _ in by_touchpoint],
                [a["nps"] for _, a in by_touchpoint],
            ),
        }
        if auditor:
            months = points_by_month(queries)
            labels = [m.month for m in months]
            liability = queries.liability()
            goodwill = liability["goodwill_points_by_month"]
            found.update(
                months=months,
                liability=liability,
                liability_chart=charts.liability(labels, [m.liability for m in months]),
                points_chart=charts.points_per_month(
                    labels,
                    [m.issued for m in months],
                    [m.redeemed for m in months],
                    [m.expired for m in months],
                    [m.donated for m in months],
                ),
                goodwill_chart=charts.goodwill(list(goodwill), list(goodwill.values())),
                campaigns=[c.summary() for c in ledger.load_campaigns()],
            )
        return found

    return render(
        request, "program.html", session, auditor=auditor, **await run_in_threadpool(read)
    )
