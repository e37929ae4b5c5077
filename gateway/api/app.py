"""The FastAPI application: public vacancy API, token-protected registry, operations."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import (
    cameras,
    cases,
    charger_registry,
    chargers,
    detections,
    devices,
    ops,
    public,
    sessions,
    tariffs,
    telemetry,
)
from gateway.api.docs import mount_docs
from gateway.api.rejections import RejectionLog, validation_handler
from gateway.api.state import AppState

log = logging.getLogger(__name__)


class BodyLimit:
    """Refuse request bodies over *limit* bytes with 413, whether or not they declare a length
    (a hostile client can lie or stream forever). *prefixes* give paths their own limit
    (plate cameras push pictures: ``/cameras/`` takes ``[cameras] max_body_bytes``)."""

    def __init__(
        self, app: ASGIApp, limit: int, prefixes: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self.app = app
        self.default = limit
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = next((n for p, n in self.prefixes if path.startswith(p)), self.default)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send)
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
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = b'{"detail":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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
    app.include_router(public.router)
    app.include_router(tariffs.router)
    app.include_router(sessions.router)
    app.include_router(detections.router)
    app.include_router(cases.router)
    app.include_router(chargers.router)
    app.include_router(charger_registry.router)
    app.include_router(devices.router)
    app.include_router(telemetry.router)
    app.include_router(ops.router)
    app.include_router(cameras.router)

    app.add_exception_handler(
        RequestValidationError, validation_handler(RejectionLog(state.metrics.api_rejected))
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
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(
        BodyLimit,
        limit=state.max_body_bytes,
        prefixes=((cameras.PREFIX + "/", state.camera_body_bytes),),
    )
    return app
