"""Settings, in one typed place (SPEC §6 "Configuration"), read from LOYALTY_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(ValueError):
    """The configuration cannot work (a bad store URL, a short API key, an unreadable or
    invalid program file, a bad port): every `loyalty` command prints its message as one
    line on stderr and exits 2 (services/cli.py)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore")

    store: str = Field(
        default="sqlite:///./var/loyalty.db",
        description=(
            "sqlite:///path (embedded default) or postgresql://user:password@host:port/db "
            "(percent-encode @ : / and spaces in the password)"
        ),
    )
    kafka_bootstrap: str | None = None
    api_keys: str | None = Field(
        default=None,
        description="role:name=key or role:key entries, comma-separated; roles pos, service, "
        "auditor, admin (services/http/auth.py)",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="the keys file (hashes and names) used without LOYALTY_API_KEYS; "
        "default <var_dir>/api-keys.json; `loyalty keys` manages it",
    )
    api_keys_revoked: str | None = Field(
        default=None, description="key names (or hash prefixes), comma-separated, refused (401)"
    )
    program: Path | None = Field(default=None, description="the program's rule file (TOML)")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    var_dir: Path = Path("./var")
    aggregate_cache_size: int = 20_000
    # The accounts cached on the write side hold at most this many events in all (memory
    # grows with an account's history, ~2 KB an event).
    aggregate_cache_events: int = Field(default=500_000, ge=0)
    # The read side's cached views hold at most this many items in all (their lots,
    # purchases, holds...: `projections.runner.weight`, ~0.4 KB each).
    projection_cache_items: int = Field(default=1_000_000, ge=1)
    projections_in_process: bool | None = Field(
        default=None, description="run projections inside `serve`; default: yes on SQLite"
    )
    read_wait_seconds: float = 2.0
    read_max_waiters: int = Field(
        default=256,
        ge=1,
        description="reads waiting for min_position at once; past that 503 with Retry-After",
    )
    startup_patience_seconds: float = Field(
        default=120.0,
        ge=0,
        description="how long `serve`, `consume` and `project` wait at start for a store "
        "that does not answer (restarting, not yet up) before they exit 1",
    )

    @property
    def is_sqlite(self) -> bool:
        return self.store.startswith("sqlite:")

    @property
    def read_side_in_process(self) -> bool:
        """The projections and the hash chain run inside `serve`: by default on the
        embedded SQLite store; with PostgreSQL `loyalty project` runs them."""
        if self.projections_in_process is None:
            return self.is_sqlite
        return self.projections_in_process


def describe(error: ValidationError) -> str:
    """A `Settings` validation error as one line: `LOYALTY_HTTP_PORT: <reason>; ...`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    reasons = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        reason = f"{prefix}{name.upper()}: {item['msg']}"
        if "input" in item and name not in _SECRET:
            reason += f" (got {item['input']!r})"
        reasons.append(reason)
    return "; ".join(reasons)


_SECRET = {"store", "api_keys"}  # may hold a password or keys: never echoed
