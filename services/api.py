"""The HTTP entrypoint: one FastAPI app with the write side's and read side's routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from starlette.concurrency import run_in_threadpool

from services import metrics
from services.bootstrap import Container
from services.http import problems
from services.http.responses import OrjsonResponse
from services.ledger.api import (
    admin,
    approvals,
    campaigns,
    erasure,
    events,
    imports,
    parked,
    refusals,
)

DESCRIPTION = """An event-sourced loyalty ledger. POS systems post events; every event is
counted exactly once; projections answer balances, tiers, segments, trust and value;
auditors replay the history. Errors are RFC 9457 problem documents.
Send `Authorization: Bearer <key>`; roles: pos, service, auditor, admin."""


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # In the embedded default the projections and the hash-chain follower run here;
        # each part decides (its `in_process` setting) and does nothing otherwise.
        parts = [p for p in (container.projections, container.audit) if p is not None]
        for part in parts:
            part.start_in_process()
        yield
        for part in reversed(parts):
            part.stop_in_process()

    app = FastAPI(
        title="loyalty-ledger",
        version="1.0.0",
        description=DESCRIPTION,
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
        docs_url=None,  # served below from a package's files: no CDN
        redoc_url=None,
    )
    app.state.container = container
    problems.install(app)
    refusals.install(app)
    # The bearer security scheme (Swagger UI's Authorize button) is declared by the
    # OpenAPI document itself (publish_contract); `require()` in auth.py decides 401/403.
    app.include_router(events.router)
    app.include_router(admin.router)
    app.include_router(campaigns.router)
    app.include_router(approvals.router)
    app.include_router(erasure.router)
    app.include_router(imports.router)
    app.include_router(parked.router)
    for router in read_side_routers():
        app.include_router(router)
    publish_contract(app)
    offline_docs(app)

    from services.console import mount as mount_console

    mount_console(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> Response:
        """The store answers; reports the store's position."""
        try:
            position = await run_in_threadpool(container.ledger.position)
        except Exception as error:  # the store is down: not ready, say why
            return problems.problem(503, "not-ready", "The event store does not answer", str(error))
        return OrjsonResponse({"status": "ready", "position": position})

    app.state.metrics = instrument(app, container)
    return app


def publish_contract(app: FastAPI) -> None:
    """The OpenAPI document as the service behaves (services/ledger/api/openapi.py) and
    the JSON Schemas it `$ref`s, served at the paths their `$id`s name."""
    from services.ledger.api import openapi, schemas

    app.include_router(schemas.router)
    openapi.install(app)


def instrument(app: FastAPI, container: Container) -> CollectorRegistry:
    """The process's metrics registry, with HTTP requests counted and timed by route
    template, method and exact status (prometheus-fastapi-instrumentator). It is served
    on the metrics port (`loyalty serve --metrics-port`), not on the API's: SPEC §6 keeps
    the API's unauthenticated paths to four (docs/ARCHITECTURE.md, "Metrics")."""
    parts = [metrics.API]
    if container.settings.read_side_in_process:
        parts.append(metrics.PROJECTIONS)
    registry = metrics.registry(*parts, extra=[metrics.StorePosition(container.ledger.position)])
    instrumentator = Instrumentator(should_group_status_codes=False, registry=registry)
    instrumentator.add(http_metrics.requests(should_include_status=True, registry=registry))
    instrumentator.add(http_metrics.latency(should_include_status=True, registry=registry))
    instrumentator.instrument(app)
    return registry


def read_side_routers() -> list:  # type: ignore[type-arg]
    from services.audit import routes as audit_routes
    from services.projections import campaign_routes
    from services.projections import routes as projection_routes

    return [*projection_routes.ROUTERS, campaign_routes.router, *audit_routes.ROUTERS]


# The documentation pages may load only what this service serves: ReDoc's bundle links a
# logo on a CDN (its "API docs by Redocly" credit), which the browser must not fetch.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts and styles from the fastapi-offline
    package's files (docs/ARCHITECTURE.md), served by this app: they work without internet,
    and a Content-Security-Policy keeps them from reaching anything else."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = "/docs-static"
    directory = str(files("fastapi_offline") / "static")
    app.mount(static, StaticFiles(directory=directory), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{static}/swagger-ui-bundle.js",
                swagger_css_url=f"{static}/swagger-ui.css",
                swagger_favicon_url=f"{static}/favicon.png",
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{static}/redoc.standalone.js",
                redoc_favicon_url=f"{static}/favicon.png",
                with_google_fonts=False,
            )
        )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page
