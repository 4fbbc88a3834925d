"""Console sessions: sign-in with an API key, a random-id cookie, a CSRF token per session.

The key is checked once, at sign-in, by the API's own `ApiKeys`; the session keeps only
what the key authenticated (its role and key id, as the API's `Principal`) and the name
the person typed. The key itself is kept nowhere: not in the cookie, not in memory, not
in a page. The cookie holds a random 256-bit id (HttpOnly, SameSite=Strict, Secure over
https); the server keeps sessions by the id's hash, so sign-out (or a restart) ends them
for good, which a signed cookie cannot do.

Every state-changing form carries the session's CSRF token (`csrf_token`); it is
compared in constant time. The sign-in form has one too (from an anonymous session),
and a successful sign-in starts a new session id (no fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response

from services.http.auth import Principal

COOKIE = "loyalty_console"
IDLE_SECONDS = 8 * 3600  # a working day: the console stays open all day
MAX_SESSIONS = 10_000  # of each kind: signed in, and anonymous (a sign-in form's token)


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    principal: Principal | None = None
    name: str = ""  # who the person said they are: `approved_by` of their decisions
    seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    min_position: int = 0  # read-your-writes: the position of this person's last decision

    @property
    def role(self) -> str | None:
        return self.principal.role if self.principal else None

    def may(self, *roles: str) -> bool:
        """The API's rule (auth.require): the roles named, and admin for everything."""
        return self.role is not None and (self.role in roles or self.role == "admin")

    def say(self, kind: str, message: str) -> None:
        self.flash.append((kind, message))

    def take_flash(self) -> list[tuple[str, str]]:
        found, self.flash = self.flash, []
        return found


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Signed-in and anonymous sessions are kept apart, each up to `limit` (the least
    recently used goes first): loading the sign-in page many times can push out only
    other anonymous sessions, never a signed-in one."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self._signed: OrderedDict[str, Session] = OrderedDict()
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self.idle_seconds = idle_seconds
        self.limit = limit

    def _kept(self, session: Session) -> OrderedDict[str, Session]:
        return self._anonymous if session.principal is None else self._signed

    def get(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        digest = _digest(token)
        now = time.monotonic()
        with self._lock:
            for kept in (self._signed, self._anonymous):
                session = kept.get(digest)
                if session is None:
                    continue
                if now - session.seen > self.idle_seconds:
                    del kept[digest]
                    return None
                session.seen = now
                kept.move_to_end(digest)
                return session
        return None

    def start(self, response: Response, request: Request, session: Session) -> None:
        """Keep `session` under a new random id and set the cookie."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            kept = self._kept(session)
            kept[_digest(token)] = session
            while len(kept) > self.limit:
                kept.popitem(last=False)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/console",
        )

    def end(self, request: Request, response: Response) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            digest = _digest(token)
            with self._lock:
                self._signed.pop(digest, None)
                self._anonymous.pop(digest, None)
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


def csrf_ok(session: Session | None, token: str) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, token)
