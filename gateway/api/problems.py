"""One error shape for every 4xx and 5xx: RFC 9457 problem details.

Every refusal the API makes, from a route, a dependency, the validator or a middleware below
FastAPI (body limit, read timeouts, rate limit), answers ``application/problem+json`` with the
same members, so the app has one thing to parse:

    {"status": 404, "title": "Not Found", "code": "not_found",
     "detail": "no session 'ps_…'", "errors": []}

``code`` is a stable machine token (the app branches on it, never on ``detail``); ``errors``
lists the offending fields of a 422 (``loc``/``msg``/``type``, as pydantic names them) and is
empty otherwise. ``detail`` is for people and may change wording.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.types import Send

MEDIA_TYPE = "application/problem+json"

# The code each status gets when the raiser names none.
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}


class FieldError(BaseModel):
    """One offending field of a 422: where (``loc``), what is wrong (``msg``), and its kind."""

    loc: list[str | int] = Field(description="path to the field, e.g. ['query', 'plate']")
    msg: str
    type: str = Field(description="machine kind, e.g. 'missing', 'less_than_equal'")
    input: Any = Field(default=None, description="the offending value (JSON-safe, cut)")
    ctx: dict[str, Any] | None = Field(default=None, description="the bound that was broken")


class Problem(BaseModel):
    """The body of every error response (RFC 9457 problem details)."""

    status: int = Field(description="the HTTP status, repeated")
    title: str = Field(description="the status's reason phrase")
    code: str = Field(description="stable machine token: branch on this, not on detail")
    detail: str = Field(description="what went wrong, for people")
    errors: list[FieldError] = Field(
        default_factory=list, description="offending fields (422), else empty"
    )


def title_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


MAX_DETAIL_CHARS = 500


def _text(value: str) -> str:
    """*value* as text JSON can always carry (a lone surrogate from a hostile body is escaped),
    bounded: a detail never grows with the input."""
    cut = value[:MAX_DETAIL_CHARS] + ("…" if len(value) > MAX_DETAIL_CHARS else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def problem_body(
    status: int,
    detail: str,
    code: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The members; *extensions* (RFC 9457 extension members, e.g. ``due_fen``) come first so
    they can never replace one of the five."""
    return {
        **(extensions or {}),
        "status": status,
        "title": title_of(status),
        "code": code or DEFAULT_CODES.get(status, "error"),
        "detail": _text(detail),
        "errors": errors or [],
    }


def problem(
    status: int,
    detail: str,
    code: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    return JSONResponse(
        problem_body(status, detail, code, errors, extensions),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    code: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer a problem from raw ASGI (middlewares that run below FastAPI)."""
    body = json.dumps(problem_body(status, detail, code), separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ProblemError(Exception):
    """Raise from a route to answer a problem with a specific ``code``."""

    def __init__(
        self,
        status: int,
        detail: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers
        self.errors = errors
        self.extensions = extensions


def field_error(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    """One entry of ``errors``, for a rule the validator cannot see (a cross-field rule)."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def invalid(detail: str, kind: str, *locs: tuple[str | int, ...]) -> ProblemError:
    """A 422 naming every field a cross-field rule involves (``code`` is *kind*)."""
    return ProblemError(422, detail, kind, errors=[field_error(loc, detail, kind) for loc in locs])


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def responses(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer these error statuses, all Problem in
    ``application/problem+json`` only (no ``model=``: FastAPI would add an ``application/json``
    the server never sends). *why* adds a description per status: ``s409="not connected"``."""
    return {
        s: {
            "description": why.get(f"s{s}", title_of(s)),
            "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }
        for s in statuses
    }
