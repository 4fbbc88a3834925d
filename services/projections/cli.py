"""The read side's command: `loyalty project`."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()


def project(
    metrics_port: Annotated[
        int,
        typer.Option(
            help="port of the /metrics HTTP endpoint (Prometheus); 0 = off",
            envvar="LOYALTY_PROJECT_METRICS_PORT",
        ),
    ] = 9103,
) -> None:
    """Run the projections (and the audit hash chain) as their own process until SIGTERM
    or SIGINT; a failing batch stops it with exit code 1."""
    from services import metrics
    from services.bootstrap import build_patiently
    from services.projections.wiring import attach

    container = build_patiently()
    try:
        metrics.serve(
            metrics.registry(metrics.PROJECTIONS), metrics_port, container.settings.http_host
        )
    except OSError as error:
        container.close()
        raise typer.BadParameter(
            f"cannot serve /metrics on {container.settings.http_host}:{metrics_port}: {error}",
            param_hint="--metrics-port",
        ) from error
    projections = attach(container)  # build() attached it: the same, typed
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        console.print(f"[yellow]{signal.Signals(signum).name}: finishing the current batch[/]")
        stop.set()
        projections.runner.wake()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if container.audit is not None:
        container.audit.start_in_process(force=True)
    console.print(
        f"projecting {container.store.kind} store into {projections.tables.prefix}* "
        f"from position {projections.runner.position()}"
    )
    from services.sweeper import Sweeper

    def swept(recorded: int | None) -> None:
        if recorded is None:
            console.print("sweep failed (retrying soon)")
        else:
            console.print(f"sweep done: {recorded} maturations and expiries recorded")

    # The sweep runs by itself (SPEC §8), here in production.
    sweeper = Sweeper(container, on_sweep=swept)
    sweeper.start()
    try:
        projections.runner.run_forever(stop)
    except Exception as error:
        console.print(f"[red]the projections stopped: {error!r}[/]")
        raise typer.Exit(1) from error
    finally:
        sweeper.stop()
        container.close()
    console.print(f"stopped at position {projections.runner.position()}")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the `loyalty` app."""
    app.command()(project)
