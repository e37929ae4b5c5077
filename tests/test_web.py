"""The web page over plain HTTP against a running gateway: cookies and their flags, CSRF on
every form, roles (a 403 page, not a 500), hostile forms and cookies (a 4xx, never a 5xx),
static assets with immutable cache headers, the tariffs and the quote form. The browser tests
are tests/test_web_browser.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.directory.town import load_town
from gateway.web import assets
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOWN = load_town(None)
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    # both backends: tokens, and the zones the map draws, are read from the database
    settings = gateway_settings(module_db_url, mosquitto, api={"sse_keepalive_s": 0.2})
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def set_cookies(r: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of a response by cookie name (the whole header)."""
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}


def csrf_of(client: httpx.AsyncClient) -> str:
    value = client.cookies.get("cg_csrf", path="/web")
    assert value, "no CSRF cookie"
    return value


async def login(http: httpx.AsyncClient, token: str) -> httpx.Response:
    await http.get("/web/login")
    return await http.post(
        "/web/login",
        data={"csrf": csrf_of(http), "token": token, "next": "/web/tariffs"},
    )


async def test_pages_need_a_login(http: httpx.AsyncClient) -> None:
    for page in ("/web/map", "/web/tariffs"):
        r = await http.get(page)
        assert r.status_code == 303 and r.headers["location"] == f"/web/login?next={page}"
    assert (await http.get("/web/")).headers["location"] == "/web/map"
    r = await http.get("/web/map/stream")
    assert r.status_code == 401
    r = await http.post("/web/tariffs/quote", data={"site_id": "x"})
    assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/map"
    r = await http.post("/web/tariffs/quote", data={"site_id": "x"}, headers={"hx-request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"] == "/web/login?next=/web/map"


async def test_login_page_sets_a_strict_csrf_cookie(http: httpx.AsyncClient) -> None:
    r = await http.get("/web/login")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>" in r.text and 'for="token"' in r.text
    csrf = set_cookies(r)["cg_csrf"]
    assert "HttpOnly" in csrf and "SameSite=strict" in csrf and "Path=/web" in csrf
    assert "Secure" not in csrf  # plain HTTP here
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


async def test_good_token_logs_in_with_an_httponly_strict_cookie(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    token = tokens["inspector"]
    r = await login(http, token)
    assert r.status_code == 303 and r.headers["location"] == "/web/tariffs"
    auth = set_cookies(r)["cg_web"]
    assert auth.startswith(f"cg_web={token};") or auth.startswith(f'cg_web="{token}";')
    assert "HttpOnly" in auth and "SameSite=strict" in auth and "Path=/web" in auth
    page = await http.get("/web/tariffs")
    assert page.status_code == 200
    assert token not in page.text and token.split("_", 2)[2] not in page.text  # nor its secret
    assert "inspector" in page.text and "退出" in page.text


async def test_secure_cookies_over_tls(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    # uvicorn takes X-Forwarded-Proto from a trusted proxy (loopback): the page is served over
    # TLS as far as it can tell, as behind the bureau's reverse proxy.
    tls = {"x-forwarded-proto": "https"}
    r = await http.get("/web/login", headers=tls)
    assert "Secure" in set_cookies(r)["cg_csrf"]
    csrf = r.cookies["cg_csrf"]  # a client over plain HTTP would not send a Secure cookie back
    r = await http.post(
        "/web/login",
        data={"csrf": csrf, "token": tokens["operator"]},
        headers={**tls, "cookie": f"cg_csrf={csrf}"},
    )
    assert r.status_code == 303 and "Secure" in set_cookies(r)["cg_web"]


async def test_bad_token_is_refused(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for bad in ("nonsense", "cg_0000_notasecret", tokens["inspector"] + "x", ""):
        r = await login(http, bad)
        assert r.status_code == 401, bad
        assert "cg_web" not in set_cookies(r)
        assert "令牌无效" in r.text and "Invalid or revoked token" in r.text
        if bad:
            assert bad not in r.text


async def test_login_without_or_with_a_wrong_csrf_is_403(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await http.get("/web/login")
    r = await http.post("/web/login", data={"token": tokens["inspector"]})
    assert r.status_code == 403 and "cg_web" not in set_cookies(r)
    r = await http.post("/web/login", data={"token": tokens["inspector"], "csrf": "x" * 43})
    assert r.status_code == 403
    # a field that equals no cookie: a fresh client without the cookie
    async with httpx.AsyncClient(base_url=str(http.base_url)) as other:
        r = await other.post(
            "/web/login", data={"token": tokens["inspector"], "csrf": csrf_of(http)}
        )
        assert r.status_code == 403 and "cg_web" not in set_cookies(r)


async def test_logout_needs_csrf_and_ends_the_login(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["operator"])
    assert (await http.get("/web/map")).status_code == 200
    r = await http.post("/web/logout", data={"nothing": ""})
    assert r.status_code == 403
    assert (await http.get("/web/map")).status_code == 200  # still logged in
    r = await http.post("/web/logout", data={"csrf": csrf_of(http)})
    assert r.status_code == 303 and r.headers["location"] == "/web/login"
    assert "Max-Age=0" in set_cookies(r)["cg_web"]
    assert (await http.get("/web/map")).status_code == 303


async def test_roles_decide_what_a_page_shows(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for role in ("device", "payments"):
        await login(http, tokens[role])
        for page in ("/web/map", "/web/tariffs"):
            r = await http.get(page)
            assert r.status_code == 403, (role, page)
            assert "<title>403" in r.text and role in r.text and "<main" in r.text
        assert (await http.get("/web/map/stream")).status_code == 403
        r = await http.post(
            "/web/tariffs/quote", data={"csrf": csrf_of(http), "site_id": TOWN.sites[0].id}
        )
        assert r.status_code == 403
    seen = {}
    for role in ("inspector", "operator", "technician", "admin"):
        await login(http, tokens[role])
        r = await http.get("/web/map")
        assert r.status_code == 200, role
        seen[role] = ('class="charger' in r.text, "执法记录仪 ·" in r.text,
                      'href="/web/lanes#lane-' in r.text)  # fmt: skip
    # chargers as GET /api/v1/chargers admits; the field as GET /api/v1/field; lanes as
    # GET /api/v1/lanes
    assert seen == {
        "inspector": (True, True, True),
        "operator": (True, True, True),
        "technician": (True, False, True),
        "admin": (True, True, True),
    }


async def test_map_lists_every_site_with_counts(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["inspector"])
    r = await http.get("/web/map")
    assert "WGS-84" in r.text and "停车资源一张图" in r.text
    for site in TOWN.sites:
        row = re.search(rf'<tr id="site-{site.id}">(.*?)</tr>', r.text, re.S)
        assert row and site.name in row.group(1), site.id
        assert f'id="m-{site.id}"' in r.text
        cap = re.search(r'class="n-cap"[^>]*>(\d+)<', row.group(1))
        assert cap and int(cap.group(1)) == site.capacity
    assert r.text.count('class="street"') == sum(1 for s in TOWN.sites if s.kind == "on_street")
    assert r.text.count('class="zone ') == len(TOWN.zones)
    # the town's outline: every street of the town file, main streets apart
    for st in TOWN.streets:
        assert re.search(
            rf'<path class="road {st.kind.value}" d="M[^"]+"><title>{st.name}<', r.text
        )
    # a mark beside each car park with lanes, naming each lane and its phase
    with_lanes = {ln.site for ln in TOWN.lanes}
    assert r.text.count('<g class="lane') == len(with_lanes)
    for ln in TOWN.lanes:
        assert f"{ln.id} " in r.text


async def test_map_stream_sends_every_site_as_html(
    http: httpx.AsyncClient, tokens: dict[str, str], gw: Any
) -> None:
    await login(http, tokens["operator"])
    seen: set[str] = set()
    async with http.stream("GET", "/web/map/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert "web-map" in gw.services.bus.depths()
        async for line in r.aiter_lines():
            if line.startswith("event: site-"):
                seen.add(line.removeprefix("event: site-"))
            elif line.startswith("data: "):
                assert 'class="counts"' in line and "<script" not in line
            if len(seen) == len(TOWN.sites):
                break
    assert seen == {s.id for s in TOWN.sites}
    # the client went away: its bus subscription ends (keepalives every 0.2 s notice)
    bus = gw.services.bus
    await wait_for(lambda: "web-map" not in bus.depths(), 5, what="the stream to unsubscribe")


async def test_tariffs_in_zh_and_en_and_a_quote(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["inspector"])
    r = await http.get("/web/tariffs")
    card = re.search(
        r'<article class="card tariff"(?:(?!</article>).)*id="tariff-cp-shiminting".*?</article>',
        r.text,
        re.S,
    )
    assert card, "no posted tariff for 市民大厅"
    text = card.group(0)
    assert "收费标准" in text and "每次停车前60分钟免费" in text
    assert "in force from" in text and "the first 60 min of every stay are free" in text
    assert "浙宁商厦停车场" not in text  # another site's rule is not posted here
    assert len(re.findall(r'<li id="tariff-', r.text)) == len(TOWN.sites)  # every site listed
    assert "B类" not in text and "Class B" not in text
    form = {
        "csrf": csrf_of(http),
        "site_id": "cp-shiminting",
        "vehicle_class": "small",
        "entry": "2026-08-03T09:00",
        "exit": "2026-08-03T11:00",
    }
    api = await http.post(
        "/api/v1/quotes",
        json={"site_id": "cp-shiminting", "vehicle_class": "small",
              "entry": "2026-08-03T09:00:00+08:00", "exit": "2026-08-03T11:00:00+08:00"},
    )  # fmt: skip
    total = api.json()["total_fen"]
    assert total > 0
    yuan = f"¥{total // 100}.{total % 100:02d}"
    r = await http.post("/web/tariffs/quote", data=form, headers={"hx-request": "true"})
    assert r.status_code == 200 and yuan in r.text and "<html" not in r.text
    r = await http.post("/web/tariffs/quote", data=form)  # without htmx: the whole page
    assert r.status_code == 200 and yuan in r.text and "<title>" in r.text
    for bad, say in (
        ({"exit": "2026-08-03T08:00"}, "exit is before entry"),
        ({"entry": "tomorrow"}, "Give the arrival"),
        ({"site_id": "nowhere"}, "Choose a site"),
        ({"vehicle_class": "tank"}, "Cannot quote"),
        ({"exit": "2029-08-03T08:00"}, "Cannot quote"),
    ):
        r = await http.post(
            "/web/tariffs/quote", data={**form, **bad}, headers={"hx-request": "true"}
        )
        assert r.status_code == 422 and say in r.text, (bad, r.text)
    r = await http.post("/web/tariffs/quote", data={**form, "csrf": ""})
    assert r.status_code == 403


async def test_hostile_forms_and_cookies_get_a_4xx(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str]
) -> None:
    await login(http, tokens["inspector"])
    csrf = csrf_of(http)
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (b"csrf=" + csrf.encode() + b"&token=" + b"a" * 20_000, FORM, 413),  # over the form cap
        (b"x=" + b"a" * (gw.settings.api.max_body_bytes + 10), FORM, 413),  # over the body limit
        (f"csrf={csrf}&token=cg_a%00b_c".encode(), FORM, 422),  # an escaped NUL
        (f"csrf={csrf}&token=\x00".encode(), FORM, 422),  # a raw NUL byte
        (f"csrf={csrf}&token=%FF%FE".encode(), FORM, 400),  # not UTF-8
        ("token=停车".encode(), FORM, 400),  # not urlencoded ASCII
        (b"&".join(b"f%d=1" % i for i in range(40)), FORM, 413),  # too many fields
        (f"csrf={csrf}&csrf={csrf}".encode(), FORM, 400),  # a field twice
        (f'{{"csrf": "{csrf}"}}'.encode(), {"content-type": "application/json"}, 415),
        (f"csrf={csrf}".encode(), {"content-type": "multipart/form-data; boundary=x"}, 415),
    ]
    for path in ("/web/login", "/web/logout", "/web/tariffs/quote"):
        for body, headers, status in cases:
            r = await http.post(path, content=body, headers=headers)
            assert r.status_code == status, (path, body[:40], r.status_code, r.text[:200])
    for cookie in (
        "cg_web=garbage",
        "cg_web=cg_0_0",
        'cg_web="cg_\\"x_y"',
        "cg_web=" + "a" * 3000,
        "cg_csrf=%00; cg_web=%FF",
        "cg_web",
        ";;;=;",
    ):
        async with httpx.AsyncClient(base_url=str(http.base_url)) as fresh:
            r = await fresh.get("/web/map", headers={"cookie": cookie})
            assert r.status_code == 303, (cookie, r.status_code)
            r = await fresh.post(
                "/web/login", content=b"csrf=x&token=y", headers={**FORM, "cookie": cookie}
            )
            assert r.status_code == 403, (cookie, r.status_code)


async def test_static_assets_are_immutable_and_versioned(http: httpx.AsyncClient) -> None:
    for name, asset in assets.ASSETS.items():
        r = await http.get(asset.url)
        assert r.status_code == 200 and r.content == asset.body, name
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["etag"] == asset.etag
        again = await http.get(asset.url, headers={"if-none-match": asset.etag})
        assert again.status_code == 304
    htmx = assets.ASSETS["htmx.min.js"]
    assert (await http.get(f"/web/static/{'0' * 16}/htmx.min.js")).status_code == 404
    assert (await http.get(f"/web/static/{htmx.digest}/../pages.py")).status_code == 404
    assert (await http.get(f"/web/static/{htmx.digest}/base.html")).status_code == 404
    page = (await http.get("/web/login")).text
    assert htmx.url in page and "http://" not in page and "https://" not in page
