"""The read side's HTTP routes (SPEC §6): customers' projections and program-wide views.

Every answer carries `position`. `min_position` asks for read-your-writes (503 with
`Retry-After` when the projection does not get there within the bounded wait);
`as_of` (RFC 3339, by occurred_at) and `as_of_position` answer from the events, folded
again up to that point. A customer the ledger never saw is a 404 problem.

A read-your-writes wait runs on the event loop (`ReadWaits`), not on a worker thread: the
writers need those threads, and 80 waiting reads used to hold them all. At most
`LOYALTY_READ_MAX_WAITERS` reads wait at once; past that a read is 503 at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.http.auth import AuditorKey, ServiceKey
from services.http.dependencies import QueriesDep
from services.http.guard import GuardedRoute
from services.http.params import ID_MAX_LENGTH, ID_PATTERN, MAX_POSITION, LedgerTime
from services.http.problems import RETRY_AFTER_SECONDS, problem
from services.projections.lot_pages import DEFAULT_LOTS, MAX_LOTS, LotPage, UnknownLot
from services.projections.queries import ProjectionBehind, ProjectionQueries
from services.projections.read_models import (
    BalanceOut,
    LiabilityOut,
    LtvOut,
    NpsOut,
    SegmentOut,
    TierOut,
    TimelineOut,
    TrustOut,
)
from services.projections.runner import ProjectionRunner

POLL_SECONDS = 0.02  # how often the waiting reads (all of them, together) read the position


Queries = QueriesDep
CustomerId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="the POS customer_id")
]
AsOf = Annotated[
    LedgerTime | None,
    Query(description="RFC 3339 time with offset: the state from events that occurred by then"),
]
AsOfPosition = Annotated[
    int | None,
    Query(ge=0, le=MAX_POSITION, description="the state from the events up to this position"),
]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0, le=MAX_POSITION, description="read-your-writes: wait until the projection reached it"
    ),
]


# ---- helpers -------------------------------------------------------------------------------------
def _behind(error: ProjectionBehind) -> Response:
    return problem(
        503,
        "projection-behind",
        "The projection has not reached that position yet",
        error.detail,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        position=error.position,
        min_position=error.wanted,
    )


def _both_given() -> Response:
    message = "give as_of or as_of_position, not both"
    return problem(
        422,
        "invalid-request",
        "The request's parameters are not valid",
        message,
        errors=[{"field": "as_of_position", "message": message}],
    )


class ReadWaits:
    """Read-your-writes waits on the event loop, bounded in number. The waiting reads share
    one poll of the projections' position (one worker thread for a moment, however many
    wait) and wake the projector as they poll."""

    def __init__(self, queries: ProjectionQueries, limit: int) -> None:
        self.queries = queries
        self.limit = limit
        self.waiting = 0
        self._position = -1
        self._polled_at = float("-inf")
        self._polling = False

    @property
    def runner(self) -> ProjectionRunner:
        return self.queries.runner

    async def position(self) -> int:
        loop = asyncio.get_running_loop()
        if not self._polling and loop.time() - self._polled_at >= POLL_SECONDS:
            self._polling = True
            try:
                self._position = await run_in_threadpool(self.runner.position)
            finally:
                self._polled_at = loop.time()
                self._polling = False
        return self._position

    async def wait(self, min_position: int | None) -> Response | None:
        """None once the projections reflect `min_position`; else the 503 to answer."""
        if min_position is None or min_position <= 0:
            return None
        if self.waiting >= self.limit:
            return _behind(
                ProjectionBehind(
                    self._position,
                    min_position,
                    f"{self.waiting} reads are waiting for the projections already "
                    f"(the limit); retry in {RETRY_AFTER_SECONDS} s",
                )
            )
        timeout = self.queries.read_wait_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting += 1
        try:
            before: int | None = None
            while True:
                position = await self.position()
                if position >= min_position:
                    return None
                before = position if before is None else before
                left = deadline - loop.time()
                if left <= 0:
                    hint = "retry shortly"
                    if position == before:  # nothing moved them while we waited
                        hint = (
                            "the projections are not running: start them with `loyalty "
                            "project` (or run them inside serve with "
                            "LOYALTY_PROJECTIONS_IN_PROCESS=true)"
                        )
                    return _behind(
                        ProjectionBehind(
                            position,
                            min_position,
                            f"the projections are at position {position}, not yet "
                            f"{min_position} (waited {timeout:g} s); {hint}",
                        )
                    )
                self.runner.wake()
                await asyncio.sleep(min(POLL_SECONDS, left))
        finally:
            self.waiting -= 1


def read_waits(app: FastAPI) -> ReadWaits:
    """The app's `ReadWaits` (made on first use, on the event loop)."""
    waits: ReadWaits | None = getattr(app.state, "read_waits", None)
    if waits is None:
        container = app.state.container
        waits = ReadWaits(container.projections.queries, container.settings.read_max_waiters)
        app.state.read_waits = waits
    return waits


async def _answer(
    request: Request, call: Callable[[int | None], dict[str, Any]], min_position: int | None
) -> Any:
    """Wait (on the loop) for `min_position`, then answer on a worker thread."""
    refused = await read_waits(request.app).wait(min_position)
    if refused is not None:
        return refused
    try:
        return await run_in_threadpool(call, None)
    except ProjectionBehind as error:
        return _behind(error)
    except UnknownLot as error:
        return problem(
            422,
            "invalid-request",
            "The request's parameters are not valid",
            str(error),
            errors=[{"field": "lots_after", "message": str(error)}],
        )


