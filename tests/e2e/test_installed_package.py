"""The wheel is the product: built with `pip wheel`, installed into a fresh virtual
environment and started from a directory that is not the repository, `loyalty serve`
serves and accepts a purchase (the contract's schemas and the default program file come
from the installed package, not from a checkout around it).

Offline and quick: the wheel is built without build isolation (the development
environment has the setuptools pyproject.toml requires), and the new environment gets
the third-party packages through a path file naming this environment's site-packages,
whose own path files (the editable install's finder among them) are not processed.
The test-only dependencies (PyYAML, jsonschema) are made unimportable there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.resources import schema_dir

REPO = Path(__file__).resolve().parents[2]
POS_KEY = "pos-installed-package-test-key"
ADMIN_KEY = "admin-installed-package-test-key"


def _source_tree(into: Path) -> Path:
    """What a source distribution holds: the package, the contract, the program file."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("services", "schemas", "config"):
        shutil.copytree(REPO / folder, into / folder, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, into / name)
    return into


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the wheel installed into it; returns its bin/."""
    root = tmp_path_factory.mktemp("package")
    source = _source_tree(root / "source")
    wheels = root / "wheels"
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", ".", "-w", wheels, "--no-deps", "--no-build-isolation", cwd=source)
    (wheel,) = wheels.glob("loyalty_ledger-*.whl")

    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)
    target = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (target / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # The development environment has them, a production one need not: the service must
    # run without the test-only packages (an import of either now fails).
    (target / "without-test-extras.pth").write_text(
        "import sys; sys.modules.update({'yaml': None, 'jsonschema': None})\n"
    )
    return venv / "bin"


def test_the_wheel_carries_the_contract_and_the_default_program(installed: Path) -> None:
    code = (
        "import json, services, services.resources as r; "
        "print(json.dumps([services.__file__, str(r.schema_dir()), "
        "sorted(p.name for p in (r.schema_dir() / 'pos').glob('*.json')), "
        "r.default_program_file().read_text()]))"
    )
    where, schemas, pos, program = json.loads(_run(installed / "python", "-c", code, cwd=Path("/")))
    venv = installed.parent
    assert Path(where).is_relative_to(venv), f"services imported from {where}, not the wheel"
    assert Path(schemas).is_relative_to(venv) and not Path(schemas).is_symlink()
    assert pos == sorted(p.name for p in (schema_dir() / "pos").glob("*.json"))
    assert program == (REPO / "config" / "program.toml").read_text()


def test_the_installed_environment_has_no_test_only_packages(installed: Path) -> None:
    for module in ("yaml", "jsonschema"):
        done = subprocess.run([installed / "python", "-c", f"import {module}"], timeout=60)
        assert done.returncode != 0, f"{module} is importable where the service is tested"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[str]:
    """`loyalty serve` of the installed package, started from an empty directory."""
    port = _free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "PYTHON"))}
    env |= {
        "LOYALTY_SERVE_METRICS_PORT": "0",
        "LOYALTY_STORE": f"sqlite:///{tmp_path / 'store' / 'loyalty.db'}",
        "LOYALTY_API_KEYS": f"pos:{POS_KEY},admin:{ADMIN_KEY}",
        "LOYALTY_VAR_DIR": str(tmp_path / "var"),
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [installed / "loyalty", "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_installed_service_started_elsewhere_accepts_a_purchase(served: str) -> None:
    purchase = json.loads((schema_dir() / "examples" / "purchase.json").read_text())
    answer = httpx.post(
        f"{served}/v1/events",
        json=purchase,
        headers={"Authorization": f"Bearer {POS_KEY}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["status"] == "accepted"
    assert answer.json()["effect"]["points"] > 0

    refused = httpx.post(
        f"{served}/v1/events",
        json={**purchase, "event_id": "pos-1:not-a-purchase", "amount": "lots"},
        headers={"Authorization": f"Bearer {POS_KEY}"},
        timeout=30,
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
