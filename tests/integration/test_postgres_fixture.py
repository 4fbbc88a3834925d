"""The store fixtures: `postgres_url` is an empty, writable database for each test, and
`store_url` runs a test once per store."""

from __future__ import annotations

import psycopg
import pytest

from services.infrastructure.store import StoreURL

TABLES_IN_PUBLIC = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"


@pytest.mark.postgres
@pytest.mark.parametrize("run", ["first", "second"])
def test_postgres_url_is_empty_and_writable_for_every_test(postgres_url: str, run: str) -> None:
    # Run twice: the table the first run leaves behind must be gone for the second.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute(TABLES_IN_PUBLIC).fetchone() == (0,)
        conn.execute("CREATE TABLE scratch (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO scratch VALUES (1, %s)", (run,))
        assert conn.execute("SELECT note FROM scratch").fetchall() == [(run,)]
        database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    assert database[0].startswith("loyalty_test_")
    assert StoreURL.parse(postgres_url).dbname == database[0]


def test_store_url_yields_each_kind_of_store(
    store_url: str, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["store_url"]
    store = StoreURL.parse(store_url)
    assert store.kind == kind
    if kind == "sqlite":
        assert store_url.startswith("sqlite:///") and store.path.endswith("/loyalty.db")
    else:
        assert request.node.get_closest_marker("postgres") is not None
        with psycopg.connect(store_url, autocommit=True) as conn:
            assert conn.execute(TABLES_IN_PUBLIC).fetchone() == (0,)
