"""What every page of ``gateway.web`` shares: the templates, the security headers, the
CSRF cookie, the login check (``visitor``, ``guard``: to login, or a 403 page) and the bounded,
CSRF-checked form reader. Refusals are HTML pages with a 4xx status."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote as urlquote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenError, TokenInfo, verify_token
from gateway.web import assets
from gateway.web.session import (
    AUTH_COOKIE,
    COOKIE_PATH,
    CSRF_COOKIE,
    CSRF_FIELD,
    HOME,
    FormError,
    csrf_ok,
    new_csrf,
    parse_form,
    token_shaped,
    usable_csrf,
)

StateDep = Annotated[AppState, Depends(get_state)]

env = Environment(
    loader=PackageLoader("gateway.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # no file look-ups on the event loop: templates are read here, once
)
env.globals["asset"] = assets.url
for _name in env.list_templates():
    env.get_template(_name)

# The page loads its own scripts and styles only, is never framed, posts only to itself.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_HEADINGS = {
    400: "请求有误 · Bad request",
    401: "未登录 · Not logged in",
    403: "无权访问 · Forbidden",
    404: "未找到 · Not found",
    409: "状态不符 · Conflict",
    413: "内容过大 · Too large",
    415: "格式不支持 · Unsupported form",
    422: "内容无效 · Not valid",
    503: "暂不可用 · Unavailable",
}


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _csrf_of(request: Request) -> tuple[str, bool]:
    """The visitor's CSRF value, and whether it is new (then the response sets it)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    return (cookie, False) if usable_csrf(cookie) and cookie else (new_csrf(), True)


def render(
    request: Request, template: str, code: int = 200, csrf: str | None = None, **ctx: Any
) -> HTMLResponse:
    """A page (or fragment) with the security headers, setting the CSRF cookie when the
    visitor had none (or *csrf* was rotated)."""
    fresh = csrf is not None
    if csrf is None:
        csrf, fresh = _csrf_of(request)
    ctx.setdefault("who", None)
    ctx.setdefault("page", "")
    html = env.get_template(template).render(csrf=csrf, **ctx)
    response = HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)
    if fresh:
        set_cookie(response, request, CSRF_COOKIE, csrf)
    return response


def error_page(
    request: Request, status: int, message: str, who: TokenInfo | None = None
) -> HTMLResponse:
    heading = _HEADINGS.get(status, "出错 · Error")
    return render(
        request, "error.html", status, who=who, status=status, heading=heading, message=message
    )


async def visitor(request: Request, state: AppState) -> TokenInfo | None:
    """Who the login cookie names, if it holds a token that verifies now."""
    raw = request.cookies.get(AUTH_COOKIE)
    if not token_shaped(raw):
        return None
    assert raw is not None
    try:
        async with state.sessions() as db:
            return await verify_token(db, raw)
    except TokenError as exc:
        state.metrics.api_auth_failures.labels(exc.reason).inc()
        return None


async def guard(request: Request, state: AppState, roles: frozenset[Role]) -> TokenInfo | Response:
    """The visitor, or the answer instead of the page: to login (and back to the page asked
    for, when it was a GET), or a 403 page. htmx is told to load the login page whole."""
    who = await visitor(request, state)
    if who is None:
        back = request.url.path if request.method == "GET" else HOME
        login = f"/web/login?next={urlquote(back)}"
        if request.headers.get("hx-request") == "true":
            return Response("login required", 401, {"HX-Redirect": login}, "text/plain")
        return RedirectResponse(login, 303)
    if who.role not in roles:
        state.metrics.api_auth_failures.labels("forbidden").inc()
        names = " / ".join(sorted(r.value for r in roles))
        return error_page(
            request,
            403,
            f"此页面需要以下角色之一：{names}；当前令牌的角色是 {who.role.value}。 · "
            f"This page needs one of the roles {names}; this token's role is {who.role.value}.",
            who,
        )
    return who


async def read_form(request: Request, state: AppState) -> dict[str, str]:
    """The posted form, CSRF checked: FormError (a 4xx) otherwise."""
    try:
        form = parse_form(await request.body(), request.headers.get("content-type"))
    except FormError as exc:
        reason = {413: "too_large", 422: "nul_character"}.get(exc.status, "bad_form")
        state.metrics.api_rejected.labels(reason).inc()
        raise
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        state.metrics.api_rejected.labels("csrf").inc()
        raise FormError(
            403,
            "表单已过期或来自其他网站，请刷新页面后重试。 · The form has expired or came from "
            "another site: reload the page and try again.",
        )
    return form


async def posted(
    request: Request, state: AppState, roles: frozenset[Role]
) -> tuple[TokenInfo, dict[str, str]] | Response:
    """A form posted by one of *roles*: the visitor and the form (CSRF checked), or the page
    to answer instead (the login, a 403, or the form's refusal as a 4xx page)."""
    who = await guard(request, state, roles)
    if not isinstance(who, TokenInfo):
        return who
    try:
        return who, await read_form(request, state)
    except FormError as exc:
        return error_page(request, exc.status, exc.message, who)


def set_cookie(
    response: Response, request: Request, key: str, value: str, max_age: int | None = None
) -> None:
    """Set one of the page's cookies: HttpOnly, SameSite=Strict, Path=/web, Secure over TLS."""
    response.set_cookie(
        key=key,
        value=value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )
