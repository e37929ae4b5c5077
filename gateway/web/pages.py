"""The web page's routes under ``/web``: the static files, login and logout; the map
(``gateway.web.map_page``), the posted tariffs (``gateway.web.tariff_page``) and the charger
health pages (``gateway.web.charger_pages``) have their own modules, and ``router`` carries
them all. Forms are read through the app's body limit and NUL checks, then
``session.parse_form`` (bounded) and the CSRF check."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.directory.tokens import TokenError, TokenInfo, verify_token
from gateway.web import (
    assets,
    case_pages,
    charger_pages,
    field_page,
    lane_pages,
    map_page,
    tariff_page,
)
from gateway.web.base import StateDep, error_page, read_form, render, set_cookie
from gateway.web.session import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    HOME,
    FormError,
    new_csrf,
    safe_next,
    token_shaped,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/web", include_in_schema=False)


@router.get("/static/{digest}/{name}")
async def static(digest: str, name: str, request: Request) -> Response:
    asset = assets.find(digest, name)
    if asset is None:
        return Response("not found", 404, media_type="text/plain")
    headers = {
        "Cache-Control": assets.CACHE_CONTROL,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse(HOME, 303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), message="")


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    try:
        form = await read_form(request, state)
    except FormError as exc:
        return render(request, "login.html", exc.status, next=HOME, message=exc.message)
    target = safe_next(form.get("next"))
    token = form.get("token", "").strip()
    info: TokenInfo | None = None
    if token_shaped(token):
        try:
            async with state.sessions() as db:
                info = await verify_token(db, token)
        except TokenError as exc:
            state.metrics.api_auth_failures.labels(exc.reason).inc()
    else:
        state.metrics.api_auth_failures.labels("malformed").inc()
    if info is None:
        return render(
            request,
            "login.html",
            401,
            next=target,
            message="令牌无效或已吊销。 · Invalid or revoked token.",
        )
    log.info("web login: token %s (%s)", info.id, info.role.value)  # the id, never the token
    response = RedirectResponse(target, 303)
    set_cookie(response, request, AUTH_COOKIE, token)
    set_cookie(response, request, CSRF_COOKIE, new_csrf())
    return response


@router.post("/logout")
async def logout(request: Request, state: StateDep) -> Response:
    try:
        await read_form(request, state)
    except FormError as exc:
        return error_page(request, exc.status, exc.message)
    response = RedirectResponse("/web/login", 303)
    set_cookie(response, request, AUTH_COOKIE, "", max_age=0)
    set_cookie(response, request, CSRF_COOKIE, new_csrf())
    return response


router.include_router(map_page.router)
router.include_router(tariff_page.router)
router.include_router(charger_pages.router)
router.include_router(case_pages.router)
router.include_router(lane_pages.router)
router.include_router(field_page.router)
