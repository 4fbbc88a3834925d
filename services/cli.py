"""The `loyalty` command line (SPEC §6 "CLI")."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from services.bootstrap import StoreUnavailable, build, build_patiently
from services.ledger.domain.clock import in_ledger_range, not_ahead_of, utcnow
from services.runtime import tune_gc
from services.settings import ConfigurationError, Settings, describe
from services.usage import UsageError


class _Commands(TyperGroup):
    """Every `loyalty` command, its subcommands included: a configuration that cannot work
    is one line on stderr and exit code 2 (the usage-error code), not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context (its own click since 0.2x)
        try:
            return super().invoke(ctx)
        except ConfigurationError as error:
            _configuration_error(str(error))
        except UsageError as error:
            typer.echo(f"loyalty: {' '.join(str(error).split())}", err=True)
            raise typer.Exit(2) from None
        except ValidationError as error:
            if error.title != Settings.__name__:
                raise
            _configuration_error(describe(error))
        except StoreUnavailable as error:  # not a usage error: exit 1, one line, no traceback
            typer.echo(f"loyalty: {error}", err=True)
            raise typer.Exit(1) from None


def _configuration_error(message: str) -> NoReturn:
    typer.echo(f"loyalty: configuration error: {' '.join(message.split())}", err=True)
    raise typer.Exit(2)


app = typer.Typer(
    cls=_Commands, help="loyalty-ledger: an event-sourced loyalty ledger", no_args_is_help=True
)
console = Console()


@app.callback()
def _process() -> None:
    """loyalty-ledger: an event-sourced loyalty ledger"""
    tune_gc()  # every command is a process that runs for a while (services/runtime.py)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default LOYALTY_HTTP_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default LOYALTY_HTTP_PORT")] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            help="port of the /metrics HTTP endpoint (Prometheus); 0 = off",
            envvar="LOYALTY_SERVE_METRICS_PORT",
        ),
    ] = 9104,
) -> None:
    """Serve the HTTP API (with the embedded store, the projections run in-process too)."""
    import uvicorn

    from services.api import create_app

    settings = Settings()
    if port is not None and not 1 <= port <= 65535:
        raise ConfigurationError(f"--port {port}: a TCP port is 1 to 65535")
    container = build_patiently(settings)
    if container.created_keys:
        table = Table(title="API keys created (stored hashed in var/api-keys.json; shown once)")
        table.add_column("role")
        table.add_column("key")
        for role, key in container.created_keys.items():
            table.add_row(role, key)
        console.print(table)
    console.print(
        f"store: [bold]{container.store.kind}[/]  "
        f"API: http://{host or settings.http_host}:{port or settings.http_port}  "
        "docs: /docs" + (f"  metrics: :{metrics_port}/metrics" if metrics_port > 0 else "")
    )
    sweeper = None
    if container.projections is not None and container.projections.in_process:
        # The embedded store: this process also runs the sweep (services/sweeper.py);
        # with PostgreSQL, `loyalty project` does.
        from services.sweeper import Sweeper

        sweeper = Sweeper(container)
    try:
        api = create_app(container)
        serve_metrics(api.state.metrics, metrics_port, host or settings.http_host)
        if sweeper is not None:
            sweeper.start()
        uvicorn.run(
            api,
            host=host or settings.http_host,
            port=port or settings.http_port,
            log_level="info",
        )
    finally:
        if sweeper is not None:
            sweeper.stop()
        container.close()


@app.command()
def tick(
    now: Annotated[
        str | None,
        typer.Option(help="the sweep's time, ISO 8601 with an offset (2026-03-01T00:00:00Z)"),
    ] = None,
) -> None:
    """Record the maturations and expiries that are due (idempotent)."""
    clock = utcnow()
    moment = _aware_time(now, "--now") if now else clock
    why = not_ahead_of(moment, clock)
    if why is not None:
        raise typer.BadParameter(why, param_hint="--now")
    container = build()
    try:
        result = container.tick(moment)
        console.print(f"tick at {result.now}: {len(result.recorded)} recorded")
        if not result.recorded:
            return
        table = Table()
        for column in ("customer", "action", "lot", "points"):
            table.add_column(column)
        for item in result.recorded:
            table.add_row(
                item["customer_id"],
                item["action"],
                str(item.get("lot_id") or item.get("hold_id")),
                str(item.get("points")),
            )
        console.print(table)
    finally:
        container.close()


store_app = typer.Typer(help="the event store itself", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("migrate")
def store_migrate() -> None:
    """Give an embedded store made before 0.2 positions that VACUUM and .dump keep: the
    events table is copied once, each row at its position, in one transaction."""
    from services.infrastructure.store import StoreURL
    from services.ledger.adapters.eventstore.sqlite import migrate_positions

    store = StoreURL.parse(Settings().store)
    if store.kind != "sqlite":
        console.print("PostgreSQL keeps positions in a column of their own: nothing to do")
        return
    copied = migrate_positions(store.path)
    console.print(
        f"{copied} events now keep their positions" if copied else "nothing to do: migrated"
    )


def serve_metrics(registry: CollectorRegistry, port: int, host: str) -> None:
    """Serve the process's metrics on host:port (0: off); a port that cannot be bound is
    a usage error (exit 2), not a process without metrics."""
    from services import metrics

    try:
        metrics.serve(registry, port, host)
    except OSError as error:
        raise typer.BadParameter(
            f"cannot serve /metrics on {host}:{port}: {error}", param_hint="--metrics-port"
        ) from error


def _aware_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with its offset; a time without one is refused, not guessed."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} has no offset; write it as {text}Z or {text}+02:00", param_hint=option
        )
    try:
        return in_ledger_range(moment)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} {error}", param_hint=option) from None


# The other parts add their own commands: project (read side), simulate (tools), consume
# and relay (Kafka), audit (history, replay, verify, export), privacy (what erasure left),
# keys (the keys file), import (opening balances).
for _part in (
    "services.projections.cli",
    "services.tools.cli",
    "services.ledger.ingest.cli",
    "services.audit.cli",
    "services.audit.privacy_cli",
    "services.http.keys_cli",
    "services.ledger.imports_cli",
):
    importlib.import_module(_part).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
