"""`loyalty privacy ...`: what erasure left in the stored bytes (docs/PRIVACY.md)."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from services.audit.cli import _opened, progress_bar, progress_step
from services.audit.plaintext import scan

privacy_app = typer.Typer(help="Personal data: what the stored bytes still hold.")


def register(app: typer.Typer) -> None:
    """Add `loyalty privacy ...` to the `loyalty` app."""
    app.add_typer(privacy_app, name="privacy")


@privacy_app.command("report")
def report(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
) -> None:
    """Count the personal fields of the stored events by how they are stored: sealed
    (ciphertext), plain (stored before encryption) or erased; name the erased customers
    whose old events still hold plain text in their bytes. Reads only."""
    with _opened() as audit, progress_bar("events") as bar:
        step = progress_step(bar, "scan")
        found = scan(audit.recorder, audit.history.keys, on_progress=step)
    summary = found.to_dict()
    if as_json:
        typer.echo(orjson.dumps(summary).decode())
        return
    table = Table(title=f"personal fields in {summary['checked']:,} stored events")
    table.add_column("stored as")
    table.add_column("fields", justify="right")
    for shape in ("sealed", "plain", "erased"):
        table.add_row(shape, f"{summary[shape]:,}")
    out = Console()
    out.print(table)
    out.print(
        f"plain text of erased customers still in the stored bytes: "
        f"{summary['plain_of_erased_customers']:,} fields of "
        f"{len(summary['erased_customers_with_plain']):,} customers (docs/PRIVACY.md)"
    )
