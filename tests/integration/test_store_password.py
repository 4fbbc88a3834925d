"""A PostgreSQL password may hold any character: `@`, `:`, `/`, a space, quotes. In the
store URL it is percent-encoded; every connection the service opens (the event store's
recorder, the read side's and the audit's pool) gets it intact."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from services.infrastructure.sql import Database
from services.infrastructure.store import StoreURL, open_recorder
from services.resources import schema_dir
from tests.integration.audit_support import make_container
from tests.support import servers

pytestmark = pytest.mark.postgres

PASSWORD = "p@ss w:rd/x 'quoted' \"twice\" \\ end"


@pytest.fixture
def role_url(postgres_server_dsn: str) -> Iterator[tuple[str, str]]:
    """A login role with PASSWORD owning a new database; its store URL and its name."""
    role = f"loyalty_pw_{os.urandom(4).hex()}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
    try:
        with servers.scratch_database(postgres_server_dsn, "password") as admin_url:
            server = conninfo_to_dict(admin_url)
            dbname = str(server["dbname"])
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(dbname), sql.Identifier(role)
                    )
                )
            host = str(server.get("host") or "127.0.0.1")
            port = server.get("port") or 5432
            url = f"postgresql://{role}:{quote(PASSWORD, safe='')}@{host}:{port}/{dbname}"
            yield url, role
    finally:
        with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_store_url_keeps_a_password_with_at_colon_slash_and_spaces(
    role_url: tuple[str, str],
) -> None:
    url, role = role_url
    store = StoreURL.parse(url)
    assert (store.user, store.password) == (role, PASSWORD)
    assert conninfo_to_dict(store.conninfo())["password"] == PASSWORD
    assert PASSWORD not in repr(store)


def test_every_connection_of_the_service_logs_in_with_that_password(
    role_url: tuple[str, str], tmp_path: Path
) -> None:
    url, role = role_url
    container = make_container(url, tmp_path / "var", with_projections=True)
    try:
        purchase = json.loads((schema_dir() / "examples" / "purchase.json").read_text())
        (outcome,) = container.ledger.record_batch([purchase])
        assert outcome.status == "accepted"
    finally:
        container.close()

    store = StoreURL.parse(url)
    db = Database(store, pool_size=1)
    try:
        with db.transaction() as cur:
            assert cur.execute("SELECT current_user").fetchone() == (role,)
    finally:
        db.close()

    recorder, factory = open_recorder(store)
    try:
        assert recorder.max_notification_id() >= 2  # the program's rules and the purchase
    finally:
        factory.close()
