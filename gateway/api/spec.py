"""The OpenAPI document says what the server does: every error status an operation can answer
is listed on it, each as a Problem in ``application/problem+json``.

The statuses that follow from an operation's shape are added here, once, so no route can
forget them: 422 wherever there are parameters or a body (replacing FastAPI's
``HTTPValidationError``, a shape the server never sends), 400/408/413/503 with a body (not
JSON, too slow, too large, too many unauthenticated bodies at once), 401/403 with a bearer
token, 404 with a path parameter, and 429 on the public routes (a per-client rate limit). What
only a route knows (409, 402, 504, a 404 for an id in the query) it declares itself with
``problems.responses``. A response a route documents with its own content (``/readyz``'s 503)
is left as it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.api.problems import MEDIA_TYPE, PROBLEM_REF, Problem, title_of

PUBLIC_PREFIX = "/api/v1/"  # public operations under it are rate limited per client
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_WHY = {
    400: "the body is not what its content type says (not UTF-8, not JSON)",
    401: "no bearer token, or an invalid or revoked one",
    403: "the token's role may not do this",
    404: "no such resource",
    408: "the body arrived too slowly",
    413: "the body is larger than the configured limit",
    422: "a parameter or the body is not valid: `errors` names the fields",
    429: "too many requests from this client: retry after `Retry-After` seconds",
    503: "too many unauthenticated bodies in flight: retry later",
}


def operation_statuses(path: str, op: dict[str, Any]) -> set[int]:
    """The error statuses *op* can answer because of its shape."""
    out: set[int] = set()
    params = op.get("parameters") or []
    body = "requestBody" in op
    if params or body:
        out.add(422)
    if body:
        out |= {400, 408, 413, 503}
    security = op.get("security") or []
    optional = {} in security  # a token is welcome (a fuller view) but not required
    if security:
        out.add(401)
        if not optional:
            out.add(403)
    if (not security or optional) and path.startswith(PUBLIC_PREFIX):
        out.add(429)
    if any(p.get("in") == "path" for p in params):
        out.add(404)
    return out


def _is_default(response: dict[str, Any]) -> bool:
    """FastAPI's own content (or none): ours to replace with Problem."""
    content = response.get("content")
    if not content:
        return True
    if MEDIA_TYPE in content:
        return False
    return json.dumps(content) in (
        json.dumps({"application/json": {"schema": {"$ref": _FASTAPI_422}}}),
        json.dumps({"application/json": {"schema": {}}}),
    )


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add Problem to *schema* (in place) for every error status of every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            wanted = operation_statuses(path, op) | {int(s) for s in responses if s[0] in "45"}
            for status in sorted(wanted):
                r = responses.setdefault(str(status), {})
                if not r.get("description"):
                    r["description"] = _WHY.get(status, title_of(status))
                elif r["description"] == "Validation Error":
                    r["description"] = _WHY[422]
                if _is_default(r):
                    r["content"] = {MEDIA_TYPE: {"schema": PROBLEM_REF}}
                if status == 401:
                    r.setdefault("headers", {})["WWW-Authenticate"] = {
                        "description": "the Bearer challenge",
                        "schema": {"type": "string"},
                    }
                if status == 429:
                    r.setdefault("headers", {})["Retry-After"] = {
                        "description": "seconds to wait",
                        "schema": {"type": "integer"},
                    }
    text = json.dumps(schema.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in text:
            components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve *app*'s OpenAPI document with the Problems added (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_Template = tuple[int, re.Pattern[str], list[str]]


def _templates(schema: dict[str, Any]) -> list[_Template]:
    out = []
    for path, item in schema.get("paths", {}).items():
        parts = re.split(r"(\{[^}]+\})", path)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        methods = sorted(m.upper() for m in item if m in _HTTP_METHODS)
        out.append((path.count("{"), re.compile(f"^{regex}$"), methods))
    return sorted(out, key=lambda t: t[0])  # a literal path before a parameter: as routed


_HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options"}


def allowed_methods(app: FastAPI, path: str) -> list[str] | None:
    """The methods the OpenAPI document lists for *path* (the template routing picks: the
    literal ``/cases/callback`` before ``/cases/{case_id}``); None off the document."""
    templates: list[_Template] | None = getattr(app.state, "openapi_templates", None)
    if templates is None:
        templates = app.state.openapi_templates = _templates(app.openapi())
    for _, regex, methods in templates:
        if regex.match(path):
            return methods
    return None
