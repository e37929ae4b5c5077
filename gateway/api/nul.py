"""Text a database cannot store, refused up front: a NUL (U+0000) in a request's path, query
or JSON body (the escape ``\u0000``) is a 422 (a value that is not valid, as the spec lists
for every operation with parameters or a body) before any route runs (PostgreSQL refuses NUL in
text, SQLite keeps it: the answer must not depend on the backend, and a route must not take it
for a database failure), and a value the database still refuses (a number out of a column's
range) is a 422, never a 500."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import problem, send_problem

__all__ = ["NoNul", "json_has_nul", "unstorable_handler"]

log = logging.getLogger(__name__)


# ``\u0000`` not itself escaped: an odd run of backslashes before the ``u``.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def json_has_nul(body: bytes) -> bool:
    """Whether a JSON text carries a NUL character (raw NUL bytes are not JSON at all)."""
    return b"\\u0000" in body and _JSON_NUL.search(body) is not None


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query.lower()


class NoNul:
    """422 for a NUL in the path or the query string (counted as ``nul_character``)."""

    def __init__(self, app: ASGIApp, count: Callable[[str], None]) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            self.count("nul_character")
            await send_problem(send, 422, "a NUL character is not accepted", "nul_character")
            return
        await self.app(scope, receive, send)


def unstorable_handler(
    count: Callable[[str], None],
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """The handler for ``sqlalchemy.exc.DataError``: the database refused a value the request
    carried; the request is at fault, and nothing was written (its transaction rolled back)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        count("unstorable_value")
        # Not the path (a camera's carries its secret), not the value: the kind of refusal.
        log.warning("%s: a value the database refused (%s)", request.method,
                    type(getattr(exc, "orig", exc)).__name__)  # fmt: skip
        return problem(
            422,
            "a value could not be stored (a NUL character, or a number out of range)",
            "unstorable_value",
        )

    return handler
