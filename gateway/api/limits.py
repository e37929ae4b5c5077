"""Admission middlewares below FastAPI: a cap on request bodies read at once, and the
per-client rate limit of public routes. Both refuse at once (503, 429 with Retry-After, in
the problem shape) instead of queueing, so a flood costs its sender, not the gateway.

**Bodies.** ``BodyLimit`` buffers up to ``max_body_bytes`` per request; ``BodyGate`` bounds
how many such bodies are in flight (from the first byte read until the app has answered, as
long as the buffered body lives). Requests without a bearer token share
``max_unauthenticated_bodies`` slots; requests with one share ``max_authenticated_bodies``.
The token is *not verified* here (that costs a database read per request and is the route's
job): a token of the right form (``cg_<id>_<secret>``) is enough to reach the second pool. So
a hostile client with a made-up token can fill that pool and get devices' writes 503s for as
long as it keeps it filled, each slot for at most ``body_timeout_s``; what it cannot do is
raise memory above (both caps) x ``max_body_bytes``, starve the public pool, or touch
requests without a body (reads, /healthz). A malformed token counts as no token.

**Rate limit.** Public routes (every route without a ``require(...)`` token dependency, and
paths no route serves) take a token from the client's bucket (``gateway.api.throttle``);
``/healthz``, ``/readyz``, ``/metrics`` (probes, and the scraper, which shows its own token)
and the case system's signed callback are exempt. A client whose bucket is empty but who
sends a bearer token that verifies (the app's backend, many users behind one address)
passes; any other gets 429.
Verifying only then keeps the database out of the common path and gives a made-up token
nothing. Whether a request is rate limited follows from its method and path, and is
remembered per (method, path) in a bounded table, as each peer's client key is: matching a
public request against every token route cost more than the rest of the middleware stack.

**Web pages.** Staff use ``/web`` from the bureau's offices, many behind one NAT address:
counting their pages in that address's bucket would share 10 requests/s between them and
every anonymous API client there. A ``/web`` request (its static assets included: the login
cookie's path is ``/web``) whose ``cg_web`` cookie holds a token that verifies is treated as
an authenticated API request: it takes nothing from the address's bucket. The verdict is
remembered for ``WEB_VERIFIED_S`` (a hashed token, never the token), so a page costs no extra
database read; the page itself still checks the cookie on every request, so a revoked token
sees nothing at once and only leaves this exemption within ``WEB_VERIFIED_S``. A cookie that
does not verify counts as none: the address's bucket, as anonymous (a made-up cookie costs
one read by primary key, as a made-up bearer token on a token route does). The login form's
POST is always counted by address (guessing tokens is what the limit is there to slow), and
so are pages and assets fetched before login (the assets are immutable and cached by the
browser, so a person fetches them once).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.requests import cookie_parser
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.auth import require
from gateway.api.problems import responses, send_problem
from gateway.api.throttle import RateTable, client_key, forwarded_client
from gateway.directory.tokens import TokenError, split_token, verify_token
from gateway.web.session import AUTH_COOKIE, COOKIE_PATH, token_shaped

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/cases/callback"})
# Plate cameras push to a URL that carries their secret (they cannot send a token), and a
# refused push is a lost read (Hikvision never retries): no rate limit, and their bodies
# count with the authenticated ones (checked by the route, as a token is).
CAMERA_PREFIX = "/cameras/"


WEB_LOGIN = COOKIE_PATH + "/login"
WEB_VERIFIED_S = 60.0  # how long a web login cookie that verified skips the address's bucket
WEB_VERIFIED_MAX = 4096  # logins remembered at once (least recently used dropped first)


def web_login_of(scope: Scope) -> str | None:
    """The token in a ``/web`` request's login cookie, if it has the form of one; None for
    the login form's POST (always counted by address) and for any other path."""
    path: str = scope["path"]
    if not (path == COOKIE_PATH or path.startswith(COOKIE_PATH + "/")):
        return None
    if path == WEB_LOGIN and scope.get("method") == "POST":
        return None
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            token = cookie_parser(value.decode("latin-1")).get(AUTH_COOKIE)
            if token_shaped(token):
                return token
    return None


def exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(CAMERA_PREFIX)


_REQUIRE_CODE = require().__code__  # every require(...) dependency shares this code object

Reject = Callable[[str], None]


