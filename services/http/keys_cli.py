"""`loyalty keys`: the keys file's named API keys (services/http/auth.py).

The keys file is the one `serve` reads without `LOYALTY_API_KEYS` (`LOYALTY_API_KEYS_FILE`,
default `./var/api-keys.json`). A running server reads it again within a second of a
change. Keys given in `LOYALTY_API_KEYS` are revoked with `LOYALTY_API_KEYS_REVOKED`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.http.auth import ApiKeys, keys_file
from services.settings import Settings

keys_app = typer.Typer(help="API keys in the keys file: add, list, revoke.")
console = Console()


def register(app: typer.Typer) -> None:
    """Add `loyalty keys ...` to the `loyalty` app."""
    app.add_typer(keys_app, name="keys")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _open() -> tuple[ApiKeys, Settings]:
    settings = Settings()
    path = keys_file(settings)
    if not path.exists():
        _fail(f"no keys file at {path} (`loyalty serve` creates it; or set LOYALTY_API_KEYS_FILE)")
    return ApiKeys.read(path), settings


@keys_app.command("list")
def list_keys() -> None:
    """The keys' names, roles and revocations (never the keys)."""
    keys, _ = _open()
    table = Table()
    for column in ("name", "role", "revoked at"):
        table.add_column(column)
    for entry in keys.entries:
        table.add_row(entry.name, entry.role, entry.revoked_at or "")
    console.print(table)


@keys_app.command("add")
def add(
    role: Annotated[str, typer.Argument(help="pos, service, auditor or admin")],
    name: Annotated[str, typer.Argument(help="who holds it, e.g. alice or till-17")],
) -> None:
    """Create a key; it is printed once and stored only as its hash."""
    keys, settings = _open()
    try:
        key = keys.add(role, name)
    except ValueError as error:
        _fail(str(error))
    keys.write(keys_file(settings))
    console.print(f"{role} key {name!r}: {key}")


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Refuse the key from now on (401); the record of what it did stays."""
    keys, settings = _open()
    try:
        entry = keys.revoke(name)
    except ValueError as error:
        _fail(str(error))
    keys.write(keys_file(settings))
    console.print(f"key {name!r} ({entry.role}) revoked at {entry.revoked_at}")
