"""Every `loyalty` command tunes the garbage collector for a long-running process."""

from __future__ import annotations

import subprocess
import sys


def test_a_loyalty_command_runs_with_rare_collections_and_startup_frozen() -> None:
    probe = (
        "import gc, sys\n"
        "from typer.testing import CliRunner\n"
        "from services.cli import app\n"
        "@app.command('probe')\n"
        "def probe():\n"
        "    print(gc.get_threshold(), gc.get_freeze_count() > 0)\n"
        "print(CliRunner().invoke(app, ['probe']).output, end='')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "(50000, 200, 20) True"
