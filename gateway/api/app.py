"""The FastAPI application: public vacancy API, token-protected registry, operations.

Every refusal answers a Problem (gateway.api.problems): the handlers below turn HTTP
exceptions (routes, routing's 404/405, security), ProblemError, validation errors and the
unexpected into one shape, and the OpenAPI document lists them (gateway.api.spec)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import (
    audit,
    bodycam_registry,
    bulk_import,
    cameras,
    cases,
    charger_registry,
    chargers,
    commission,
    detections,
    devices,
    drones,
    field,
    lanes,
    lifecycle,
    ops,
    public,
    replace,
    sessions,
    spec,
    tariffs,
    telemetry,
)
from gateway.api.docs import mount_docs
from gateway.api.limits import (
    BodyGate,
    RateLimit,
    document,
    has_body,
    token_routes,
    token_verifier,
)
from gateway.api.nul import NoNul, json_has_nul, unstorable_handler
from gateway.api.problems import ProblemError, problem, send_problem
from gateway.api.rejections import RejectionLog, safe_text, validation_handler
from gateway.api.state import AppState
from gateway.api.throttle import RateTable
from gateway.web import pages as web_pages

log = logging.getLogger(__name__)
ROUTERS = (
    public.router,  # first: routing tries routers in order, and these are the busiest paths
    bodycam_registry.router,  # before devices: /devices/bodycams is not a device id
    tariffs.router,
    sessions.router,
    detections.router,
    cases.router,
    chargers.router,
    charger_registry.router,
    devices.router,
    replace.router,
    lanes.router,
    telemetry.router,
    ops.router,
    cameras.router,
    field.router,
    drones.router,
    audit.router,
    commission.router,
    lifecycle.router,
    bulk_import.router,
)


class BodyLimit:
    """Refuse request bodies over *limit* bytes with 413, whether or not they declare a length
    (a hostile client can lie or stream forever). *prefixes* give paths their own limit
    (plate cameras push pictures: ``/cameras/`` takes ``[cameras] max_body_bytes``). A JSON
    body with a NUL character in it is a 422 (see ``gateway.api.nul``)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        prefixes: tuple[tuple[str, int], ...] = (),
        count: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.app = app
        self.default = limit
        self.prefixes = prefixes
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope):
            # No length and no chunks: HTTP/1.1 has no body to bound (h11 reads none).
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        own = next((n for p, n in self.prefixes if path.startswith(p)), None)
        limit = self.default if own is None else own
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send, limit)
                    return
        # Buffer the (bounded) body before the app sees it, so an oversized stream is refused
        # cleanly instead of failing half-way through parsing.
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await self._refuse(send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        # (Paths with a limit of their own are devices' pushes, whose parsers count what they
        # refuse, NUL included.)
        if own is None and _is_json(scope) and json_has_nul(b"".join(chunks)):
            self.count("nul_character")
            await send_problem(send, 422, "a NUL character is not accepted", "nul_character")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        await send_problem(send, 413, f"the request body is larger than {limit} bytes", "too_large")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="citygate",
        version="0.1.0",
        description=(
            "Vacancies of the town's car parks and on-street berths (public, read-only), "
            "and the device registry for field technicians (bearer token)."
        ),
        docs_url=None,  # served from the package by mount_docs: no CDN on offline networks
        redoc_url=None,
    )
    mount_docs(app)
    app.state.citygate = state
    # The public routes straight into the app's own (they are whole: full paths, tags, no
    # dependencies added at inclusion): an included router is matched twice a request, once
    # to find it and once to find the route in it, and /sites and /map are the busiest paths.
    app.router.routes.extend(public.router.routes)
    for router in ROUTERS:
        if router is not public.router:
            app.include_router(router)
    app.include_router(web_pages.router)  # the web page (gateway.web, docs/web.md)

    spec.install(app)

    app.add_exception_handler(
        RequestValidationError, validation_handler(RejectionLog(state.metrics.api_rejected))
    )
    app.add_exception_handler(DataError, unstorable_handler(_counter(state)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's HTTPException is a subclass: routes, security, routing's 404 and 405.
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        allowed = spec.allowed_methods(app, request.url.path) if exc.status_code == 405 else None
        if allowed:
            # Starlette names the methods of the first route on the path only: a path served
            # by two routers (GET and POST /api/v1/chargers) has more. Say what the spec says.
            headers["Allow"] = ", ".join(allowed)
        return problem(exc.status_code, safe_text(detail), headers=headers)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem(
            exc.status,
            exc.detail,
            exc.code,
            errors=exc.errors,
            headers=exc.headers,
            extensions=exc.extensions,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error on %s %s: %s",
            request.method,
            cameras.redacted(request.url.path),  # a camera's URL carries its secret
            type(exc).__name__,
            exc_info=exc,
        )
        return problem(500, "internal error", "internal")  # never the exception's text

    app.add_middleware(
        BodyLimit,
        limit=state.max_body_bytes,
        prefixes=(
            (cameras.PREFIX + "/", state.camera_body_bytes),
            (bulk_import.PATH, state.bulk_import.max_file_bytes),
        ),
        count=_counter(state),
    )
    add_limits(app, state)
    app.add_middleware(NoNul, count=_counter(state))  # outermost: refused before anything
    return app


def _counter(state: AppState) -> Callable[[str], None]:
    return lambda reason: state.metrics.api_rejected.labels(reason).inc()


def add_limits(app: FastAPI, state: AppState) -> None:
    """The admission limits, outside BodyLimit: the rate limit first (cheapest), then the cap
    on bodies in flight (gateway.api.limits)."""
    api, rejected = state.api, state.metrics.api_rejected
    routes = [r for router in ROUTERS for r in router.routes]
    tokened = token_routes(routes)
    document(routes, tokened)

    def reject(reason: str) -> None:
        rejected.labels(reason).inc()

    app.add_middleware(
        BodyGate,
        unauthenticated=api.max_unauthenticated_bodies,
        authenticated=api.max_authenticated_bodies,
        on_reject=reject,
    )
    if api.rate_limit_per_s > 0:
        app.add_middleware(
            RateLimit,
            table=RateTable(api.rate_limit_per_s, api.rate_limit_burst, api.rate_limit_clients),
            token_routes=tokened,
            verify=token_verifier(state.sessions),
            on_reject=reject,
            trusted=[ipaddress.ip_network(n, strict=False) for n in api.trusted_proxies],
        )
