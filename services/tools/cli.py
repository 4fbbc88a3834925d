"""`loyalty simulate`: realistic POS traffic posted to a running service, with the
projections' lag followed as it goes (the generator is `simulation.py`)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()

# The default first event's time: fixed, so the same seed gives the same traffic on every
# run (a start that moved with the clock made a second run's events conflict with the
# first's: same event ids, other times). 10,000 events span about 100 days.
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


def simulate(
    url: Annotated[
        str | None,
        typer.Option(help="the running service (default: LOYALTY_HTTP_HOST and _PORT)"),
    ] = None,
    api_key: Annotated[str, typer.Option(help="a pos key", envvar="LOYALTY_POS_KEY")] = "",
    customers: Annotated[int, typer.Option(min=2)] = 1000,
    events: Annotated[int, typer.Option(min=1)] = 10_000,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 500,
    seed: Annotated[int, typer.Option(help="same seed, same traffic")] = 1,
    start: Annotated[
        datetime | None,
        typer.Option(help="first event's time, UTC (default 2025-01-01, the same every run)"),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(help="an admin key: also run the sweep (tick) as simulated days pass"),
    ] = None,
    read_key: Annotated[
        str | None,
        typer.Option(
            help="an auditor or admin key: also follow the projections and report their lag "
            "(default: --admin-key)"
        ),
    ] = None,
) -> None:
    """Post realistic POS traffic to a running service through /v1/events:batch."""
    import httpx

    from services.settings import Settings
    from services.usage import UsageError

    if not api_key:
        raise UsageError("--api-key (a pos key) is required")
    if url is None:
        settings = Settings()
        url = f"http://{settings.http_host}:{settings.http_port}"
    first = start or DEFAULT_START
    if first.tzinfo is None:  # typer parses a naive time: it is taken as UTC
        first = first.replace(tzinfo=UTC)
    try:
        _simulate(url, api_key, customers, events, batch_size, seed, first, admin_key, read_key)
    except httpx.HTTPStatusError as error:
        answer = error.response
        raise UsageError(
            f"{answer.request.method} {answer.request.url.path} answered {answer.status_code}"
            + (": check --api-key and --admin-key" if answer.status_code in (401, 403) else "")
            + f" ({answer.text[:200]})"
        ) from None
    except httpx.TransportError as error:
        raise UsageError(f"cannot reach {url}: {error} (is `loyalty serve` running?)") from None


def _simulate(
    url: str,
    api_key: str,
    customers: int,
    events: int,
    batch_size: int,
    seed: int,
    first: datetime,
    admin_key: str | None,
    read_key: str | None,
) -> None:
    import httpx

    from services.tools.simulation import generate_events

    statuses: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    last_position = 0
    last_tick: str | None = None
    lag = LagWatch(read_key or admin_key)
    started = time.perf_counter()
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        Progress(
            TextColumn("[bold]simulate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("events", total=events, rate="")
        batch: list[dict[str, Any]] = []

        def send() -> None:
            nonlocal last_position, last_tick
            if admin_key and (last_tick is None or batch[0]["occurred_at"][:10] > last_tick):
                last_tick = batch[0]["occurred_at"][:10]
                tick = client.post(
                    "/v1/admin/tick",
                    json={"now": batch[0]["occurred_at"]},
                    headers={"Authorization": f"Bearer {admin_key}"},
                )
                tick.raise_for_status()
            answer = client.post(
                "/v1/events:batch",
                json={"events": batch},
                headers={"Authorization": f"Bearer {api_key}"},
            )
            answer.raise_for_status()
            for result in answer.json()["results"]:
                statuses[result["status"]] += 1
                if result["status"] == "rejected":
                    rejected[result["problem"]["type"].rsplit("/", 1)[-1]] += 1
                elif result.get("position"):
                    last_position = max(last_position, result["position"])
            lag.sample(client, last_position)
            done = sum(statuses.values())
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} events/s")
            batch.clear()

        for doc in generate_events(seed, customers, events, first):
            batch.append(doc)
            if len(batch) >= batch_size:
                send()
        if batch:
            send()
        seconds = time.perf_counter() - started
        lag.catch_up(client, last_position)
    table = Table(title=f"{sum(statuses.values()):,} events in {seconds:.1f} s")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for status in ("accepted", "duplicate", "rejected"):
        table.add_row(status, f"{statuses[status]:,}")
    for slug, count in rejected.most_common():
        table.add_row(f"  rejected: {slug}", f"{count:,}")
    console.print(table)
    console.print(f"last position: {last_position}  (read with ?min_position={last_position})")
    if lag.report():
        console.print(lag.report())


class LagWatch:
    """How far the projections run behind the store while `simulate` posts: after each
    batch, the store position it answered against the position the read side answers
    (`GET /v1/programs/default/liability`, which needs an auditor or admin key); at the end, how
    long the projections take to reach the last position."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None
        self.lags: list[int] = []
        self.end_lag: int | None = None
        self.caught_up_after: float | None = None

    def projected(self, client: Any) -> int | None:
        answer = client.get(
            "/v1/programs/default/liability", headers={"Authorization": f"Bearer {self.key}"}
        )
        if answer.status_code != 200:
            console.print(f"[yellow]cannot follow the projections: {answer.text[:200]}[/]")
            self.key = None
            return None
        position: int = answer.json()["position"]
        now = time.perf_counter()
        self.first = self.first or (now, position)
        self.last = (now, position)
        return position

    def sample(self, client: Any, store_position: int) -> None:
        if self.key:
            position = self.projected(client)
            if position is not None:
                self.lags.append(max(store_position - position, 0))

    def catch_up(self, client: Any, store_position: int, timeout: float = 300) -> None:
        if not self.key:
            return
        started = time.perf_counter()
        position = self.projected(client)
        self.end_lag = None if position is None else max(store_position - position, 0)
        while position is not None and position < store_position:
            if time.perf_counter() - started > timeout:
                return
            time.sleep(0.05)
            position = self.projected(client)
        self.caught_up_after = time.perf_counter() - started

    def report(self) -> str:
        if not (self.first and self.last and self.lags):
            return ""
        (t0, p0), (t1, p1) = self.first, self.last
        rate = (p1 - p0) / max(t1 - t0, 1e-9)
        caught = (
            f"caught up {self.caught_up_after:.2f} s after the last batch"
            if self.caught_up_after is not None
            else "had not caught up after 300 s"
        )
        return (
            f"projections: {rate:,.0f} positions/s; lag behind the store after each batch: "
            f"median {sorted(self.lags)[len(self.lags) // 2]:,}, max {max(self.lags):,}; "
            f"at the end {self.end_lag:,} positions, {caught}"
        )


def register(app: typer.Typer) -> None:
    """Add this part's commands to the `loyalty` app."""
    app.command()(simulate)
