"""A configuration that cannot work (a bad store URL, a short API key, an unreadable or
invalid program file, a bad port) stops every `loyalty` command with one line on stderr
and exit code 2, before anything is opened or written (SPEC §6 "Configuration")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app as cli

KEYS = "pos:pos-configuration-test-key,admin:admin-configuration-test-key"

# Every command that reads the configuration, with the arguments it needs to get there
# (no /metrics server: it would outlive the command inside the test process).
COMMANDS: dict[str, list[str]] = {
    "serve": ["serve"],
    "tick": ["tick"],
    "project": ["project"],
    "consume": ["consume", "--bootstrap", "127.0.0.1:1", "--metrics-port", "0"],
    "relay": ["relay", "--bootstrap", "127.0.0.1:1", "--metrics-port", "0"],
    "audit events": ["audit", "events"],
    "audit chain": ["audit", "chain"],
    "audit verify": ["audit", "verify"],
    "audit export": ["audit", "export"],
    "audit replay": ["audit", "replay"],
}
# The commands that build the ledger, and so read the program file and the API keys.
LEDGER_COMMANDS = ("serve", "tick", "project", "consume")


def _env(tmp_path: Path, **overrides: str | None) -> dict[str, str | None]:
    """The test's configuration, whatever the shell that runs the tests has set."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("LOYALTY_")
    } | {
        "LOYALTY_STORE": f"sqlite:///{tmp_path / 'store' / 'loyalty.db'}",
        "LOYALTY_API_KEYS": KEYS,
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
        "LOYALTY_HTTP_PORT": "8000",
        "COLUMNS": "200",
    }
    env.update(overrides)
    return env


def _refused(args: list[str], env: dict[str, str | None], *why: str) -> str:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("loyalty: configuration error: ")
    for part in why:
        assert part in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "store").exists(), "the store was opened despite the error"


BAD_STORES = {
    "another database": ("mysql://loyalty:s3cret@db/loyalty", "sqlite:///... or postgresql://"),
    "no file": ("sqlite:///", "no database file"),
    "a port that is no number": ("postgresql://loyalty@db:port/loyalty", "bad port"),
    "an unknown parameter": ("postgresql://loyalty@db/loyalty?sslmod=require", "sslmod"),
    "a bad percent-encoding": ("postgresql://loyalty:%zz@db/loyalty", "percent-encoded"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", BAD_STORES)
def test_a_bad_store_url_is_one_line_and_exit_2(command: str, case: str, tmp_path: Path) -> None:
    url, why = BAD_STORES[case]
    line = _refused(COMMANDS[command], _env(tmp_path, LOYALTY_STORE=url), why)
    assert "s3cret" not in line, "the password is printed"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("port", ["eighty", "0", "65536"])
def test_a_bad_port_is_one_line_and_exit_2(command: str, port: str, tmp_path: Path) -> None:
    _refused(COMMANDS[command], _env(tmp_path, LOYALTY_HTTP_PORT=port), "LOYALTY_HTTP_PORT")
    _nothing_written(tmp_path)


def test_a_port_option_out_of_range_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _refused(["serve", "--port", "70000"], _env(tmp_path), "--port 70000")
    _nothing_written(tmp_path)


@pytest.mark.parametrize("command", LEDGER_COMMANDS)
@pytest.mark.parametrize(
    "keys", ["pos:short", "cashier:a-key-that-is-long-enough", "pos", " , "], ids=repr
)
def test_a_bad_api_key_is_one_line_and_exit_2(command: str, keys: str, tmp_path: Path) -> None:
    _refused(COMMANDS[command], _env(tmp_path, LOYALTY_API_KEYS=keys), "LOYALTY_API_KEYS")
    _nothing_written(tmp_path)


def test_a_damaged_key_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api-keys.json").write_text("{not json")
    _refused(["tick"], _env(tmp_path, LOYALTY_API_KEYS=None), "api-keys.json", "delete it")
    _nothing_written(tmp_path)


PROGRAMS = {
    "missing": (None, "cannot read"),
    "not TOML": ('earn_rate = "1"\ncurrency = \n', "is not TOML"),
    "a lowercase currency": ('currency = "eur"\n', "ISO 4217"),
    "a ladder that does not start at 0": (
        '[[tiers.ladder]]\nname = "silver"\nthreshold = 10\nmultiplier = 1.25\n',
        "tier ladder",
    ),
    "a number that is not one": ('earn_rate = "one"\n', "LOYALTY_PROGRAM"),
}


@pytest.mark.parametrize("command", LEDGER_COMMANDS)
@pytest.mark.parametrize("case", PROGRAMS)
def test_a_bad_program_file_is_one_line_and_exit_2(command: str, case: str, tmp_path: Path) -> None:
    text, why = PROGRAMS[case]
    program = tmp_path / "program.toml"
    if text is not None:
        program.write_text(text)
    line = _refused(COMMANDS[command], _env(tmp_path, LOYALTY_PROGRAM=str(program)), why)
    assert str(program) in line
    _nothing_written(tmp_path)


def test_an_unreadable_program_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root reads any file: a directory stands in for an unreadable one
        program = tmp_path / "program.toml"
        program.mkdir()
    else:
        program = tmp_path / "program.toml"
        program.write_text('currency = "EUR"\n')
        program.chmod(0)
    _refused(["tick"], _env(tmp_path, LOYALTY_PROGRAM=str(program)), "cannot read")
    _nothing_written(tmp_path)


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """The real process: no traceback, nothing on stdout, exit code 2."""
    loyalty = Path(sys.executable).parent / "loyalty"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    given = _env(tmp_path, LOYALTY_STORE="postgresql://loyalty:p@ss word@db/x?x=1")
    env |= {k: v for k, v in given.items() if v is not None}
    done = subprocess.run(
        [loyalty, "tick"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("loyalty: configuration error: LOYALTY_STORE")
