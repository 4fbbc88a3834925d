"""`loyalty audit ...`: history, hash chain, export and import, replay with a diff.

The commands open the store's recorder without the ledger application, so an audit
never writes an event (the application records the program's rules when it starts).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from services.audit.diff import ReplayReport
from services.audit.export import export_lines
from services.audit.importer import ImportRefused, import_file
from services.audit.verify import Anchor, verify
from services.audit.wiring import Audit
from services.infrastructure.store import StoreURL, open_recorder
from services.settings import Settings
from services.usage import UsageError

audit_app = typer.Typer(help="Auditors: history, hash chain, export/import, replay.")
console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `loyalty audit ...` to the `loyalty` app."""
    app.add_typer(audit_app, name="audit")


def _store() -> StoreURL:
    return StoreURL.parse(Settings().store)


@contextmanager
def _opened() -> Iterator[Audit]:
    audit = Audit.open(_store())
    try:
        yield audit
    finally:
        audit.close()


def progress_bar(unit: str) -> Progress:
    """A bar with the rate in `unit`s per second and the time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10,.0f} " + unit + "/s"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )


def progress_step(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A task on `bar`, and the `on_progress(done, total)` callback that moves it."""
    task = bar.add_task(description, total=None, rate=0.0)

    def step(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        bar.update(task, rate=_rate(bar, task))

    return step


@audit_app.command("events")
def events(
    customer_id: Annotated[str | None, typer.Option(help="one customer's history")] = None,
    from_position: Annotated[int, typer.Option(help="inclusive")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Print stored events in store order (both timestamps, rule version, hash link)."""
    with _opened() as audit:
        page = audit.history.page(customer_id=customer_id, from_position=from_position, limit=limit)
    table = Table(title=f"stored events from position {from_position}")
    for column in ("position", "type", "customer", "occurred_at", "recorded_at", "rule", "link"):
        table.add_column(column)
    for item in page.items:
        table.add_row(
            str(item["position"]),
            f"{item['aggregate']}.{item['type']}",
            item["customer_id"] or "",
            item["occurred_at"] or "",
            item["recorded_at"] or "",
            "" if item["rule_version"] is None else str(item["rule_version"]),
            (item["link"] or "")[:12],
        )
    Console().print(table)
    if page.next is not None:
        console.print(f"next page: --from-position {page.next}")


@audit_app.command("chain")
def chain(
    follow: Annotated[bool, typer.Option(help="keep chaining new events until Ctrl-C")] = False,
) -> None:
    """Chain the stored events not chained yet (the follower, once or for good)."""
    with _opened() as audit:
        if follow:
            stop = threading.Event()
            try:
                audit.run_forever(stop)
            except KeyboardInterrupt:
                stop.set()
            return
        chained = audit.follower.catch_up()
        console.print(f"chained {chained} events; head at {audit.follower.position()}")


@audit_app.command("verify")
def verify_command(
    anchor: Annotated[
        str | None, typer.Option(help="POSITION:LINK of a head published earlier")
    ] = None,
) -> None:
    """Recompute the hash chain; name the first broken position (exit 1 if broken)."""
    try:
        expected = Anchor.parse(anchor) if anchor else None
    except ValueError as error:
        raise UsageError(f"--anchor {anchor!r}: {error}") from None
    with _opened() as audit, progress_bar("events") as bar:
        step = progress_step(bar, "verify")
        result = verify(audit.recorder, audit.chain, anchor=expected, on_progress=step)
    verdict = Console()  # the verdict is the command's output: stdout (progress: stderr)
    if result.ok:
        verdict.print(f"[green]ok[/]: {result.checked} events verified")
    else:
        verdict.print(
            f"[red]broken[/] at position {result.first_broken_position}: {result.reason} "
            f"({result.checked} events verified before it)"
        )
    if result.head is not None:
        verdict.print(f"head: {result.head.position}:{result.head.link}")
    if result.unchained:
        verdict.print(f"{result.unchained} newer events not chained yet")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("export")
def export(
    from_position: Annotated[int, typer.Option(help="inclusive")] = 0,
    to_position: Annotated[int | None, typer.Option(help="inclusive; default the end")] = None,
    output: Annotated[Path | None, typer.Option(help="default stdout")] = None,
) -> None:
    """Write stored events as JSON Lines, byte-exact (for `loyalty audit import`)."""
    if to_position is not None and from_position > to_position:
        raise UsageError(
            f"--from-position {from_position} is after --to-position {to_position}: "
            "nothing to export"
        )
    with _opened() as audit:
        lines = export_lines(
            audit.recorder, audit.chain, from_position=from_position, to_position=to_position
        )
        count = 0
        if output is None:
            for line in lines:
                sys.stdout.buffer.write(line)
                count += 1
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as handle:
                for line in lines:
                    handle.write(line)
                    count += 1
    console.print(f"exported {count} events")


@audit_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Load an export into an EMPTY ledger, at the original positions; then chain it."""
    recorder, factory = open_recorder(_store())
    try:
        with progress_bar("events") as bar:
            step = progress_step(bar, "import")
            result = import_file(recorder, file, on_progress=step)
    except ImportRefused as refusal:
        console.print(f"[red]refused[/]: {refusal}")
        raise typer.Exit(1) from None
    finally:
        factory.close()
    console.print(f"imported {result.events} events, up to position {result.last_position}")
    with _opened() as audit:
        audit.follower.catch_up()
        if result.last_link is not None:
            position, link = result.last_link
            same = audit.chain.links_between(position, position).get(position) == link
            console.print(
                f"hash chain rebuilt; at {position} it "
                + ("[green]matches[/] the file" if same else "[red]differs from[/] the file")
            )


@audit_app.command("replay")
def replay_command(
    prefix: Annotated[str, typer.Option(help="the fresh tables' prefix")] = "replay_",
    keep: Annotated[bool, typer.Option(help="keep the replayed tables afterwards")] = False,
    show: Annotated[int, typer.Option(min=1, help="differences listed at most")] = 50,
) -> None:
    """Rebuild every projection from position 0 into fresh tables and diff them with the
    live ones at one position (exit 1 on any difference)."""
    from services.audit.replay import replay  # the read side, loaded only when replaying

    store = _store()
    recorder, factory = open_recorder(store)
    try:
        with progress_bar("events") as bar:
            step = progress_step(bar, "replay")
            report = replay(recorder, store, prefix=prefix, keep=keep, shown=show, on_progress=step)
    finally:
        factory.close()
    print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def print_report(report: ReplayReport) -> None:
    console.print(
        f"replayed {report.events:,} events ({report.folded:,} folded) up to position "
        f"{report.position} in {report.seconds:.1f} s: {report.events_per_second:,.0f} events/s"
    )
    if report.ok:
        console.print("[green]no differences[/]: the live projections are what the events say")
        return
    table = Table(title=f"{report.total_differences} differences at position {report.position}")
    for column in ("table", "key", "column", "live", "replayed"):
        table.add_column(column, overflow="fold")  # a key is read whole, never cut short
    for d in report.differences:
        key = ", ".join(f"{k}={v}" for k, v in d.key.items())
        table.add_row(d.table, key, d.column, repr(d.live), repr(d.replayed))
    Console().print(table)
    if report.total_differences > len(report.differences):
        console.print(f"... and {report.total_differences - len(report.differences)} more")


def _rate(bar: Progress, task_id: int) -> float:
    """Positions per second since the start (every position is one stored event)."""
    task = bar.tasks[task_id]
    return float(task.completed / task.elapsed) if task.elapsed else 0.0
