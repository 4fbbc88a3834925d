"""The container's parts as FastAPI dependencies: a route names what it uses in its
signature (`ledger: LedgerDep`), and the app's container is read in one place.

`create_app` keeps the container on `app.state`; everything else asks for it here. The
dependencies are async so that they run on the event loop (a sync one takes a worker
thread per request, which the writers need).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.audit.wiring import Audit
from services.audit.wiring import attach as attach_audit
from services.bootstrap import Container
from services.http.auth import ApiKeys
from services.ledger.application.ledger import Ledger
from services.projections.queries import ProjectionQueries
from services.projections.wiring import Projections


async def container(request: Request) -> Container:
    found: Container = request.app.state.container
    return found


ContainerDep = Annotated[Container, Depends(container)]


async def ledger(container: ContainerDep) -> Ledger:
    return container.ledger


async def api_keys(container: ContainerDep) -> ApiKeys:
    return container.api_keys


async def projections(container: ContainerDep) -> Projections:
    if container.projections is None:
        raise RuntimeError("the read side is not attached (services.projections.wiring)")
    return container.projections


async def queries(projections: Annotated[Projections, Depends(projections)]) -> ProjectionQueries:
    return projections.queries


async def audit(container: ContainerDep) -> Audit:
    """The audit part, attached on first use when the container was built without it."""
    return attach_audit(container)


LedgerDep = Annotated[Ledger, Depends(ledger)]
ApiKeysDep = Annotated[ApiKeys, Depends(api_keys)]
ProjectionsDep = Annotated[Projections, Depends(projections)]
QueriesDep = Annotated[ProjectionQueries, Depends(queries)]
AuditDep = Annotated[Audit, Depends(audit)]
