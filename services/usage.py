"""A mistake in how a command was called (a bad `--anchor`, a range that runs backwards,
a service that cannot be reached or refuses the key): `loyalty` prints it as one line on
stderr and exits 2, the usage-error code, never with a traceback (services/cli.py)."""

from __future__ import annotations


class UsageError(Exception):
    """Raised by a command; its message is the line the user reads."""
