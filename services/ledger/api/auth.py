"""API keys by role (SPEC §6). Keys are kept only as SHA-256 hashes.

`LOYALTY_API_KEYS` holds `role:key` pairs, comma-separated (several keys per role allowed).
With none configured, `loyalty serve` creates one key per role in `./var/api-keys.json`
(hashes only) and prints the keys once, so a new user can try the API at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

ROLES = ("pos", "service", "auditor", "admin")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    role: str
    key_id: str  # the first characters of the key's hash: safe to log


class ApiKeys:
    def __init__(self, hashed: dict[str, str]) -> None:
        self._role_by_hash = dict(hashed)

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        hashed: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            role, sep, key = pair.partition(":")
            if not sep or role not in ROLES or len(key) < 16:
                raise ValueError(
                    f"LOYALTY_API_KEYS: {role!r}: each entry is role:key with a role among "
                    f"{', '.join(ROLES)} and a key of at least 16 characters"
                )
            hashed[_hash(key)] = role
        if not hashed:
            raise ValueError("LOYALTY_API_KEYS is set but holds no keys")
        return cls(hashed)

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[ApiKeys, dict[str, str]]:
        """Keys from `path` (hashes), or new ones: returns the plain keys only when created."""
        if path.exists():
            return cls(json.loads(path.read_text())["keys"]), {}
        plain = {role: f"{role}-{secrets.token_urlsafe(24)}" for role in ROLES}
        path.parent.mkdir(parents=True, exist_ok=True)
        hashed = {_hash(key): role for role, key in plain.items()}
        path.write_text(json.dumps({"keys": hashed}, indent=2))
        path.chmod(0o600)
        return cls(hashed), plain

    def authenticate(self, key: str) -> Principal | None:
        digest = _hash(key)
        for known, role in self._role_by_hash.items():
            if hmac.compare_digest(known, digest):
                return Principal(role=role, key_id=digest[:12])
        return None


def authorise(request: Request, allowed: frozenset[str]) -> Principal:
    """The request's key, if its role is among `allowed`; else 401 or 403. Remembered on
    the request: the route guard (services/ledger/api/guard.py) asks before the body is
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


def require(*roles: str) -> Callable[[Request], Principal]:
    """A dependency admitting the given roles (and admin, who may do everything)."""
    allowed = frozenset({*roles, "admin"})

    def dependency(request: Request) -> Principal:
        return authorise(request, allowed)

    dependency.roles = allowed  # type: ignore[attr-defined]  # read by GuardedRoute
    return dependency


PosKey = Annotated[Principal, Depends(require("pos"))]
ServiceKey = Annotated[Principal, Depends(require("service", "auditor"))]
AuditorKey = Annotated[Principal, Depends(require("auditor"))]
AdminKey = Annotated[Principal, Depends(require())]