async def _customer_read(
    request: Request,
    method: Callable[..., dict[str, Any]],
    customer_id: str,
    as_of: datetime | None,
    as_of_position: int | None,
    min_position: int | None,
) -> Any:
    if as_of is not None and as_of_position is not None:
        return _both_given()
    if as_of is not None or as_of_position is not None:
        min_position = None  # an as-of answer is folded from the store, not the tables
    return await _answer(
        request,
        lambda wanted: method(
            customer_id, as_of=as_of, as_of_position=as_of_position, min_position=wanted
        ),
        min_position,
    )


# ---- customers --------------------------------------------------------------------------------
customers = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=GuardedRoute)
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The ledger never saw this customer"},
    503: {"description": "The projection has not reached min_position (see Retry-After)"},
}


@customers.get("/{customer_id}/balance", response_model=BalanceOut, responses=_PROBLEMS)
async def balance(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    lots_limit: Annotated[
        int, Query(ge=0, le=MAX_LOTS, description="lots per page (0: the totals only)")
    ] = DEFAULT_LOTS,
    lots_after: Annotated[
        str | None, Query(max_length=300, description="the previous page's `next_lots`")
    ] = None,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """Points available, pending and owed, with the lots (a page at a time) and their
    expiry dates."""
    page = LotPage(lots_limit, lots_after)
    return await _customer_read(
        request,
        lambda cid, **read: queries.balance(cid, lots=page, **read),
        customer_id,
        as_of,
        as_of_position,
        min_position,
    )


@customers.get("/{customer_id}/tier", response_model=TierOut, responses=_PROBLEMS)
async def tier(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """The tier on rolling spend, why, and the spend missing for the next one."""
    return await _customer_read(
        request, queries.tier, customer_id, as_of, as_of_position, min_position
    )


@customers.get("/{customer_id}/segment", response_model=SegmentOut, responses=_PROBLEMS)
async def segment(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """The customer's rung on the ladder visitor, buyer, client, advocate, and why."""
    return await _customer_read(
        request, queries.segment, customer_id, as_of, as_of_position, min_position
    )


@customers.get("/{customer_id}/trust", response_model=TrustOut, responses=_PROBLEMS)
async def trust(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """Sewell's trust deposit: good jobs, mistakes, status and the trust-tester flag."""
    return await _customer_read(
        request, queries.trust, customer_id, as_of, as_of_position, min_position
    )


@customers.get("/{customer_id}/ltv", response_model=LtvOut, responses=_PROBLEMS)
async def ltv(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    as_of: AsOf = None,
    as_of_position: AsOfPosition = None,
    min_position: MinPosition = None,
) -> Any:
    """Lifetime value m x a x t and the value realised so far."""
    return await _customer_read(
        request, queries.ltv, customer_id, as_of, as_of_position, min_position
    )


@customers.get("/{customer_id}/timeline", response_model=TimelineOut, responses=_PROBLEMS)
async def timeline(
    customer_id: CustomerId,
    request: Request,
    queries: Queries,
    _: ServiceKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after_position: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="the previous page's `next`")
    ] = 0,
    min_position: MinPosition = None,
) -> Any:
    """The customer's events in order, both timestamps, with the effect of each."""
    return await _answer(
        request,
        lambda wanted: queries.timeline(
            customer_id, limit=limit, after_position=after_position, min_position=wanted
        ),
        min_position,
    )


# ---- programs ---------------------------------------------------------------------------------
# One program per deployment (SPEC §3): its name is `default`; any other is a 404.
programs = APIRouter(prefix="/v1/programs/default", tags=["programs"], route_class=GuardedRoute)


@programs.get("/nps", response_model=NpsOut, responses=_PROBLEMS)
async def nps(
    request: Request,
    queries: Queries,
    _: ServiceKey,
    store_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH)] = None,
    touchpoint: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = None,
    from_: Annotated[
        LedgerTime | None, Query(alias="from", description="inclusive, by occurred_at")
    ] = None,
    to: Annotated[LedgerTime | None, Query(description="exclusive, by occurred_at")] = None,
    min_position: MinPosition = None,
) -> Any:
    """Net Promoter Score overall, per store, per touchpoint, over a time window."""
    if from_ is not None and to is not None and from_ >= to:
        message = "`from` must be before `to`"
        return problem(
            422,
            "invalid-request",
            "The request's parameters are not valid",
            message,
            errors=[{"field": "to", "message": message}],
        )
    return await _answer(
        request,
        lambda wanted: queries.nps(
            store_id=store_id, touchpoint=touchpoint, from_=from_, to=to, min_position=wanted
        ),
        min_position,
    )


@programs.get("/liability", response_model=LiabilityOut, responses=_PROBLEMS)
async def liability(
    request: Request,
    queries: Queries,
    _: AuditorKey,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> Any:
    """Outstanding points over all customers and goodwill points granted per month."""
    return await _answer(
        request,
        lambda wanted: queries.liability(as_of=as_of, min_position=wanted),
        None if as_of is not None else min_position,
    )


ROUTERS: list[APIRouter] = [customers, programs]
