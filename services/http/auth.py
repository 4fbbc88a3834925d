"""API keys by role (SPEC §6), each with a name; kept only as SHA-256 hashes.

`LOYALTY_API_KEYS` holds comma-separated entries `role:name=key` or `role:key` (several
keys per role allowed). A key without a name is named by the first 12 hex digits of its
hash, which is what the ledger recorded for it before keys had names. Names are what the
ledger records beside an admin's decision and what the logs show; never the key.
`LOYALTY_API_KEYS_REVOKED` lists names (or hash prefixes) that are refused (401).

With no `LOYALTY_API_KEYS`, the keys file (`LOYALTY_API_KEYS_FILE`, default
`./var/api-keys.json`) holds them: `loyalty serve` creates one key per role there on first
start and prints the keys once; `loyalty keys add/list/revoke` manage it, and a running
server reads the file again when it changes (a revocation takes effect within a second).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from services.settings import ConfigurationError

ROLES = ("pos", "service", "auditor", "admin")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_KEY_LENGTH = 16
RELOAD_SECONDS = 1.0


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    role: str
    key_id: str  # the key's name (unnamed keys: their hash prefix): safe to log and store


@dataclass(frozen=True)
class KeyEntry:
    name: str
    role: str
    sha256: str
    revoked_at: str | None = None


class ApiKeys:
    def __init__(
        self,
        entries: Iterable[KeyEntry] | dict[str, str],
        *,
        revoked: Iterable[str] = (),
        source: Path | None = None,
    ) -> None:
        if isinstance(entries, dict):  # {hash: role}, the first keys file's form
            entries = [KeyEntry(h[:12], role, h) for h, role in entries.items()]
        self.entries = list(entries)
        self.revoked = frozenset(revoked)
        self.source = source
        self._checked_at = time.monotonic()
        self._mtime = _mtime(source)
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"API keys: the name(s) {', '.join(twice)} are used twice")

    # ---- sources ---------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str, *, revoked: Iterable[str] = ()) -> ApiKeys:
        entries: list[KeyEntry] = []
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            role, sep, rest = pair.partition(":")
            name, eq, named_key = rest.partition("=")
            # `role:name=key` when what precedes `=` is a name and a whole key follows it;
            # anything else is an unnamed `role:key` (a key may itself contain `=`).
            if eq and NAME_PATTERN.match(name) and len(named_key) >= MIN_KEY_LENGTH:
                key, key_name = named_key, name
            else:
                key, key_name = rest, None
            if not sep or role not in ROLES or len(key) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"LOYALTY_API_KEYS: {role!r}: each entry is role:key or role:name=key with "
                    f"a role among {', '.join(ROLES)}, a name of letters, digits and . _ - "
                    f"and a key of at least {MIN_KEY_LENGTH} characters"
                )
            digest = _hash(key)
            entries.append(KeyEntry(key_name or digest[:12], role, digest))
        if not entries:
            raise ConfigurationError("LOYALTY_API_KEYS is set but holds no keys")
        return cls(entries, revoked=revoked)

    @classmethod
    def read(cls, path: Path, *, revoked: Iterable[str] = ()) -> ApiKeys:
        document = json.loads(path.read_text())
        keys = document["keys"]
        if isinstance(keys, dict):
            return cls(keys, revoked=revoked, source=path)
        return cls([KeyEntry(**entry) for entry in keys], revoked=revoked, source=path)

    @classmethod
    def load_or_create(
        cls, path: Path, *, revoked: Iterable[str] = ()
    ) -> tuple[ApiKeys, dict[str, str]]:
        """Keys from `path` (hashes), or new ones: returns the plain keys only when created."""
        if path.exists():
            try:
                return cls.read(path, revoked=revoked), {}
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ConfigurationError(
                    f"{path}: not a readable API key file ({error!r}); delete it to get new keys"
                ) from None
        plain = {role: new_key(role) for role in ROLES}
        keys = cls([KeyEntry(role, role, _hash(key)) for role, key in plain.items()])
        keys.write(path)
        return cls.read(path, revoked=revoked), plain

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"keys": [asdict(e) for e in self.entries]}, indent=2)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.chmod(0o600)
        os.replace(temporary, path)

    # ---- changes (the keys file) -----------------------------------------------------
    def add(self, role: str, name: str) -> str:
        """A new key for `role` named `name`; returns the key (shown once, never stored)."""
        if role not in ROLES:
            raise ValueError(f"{role!r} is not a role; roles: {', '.join(ROLES)}")
        if not NAME_PATTERN.match(name):
            raise ValueError(f"{name!r} is not a name: 1 to 64 letters, digits and . _ -")
        if any(e.name == name for e in self.entries):
            raise ValueError(f"a key named {name!r} exists already")
        key = new_key(role)
        self.entries.append(KeyEntry(name, role, _hash(key)))
        return key

    def revoke(self, name: str) -> KeyEntry:
        for index, entry in enumerate(self.entries):
            if entry.name == name:
                if entry.revoked_at is None:
                    entry = replace(entry, revoked_at=datetime.now(UTC).isoformat())
                    self.entries[index] = entry
                return entry
        raise ValueError(f"no key is named {name!r}")

    # ---- checking a key --------------------------------------------------------------
    def _reload_if_changed(self) -> None:
        if self.source is None or time.monotonic() - self._checked_at < RELOAD_SECONDS:
            return
        self._checked_at = time.monotonic()
        mtime = _mtime(self.source)
        if mtime != self._mtime and mtime is not None:
            fresh = ApiKeys.read(self.source, revoked=self.revoked)
            self.entries, self._mtime = fresh.entries, mtime

    def authenticate(self, key: str) -> Principal | None:
        self._reload_if_changed()
        digest = _hash(key)
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                if entry.revoked_at is not None or {entry.name, digest[:12]} & self.revoked:
                    return None
                return Principal(role=entry.role, key_id=entry.name)
        return None


def new_key(role: str) -> str:
    return f"{role}-{secrets.token_urlsafe(24)}"


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def keys_from_settings(settings: Any) -> tuple[ApiKeys, dict[str, str]]:
    """The keys `serve` uses: LOYALTY_API_KEYS, else the keys file (created when missing);
    with the plain keys when they were created just now."""
    revoked = [n.strip() for n in (settings.api_keys_revoked or "").split(",") if n.strip()]
    if settings.api_keys:
        return ApiKeys.parse(settings.api_keys, revoked=revoked), {}
    return ApiKeys.load_or_create(keys_file(settings), revoked=revoked)


def keys_file(settings: Any) -> Path:
    return Path(settings.api_keys_file or settings.var_dir / "api-keys.json")


def authorise(request: Request, allowed: frozenset[str]) -> Principal:
    """The request's key, if its role is among `allowed`; else 401 or 403. Remembered on
    the request: the route guard (services/http/guard.py) asks before the body is
    read, the route's dependency asks again."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        principal = known
    else:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        keys: ApiKeys = request.app.state.container.api_keys
        found = keys.authenticate(key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise HTTPException(
                401,
                "send 'Authorization: Bearer <key>' with a key from LOYALTY_API_KEYS",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = request.state.principal = found
    if principal.role not in allowed:
        raise HTTPException(
            403,
            f"role {principal.role!r} may not do this; needs {' or '.join(sorted(allowed))}",
        )
    return principal


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting the given roles (and admin, who may do everything). It is
    async so that it runs on the event loop: a sync one takes a worker thread per request."""
    allowed = frozenset({*roles, "admin"})

    async def dependency(request: Request) -> Principal:
        return authorise(request, allowed)

    dependency.roles = allowed  # type: ignore[attr-defined]  # read by GuardedRoute
    return dependency


PosKey = Annotated[Principal, Depends(require("pos"))]
ServiceKey = Annotated[Principal, Depends(require("service", "auditor"))]
AuditorKey = Annotated[Principal, Depends(require("auditor"))]
AdminKey = Annotated[Principal, Depends(require())]
