"""CLI mistakes are one line on stderr and exit 2, never a traceback (SPEC §6 "CLI")."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app as cli
from tests.support.servers import free_loopback_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "LOYALTY_STORE": f"sqlite:///{tmp_path / 'loyalty.db'}",
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_API_KEYS": "pos:pos-cli-key-000000000,admin:admin-cli-key-00000000",
        "COLUMNS": "200",
    }


def one_line_exit_2(args: list[str], env: dict[str, str]) -> str:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_bad_anchor(env: dict[str, str]) -> None:
    line = one_line_exit_2(["audit", "verify", "--anchor", "junk"], env)
    assert line.startswith("loyalty: --anchor 'junk': an anchor is POSITION:LINK")


def test_a_range_that_runs_backwards(env: dict[str, str]) -> None:
    line = one_line_exit_2(["audit", "export", "--from-position", "10", "--to-position", "2"], env)
    assert "--from-position 10 is after --to-position 2" in line


def test_a_dead_url(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    args = ["simulate", "--url", url, "--api-key", "pos-cli-key-000000000", "--events", "5"]
    line = one_line_exit_2(args, env)
    assert line.startswith(f"loyalty: cannot reach {url}")


def test_a_short_api_key_in_the_configuration(env: dict[str, str]) -> None:
    line = one_line_exit_2(["tick"], {**env, "LOYALTY_API_KEYS": "pos:short"})
    assert "a key of at least 16 characters" in line


def test_simulate_defaults_to_the_configured_port(env: dict[str, str]) -> None:
    port = free_loopback_port()
    args = ["simulate", "--api-key", "pos-cli-key-000000000", "--events", "5"]
    line = one_line_exit_2(args, {**env, "LOYALTY_HTTP_PORT": str(port)})
    assert f"cannot reach http://127.0.0.1:{port}" in line


def test_a_yaml_program_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    program = tmp_path / "program.yaml"
    program.write_text("currency: EUR\nearn_rate: '1'\n")
    line = one_line_exit_2(["tick"], {**env, "LOYALTY_PROGRAM": str(program)})
    assert "the program file is TOML" in line and "YAML is not read" in line


def test_audit_verify_prints_its_verdict_on_stdout(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"], env=env)
    assert result.exit_code == 0, result.output
    assert "ok: 0 events verified" in result.stdout
