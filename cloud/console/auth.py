"""Who a browser request is: the session cookie, its CSRF token, and the sign-in throttle.

``cookie_principal`` is what ``cloud.api.deps`` falls back to when a request carries no API
key: the rest of the API (roles, department scope, audit under the actor) then works unchanged.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from fastapi import Request

from cloud.api.context import ApiContext
from cloud.api.problems import ApiError
from cloud.ops.roles import Principal
from cloud.ops.sessions import OpenSession, SessionLimits, csrf_matches, resolve_session

SESSION_COOKIE: Final = "cityops_session"
LOGIN_CSRF_COOKIE: Final = "cityops_login_csrf"
LANG_COOKIE: Final = "cityops_lang"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_UNSET: Final = object()


def session_limits(ctx: ApiContext) -> SessionLimits:
    return ctx.settings.api.console.session_limits


def session_of(request: Request, ctx: ApiContext) -> OpenSession | None:
    """The signed-in session of *request* (looked up once per request), or None."""
    cached: OpenSession | object | None = getattr(request.state, "console_session", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    token = request.cookies.get(SESSION_COOKIE)
    opened = None
    if token:
        with ctx.sessions() as session:
            opened = resolve_session(session, token, session_limits(ctx))
    request.state.console_session = opened
    return opened


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (``Origin`` header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or an old one: the CSRF token still has to match
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in {"http", "https"}


def check_csrf(request: Request, opened: OpenSession, given: str | None) -> None:
    if not same_origin(request):
        raise ApiError(403, "cross-site request refused (Origin is not this server)")
    if not csrf_matches(opened.csrf_token, given):
        raise ApiError(
            403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header of the console page"
        )


def cookie_principal(request: Request, ctx: ApiContext) -> Principal | None:
    """The signed-in user's principal; unsafe methods must carry the session's CSRF token."""
    opened = session_of(request, ctx)
    if opened is None:
        return None
    if request.method not in SAFE_METHODS:
        check_csrf(request, opened, request.headers.get(CSRF_HEADER))
    return opened.principal


def cookie_secure(request: Request, ctx: ApiContext) -> bool:
    mode = ctx.settings.api.console.secure_cookie
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Slows sign-in attempts after failures, per user name and per client address.

    The n-th consecutive failure makes the next attempt wait ``base * 2**(n-1)`` seconds (at most
    ``cap``), whether it comes one by one or in parallel: attempts for one name queue on a lock.
    Failures are forgotten ``forget_s`` after the last one, or at a successful sign-in.
    """

    def __init__(
        self, base_s: float = 0.25, cap_s: float = 8.0, forget_s: float = 900.0, size: int = 10_000
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.forget_s = forget_s
        self.size = size
        self._failures: dict[str, _Failures] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.failed_total = 0
        self.on_failure: Callable[[], None] = lambda: None
        """Called once per failed attempt (the app counts it on ``/metrics``)."""

    def _entry(self, key: str) -> _Failures:
        now = time.monotonic()
        entry = self._failures.get(key)
        if entry is None or now - entry.last > self.forget_s:
            if len(self._failures) >= self.size:
                self._failures.clear()
            entry = self._failures[key] = _Failures()
        return entry

    def delay_s(self, *keys: str) -> float:
        count = max(self._entry(k).count for k in keys)
        return 0.0 if count == 0 else min(self.base_s * 2 ** (count - 1), self.cap_s)

    def lock(self, username: str) -> asyncio.Lock:
        if len(self._locks) >= self.size:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(username, asyncio.Lock())

    def failed(self, *keys: str) -> None:
        self.failed_total += 1
        self.on_failure()
        for key in keys:
            entry = self._entry(key)
            entry.count += 1
            entry.last = time.monotonic()

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
