"""`loyalty consume` (Kafka into the ledger) and `loyalty relay` (the outbox to Kafka)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry

from services import metrics
from services.settings import ConfigurationError, Settings

log = logging.getLogger("loyalty")

_BOOTSTRAP_HELP = "host:port[,host:port] of the brokers; default LOYALTY_KAFKA_BOOTSTRAP"
_METRICS_HELP = "port of the /metrics HTTP endpoint (Prometheus); 0 = off"


def register(app: typer.Typer) -> None:
    """Add `consume` and `relay` to the `loyalty` app."""
    app.command()(consume)
    app.command()(relay)


def consume(
    bootstrap: Annotated[str | None, typer.Option(help=_BOOTSTRAP_HELP)] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="topic to consume (repeat for several); default loyalty.pos-events.v1"),
    ] = None,
    dlq_topic: Annotated[
        str, typer.Option(help="dead-letter topic", envvar="LOYALTY_KAFKA_DLQ_TOPIC")
    ] = "loyalty.pos-events.dlq",
    group_id: Annotated[
        str, typer.Option(help="consumer group", envvar="LOYALTY_KAFKA_GROUP_ID")
    ] = "loyalty-ledger",
    batch_size: Annotated[int, typer.Option(help="most events stored per transaction")] = 2000,
    max_poll_records: Annotated[int, typer.Option(help="most records per poll()")] = 2000,
    batch_wait_ms: Annotated[int, typer.Option(help="how long to keep filling a batch")] = 200,
    metrics_port: Annotated[
        int, typer.Option(help=_METRICS_HELP, envvar="LOYALTY_CONSUME_METRICS_PORT")
    ] = 9101,
    fast_rebalance: Annotated[
        bool, typer.Option(help="second-scale group timings (tests, demos, dev brokers)")
    ] = False,
    report_every: Annotated[float, typer.Option(help="seconds between progress lines")] = 10.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    """Consume POS events from Kafka into the ledger (at least once; exactly once in effect)."""
    from services.bootstrap import build_patiently
    from services.ledger.ingest.kafka_consumer import (
        POS_TOPIC,
        ConsumerOptions,
        PosEventConsumer,
        stop_on_signals,
    )

    _configure_logging(log_level)
    settings = Settings()
    options = ConsumerOptions(
        bootstrap=_bootstrap(bootstrap, settings),
        topics=tuple(topic or (POS_TOPIC,)),
        dlq_topic=dlq_topic,
        group_id=group_id,
        batch_size=batch_size,
        max_poll_records=max_poll_records,
        batch_wait_ms=batch_wait_ms,
        fast_rebalance=fast_rebalance,
    )
    _serve_metrics(metrics.registry(metrics.CONSUMER), metrics_port, settings.http_host)
    container = build_patiently(settings, with_projections=False)
    try:
        consumer = PosEventConsumer(container.ledger, options)
        stop_on_signals(consumer.stop)
        consumer.run(report_every=report_every)
    finally:
        container.close()


def relay(
    bootstrap: Annotated[str | None, typer.Option(help=_BOOTSTRAP_HELP)] = None,
    topic: Annotated[
        str, typer.Option(help="change-feed topic", envvar="LOYALTY_KAFKA_CHANGES_TOPIC")
    ] = "loyalty.projections.v1",
    batch_size: Annotated[int, typer.Option(help="most outbox rows per cycle")] = 500,
    metrics_port: Annotated[
        int, typer.Option(help=_METRICS_HELP, envvar="LOYALTY_RELAY_METRICS_PORT")
    ] = 9102,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    """Publish the projection outbox to the change feed (at least once, in order per customer)."""
    from services.infrastructure.sql import Database
    from services.infrastructure.store import StoreURL
    from services.projections.relay import OutboxRelay, relay_producer

    _configure_logging(log_level)
    settings = Settings()
    address = _bootstrap(bootstrap, settings)
    db = Database(StoreURL.parse(settings.store), pool_size=2)
    _serve_metrics(
        metrics.registry(metrics.RELAY, extra=[metrics.OutboxBacklog(db)]),
        metrics_port,
        settings.http_host,
    )
    outbox = OutboxRelay(db, relay_producer(address), topic, batch_size=batch_size)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the current cycle, then closing", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("relaying the %s store's outbox to %s on %s", db.dialect, topic, address)
    try:
        outbox.run(stop)
    finally:
        outbox.close()
        db.close()
        log.info("relay closed after publishing %d messages", outbox.published)


def _bootstrap(given: str | None, settings: Settings) -> str:
    address = given or settings.kafka_bootstrap
    if not address:
        raise ConfigurationError(
            "no Kafka brokers: pass --bootstrap host:port or set LOYALTY_KAFKA_BOOTSTRAP"
        )
    return address


def _serve_metrics(registry: CollectorRegistry, port: int, host: str) -> None:
    try:
        metrics.serve(registry, port, host)
    except OSError as error:
        raise typer.BadParameter(
            f"cannot serve /metrics on {host}:{port}: {error}", param_hint="--metrics-port"
        ) from error


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level.upper() != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)
