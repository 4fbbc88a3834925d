"""Published schemas from npm packages, for tests that check our documents against them.

No third-party file is committed: a test asks for `package(name, version)`, which installs
that exact version with the machine's npm into the virtualenv (`<venv>/npm/<name>@<v>`,
removed by `make clean`) the first time and reuses it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

CACHE = Path(sys.prefix) / "npm"


def package(name: str, version: str) -> Path:
    """The directory of the npm package `name@version`, installed if missing. A test that
    needs it fails (it is not skipped) when npm is missing or the install fails."""
    target = CACHE / f"{name.replace('/', '+')}@{version}"
    found = target / "node_modules" / name
    if (found / "package.json").is_file():
        return found
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"npm is needed to install {name}@{version} for this test: install Node.js and "
            "npm (Debian: apt-get install nodejs npm)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=CACHE))
    try:
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-save",
                "--no-package-lock",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{name}@{version}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "npm_config_update_notifier": "false"},
        )
        if result.returncode != 0:
            pytest.fail(f"npm install {name}@{version} failed:\n{result.stderr[-3000:]}")
        if target.exists():  # another run finished first
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return found


def json_file(name: str, version: str, path: str) -> Any:
    """A JSON file shipped in an npm package."""
    return json.loads((package(name, version) / path).read_text(encoding="utf-8"))
