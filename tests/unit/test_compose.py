"""docker-compose.yml and the Dockerfile describe the ledger as SPEC §6-§7 do.

No Docker engine runs in CI, so the structure is checked here by reading the files.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_TOPICS = {
    "loyalty.pos-events.v1": 6,
    "loyalty.pos-events.dlq": None,  # the spec gives no partition count
    "loyalty.projections.v1": 6,
}
LEDGER_COMMANDS = {"serve": "serve", "consume": "consume", "project": "project", "relay": "relay"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


def test_compose_has_the_brokers_the_database_and_each_ledger_process(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"kafka", "kafka-init", "postgres", *LEDGER_COMMANDS} <= set(services)


def test_infrastructure_uses_the_official_pinned_images(
    services: dict[str, dict[str, Any]],
) -> None:
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", services["kafka"]["image"])
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", services["postgres"]["image"])


@pytest.mark.parametrize("name", sorted(LEDGER_COMMANDS))
def test_each_ledger_process_runs_its_command_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    command = service["command"]
    assert (command if isinstance(command, list) else shlex.split(command)) == [
        LEDGER_COMMANDS[name]
    ]
    assert service["build"] in (".", {"context": "."})


@pytest.mark.parametrize("name", sorted(LEDGER_COMMANDS))
def test_each_ledger_process_is_configured_for_postgres_and_kafka(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = _environment(services[name])
    assert env["LOYALTY_STORE"].startswith("postgresql://")
    assert "@postgres:5432/" in env["LOYALTY_STORE"]
    assert env["LOYALTY_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["LOYALTY_HTTP_HOST"] == "0.0.0.0"
    # Required from the operator: compose refuses to start without it.
    assert re.fullmatch(r"\$\{LOYALTY_API_KEYS:\?[^}]+\}", env["LOYALTY_API_KEYS"])


@pytest.mark.parametrize("name", sorted(LEDGER_COMMANDS))
def test_each_ledger_process_waits_for_healthy_servers_and_created_topics(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["kafka-init"]["condition"] == "service_completed_successfully"


def test_servers_and_api_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    assert "kafka-broker-api-versions.sh" in _joined(services["kafka"]["healthcheck"]["test"])
    assert "pg_isready" in _joined(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in _joined(services["serve"]["healthcheck"]["test"])
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_advertises_a_listener_for_containers_and_one_for_the_host(
    services: dict[str, dict[str, Any]],
) -> None:
    advertised = _environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert {url.split("://")[1] for url in advertised} >= {"kafka:9092", "localhost:29092"}
    assert any(str(port).startswith("29092") for port in services["kafka"]["ports"])


def test_kafka_init_creates_exactly_the_spec_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    created = _created_topics(_joined(services["kafka-init"]["command"]))
    assert set(created) == set(SPEC_TOPICS)
    for topic, partitions in SPEC_TOPICS.items():
        if partitions is not None:
            assert created[topic] == partitions, topic


def test_dockerfile_installs_the_package_as_a_non_root_user_with_loyalty_entrypoint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = _instructions(dockerfile)
    assert instructions["FROM"][0] == "python:3.11-slim"
    assert any("pip install ." in run for run in instructions["RUN"])
    assert instructions["USER"] and instructions["USER"][-1] not in ("root", "0")
    assert instructions["ENTRYPOINT"][-1] in ('["loyalty"]', "loyalty")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _joined(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


def _created_topics(script: str) -> dict[str, int | None]:
    """Topic name -> partitions, for each `kafka-topics.sh ... --create` line."""
    created: dict[str, int | None] = {}
    for line in script.splitlines():
        if "kafka-topics.sh" not in line or "--create" not in line:
            continue
        assert "--if-not-exists" in line, line
        args = shlex.split(line)
        topic = args[args.index("--topic") + 1]
        partitions = args[args.index("--partitions") + 1] if "--partitions" in args else None
        created[topic] = int(partitions) if partitions is not None else None
    return created


def _instructions(dockerfile: str) -> dict[str, list[str]]:
    """Instruction -> its arguments, in order (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    found: dict[str, list[str]] = {}
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        found.setdefault(keyword.upper(), []).append(rest.strip())
    return found