def bearer_of(scope: Scope) -> str | None:
    """The bearer token a request carries, if it has the form of one of ours."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer":
                return None
            try:
                split_token(token)
            except TokenError:
                return None
            return token
    return None


def has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class BodyGate:
    """At most *unauthenticated* bodies without a bearer token, *authenticated* with one.

    A refusal leaves the connection open: uvicorn reads and drops the unread body (no buffer
    grows), so the client reads its 503 instead of a reset (closing a socket with unread data
    sends RST, which can destroy the answer before the client reads it). The body deadline
    still ends a body that never does."""

    def __init__(
        self, app: ASGIApp, unauthenticated: int, authenticated: int, on_reject: Reject
    ) -> None:
        self.app = app
        self.caps = {False: unauthenticated, True: authenticated}
        self.in_flight = {False: 0, True: 0}
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            await self.app(scope, receive, send)
            return
        pool = bearer_of(scope) is not None or scope["path"].startswith(CAMERA_PREFIX)
        if self.in_flight[pool] >= self.caps[pool]:
            self.on_reject("busy_bodies")
            await send_problem(
                send,
                503,
                "too many requests are being received; retry shortly",
                "unavailable",
                [(b"retry-after", b"1")],
            )
            return
        self.in_flight[pool] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[pool] -= 1


def token_verifier(sessions: async_sessionmaker[Any]) -> Callable[[str], Awaitable[bool]]:
    """True for a token that verifies now (one read by primary key); False otherwise, and
    while the database cannot answer (the request is then refused, not let through)."""

    async def verify(token: str) -> bool:
        try:
            async with sessions() as session:
                await verify_token(session, token)
        except (TokenError, SQLAlchemyError):
            return False
        return True

    return verify


def _requires_token(dependant: Dependant) -> bool:
    return any(
        getattr(d.call, "__code__", None) is _REQUIRE_CODE or _requires_token(d)
        for d in dependant.dependencies
    )


def token_routes(routes: Iterable[BaseRoute]) -> list[APIRoute]:
    """The routes that require a bearer token: the rest are public."""
    return [r for r in routes if isinstance(r, APIRoute) and _requires_token(r.dependant)]


def document(routes: Iterable[BaseRoute], token_routes: list[APIRoute]) -> None:
    """Name the refusals these middlewares add in each route's OpenAPI responses: 429 on the
    rate-limited routes, 503 on those that take a body."""
    tokened = {id(r) for r in token_routes}
    for r in routes:
        if not isinstance(r, APIRoute):
            continue
        if id(r) not in tokened and not exempt(r.path):
            r.responses = {**responses(429), **r.responses}
        if (r.methods or set()) & {"POST", "PUT", "PATCH"}:
            r.responses = {**responses(503), **r.responses}


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]

VERDICTS_MAX = 4096  # (method, path) -> rate limited or not, remembered (oldest dropped first)
VERDICT_PATH_MAX = 256  # longer paths are matched anew each time (bounds the memory kept)
CLIENTS_MAX = 4096  # peer address -> client key, remembered (oldest dropped first)


def _remember(cache: dict[Any, Any], key: Any, value: Any, most: int) -> None:
    if len(cache) >= most:
        del cache[next(iter(cache))]
    cache[key] = value


class RateLimit:
    """Per-client token buckets on public routes; 429 with Retry-After when one is empty."""

    def __init__(
        self,
        app: ASGIApp,
        table: RateTable,
        token_routes: list[APIRoute],
        verify: Callable[[str], Awaitable[bool]],
        on_reject: Reject,
        trusted: Networks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.table = table
        self.token_routes = token_routes
        self.verify = verify
        self.on_reject = on_reject
        self.trusted = trusted or []
        self.clock = clock
        self._web_verified: OrderedDict[bytes, float] = OrderedDict()  # sha256 -> until
        # Whether a path is rate limited follows from the method and path alone (matching
        # them against every token route costs tens of microseconds a request), and a peer's
        # client key from its address: both remembered, in bounded tables.
        self._verdicts: dict[tuple[str, str, str], bool] = {}
        self._clients: dict[str, str] = {}

    async def web_staff(self, token: str, now: float) -> bool:
        """Whether a web login cookie's token verifies (remembered for WEB_VERIFIED_S)."""
        key = hashlib.sha256(token.encode()).digest()
        until = self._web_verified.get(key)
        if until is not None and now < until:
            self._web_verified.move_to_end(key)
            return True
        if not await self.verify(token):
            self._web_verified.pop(key, None)
            return False
        self._web_verified[key] = now + WEB_VERIFIED_S
        self._web_verified.move_to_end(key)
        while len(self._web_verified) > WEB_VERIFIED_MAX:
            self._web_verified.popitem(last=False)
        return True

    def limited(self, scope: Scope) -> bool:
        path: str = scope["path"]
        key = (scope.get("method", ""), path, scope.get("root_path", ""))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = not exempt(path) and not any(
                r.matches(scope)[0] is Match.FULL for r in self.token_routes
            )
            if len(path) <= VERDICT_PATH_MAX:
                _remember(self._verdicts, key, verdict, VERDICTS_MAX)
        return verdict

    def client(self, scope: Scope) -> str:
        peer = scope.get("client")
        address = str(peer[0]) if peer else "unknown"
        if self.trusted:
            forwarded = [
                v.decode("latin-1") for n, v in scope["headers"] if n == b"x-forwarded-for"
            ]
            return client_key(forwarded_client(address, forwarded, self.trusted))
        key = self._clients.get(address)
        if key is None:
            key = client_key(address)
            _remember(self._clients, address, key, CLIENTS_MAX)
        return key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limited(scope):
            await self.app(scope, receive, send)
            return
        now = self.clock()
        web = web_login_of(scope)
        if web is not None and await self.web_staff(web, now):
            await self.app(scope, receive, send)  # a logged-in person: not the address's
            return
        wait = self.table.take(self.client(scope), now)
        if wait > 0:
            token = bearer_of(scope)
            if token is None or not await self.verify(token):
                self.on_reject("rate_limited")
                retry = str(max(1, math.ceil(wait))).encode()
                await send_problem(
                    send,
                    429,
                    "too many requests from this client; retry after the time given",
                    "rate_limited",
                    [(b"retry-after", retry)],
                )
                return
        await self.app(scope, receive, send)
