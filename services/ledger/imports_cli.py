"""`loyalty import balances FILE.jsonl`: opening balances from another programme
(SPEC §9), one JSON line per customer (`application/imports.py`).

Every line is checked before anything is recorded (a bad line: one line on stderr, exit
2); then the lines are recorded 500 per transaction, with a progress bar. Lines refused
by a rule (already expired) are listed and the exit code is 1. Running the same file
again records nothing new: every line is a duplicate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.audit.cli import progress_bar, progress_step
from services.usage import UsageError

import_app = typer.Typer(help="Bring data from another programme.", no_args_is_help=True)
console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `loyalty import ...` to the `loyalty` app."""
    app.add_typer(import_app, name="import")


@import_app.command("balances")
def balances(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Opening balances: one line per customer with import_id, customer_id, points,
    earned_at and expires_at; each an available lot that keeps its dates."""
    from services.bootstrap import build
    from services.ledger.application.imports import BadLine, import_file, read_lines

    try:
        for _ in read_lines(file):  # every line checked before the store is opened
            pass
    except BadLine as error:
        raise UsageError(str(error)) from None
    container = build()
    try:
        with progress_bar("lines") as bar:
            report = import_file(container.ledger, file, on_progress=progress_step(bar, "import"))
    finally:
        container.close()
    console.print(
        f"imported {report.accepted} opening balances, {report.duplicate} already imported, "
        f"{len(report.refused)} refused"
    )
    for import_id, slug, detail in report.refused:
        console.print(f"[red]refused[/] {import_id}: {slug}: {detail}")
    if report.refused:
        raise typer.Exit(1)
