"""The cases pages over plain HTTP against a running gateway, on both databases: cases raised
through the real enforcement path (``POST /api/v1/detections``), delivered signed to a real
HTTP case system and moved on by its signed callbacks; the list with its step and delivery
state and its filters, the detail through the seven steps, roles (403 pages), a 404 page for
an unknown case, hostile query input (a 4xx page, never a 5xx), and the operator's redelivery
of a rejected report behind a CSRF form. The browser tests are
tests/test_web_browser_cases.py."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from gateway.cases.signing import sign
from gateway.directory.town import SiteKind, load_town
from tests.case_system import CaseSystem
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOWN = load_town(None)
LOCAL = ZoneInfo("Asia/Shanghai")
CAR_PARK = next(s for s in TOWN.sites if s.kind is SiteKind.CAR_PARK)
OTHER = next(s for s in TOWN.sites if s.kind is SiteKind.CAR_PARK and s.id != CAR_PARK.id)
AMBULANCE = (101.08238, 38.78460)  # 同和医院急救通道: no bikes, at any time


NOTE = "派遣至城管二中队"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def case_system(module_db_url: str) -> AsyncIterator[CaseSystem]:
    system = CaseSystem()
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str, case_system: CaseSystem) -> AsyncIterator[Any]:
    settings = gateway_settings(
        module_db_url,
        mosquitto,
        cases={"url": case_system.url, "secret": case_system.secret.decode()},
    )
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


async def detect(
    api: httpx.AsyncClient, token: str, kind: str, minutes_ago: int, **place: Any
) -> str:
    at = datetime.now(LOCAL) - timedelta(minutes=minutes_ago)
    body = {
        "device_id": "ai-cam-07",
        "kind": kind,
        "observed_at": at.isoformat(),
        "confidence": 0.9,
        "image_ref": f"oss://evidence/{kind}/plate-{minutes_ago}.jpg",
        **place,
    }
    r = await api.post("/api/v1/detections", json=body, headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "case", r.json()
    (case_id,) = r.json()["case_ids"]
    return str(case_id)


async def delivery_of(api: httpx.AsyncClient, token: str, case_id: str) -> str:
    r = await api.get(f"/api/v1/cases/{case_id}", headers=auth(token))
    return str(r.json()["delivery"]["state"])


async def wait_delivery(api: httpx.AsyncClient, token: str, case_id: str, state: str) -> None:
    async def there() -> bool:
        return await delivery_of(api, token, case_id) == state

    await wait_for(there, 10, interval=0.05, what=f"{case_id} {state}")


async def callback(api: httpx.AsyncClient, system: CaseSystem, case_id: str, step: str) -> None:
    body = json.dumps(
        {
            "id": case_id,
            "status": step,
            "at": datetime.now(LOCAL).isoformat(),
            "note": NOTE,
        },
        ensure_ascii=False,
    ).encode()
    signature = sign(system.secret, body, int(datetime.now(UTC).timestamp()))
    r = await api.post(
        "/api/v1/cases/callback",
        content=body,
        headers={"X-Citygate-Signature": signature, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cases(gw: Any, tokens: dict[str, str], case_system: CaseSystem) -> dict[str, str]:
    """A delivered case at a car park moved on to step 3 (dispatched), and a report the case
    system rejected (422), both raised by detections."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as api:
        moved = await detect(
            api, tokens["device"], "abandoned_vehicle", 30, site_id=CAR_PARK.id, plate="甘G12345"
        )
        await wait_for(lambda: moved in case_system.cases, 10, what="report delivered")
        for step in ("registered", "dispatched"):
            await callback(api, case_system, moved, step)
        case_system.fail_next(422, body='{"error": "缺少照片 missing picture"}')
        refused = await detect(
            api, tokens["device"], "non_motor_blocking", 20, lon=AMBULANCE[0], lat=AMBULANCE[1]
        )
        for case_id, state in ((moved, "delivered"), (refused, "rejected")):
            await wait_delivery(api, tokens["inspector"], case_id, state)
    return {"moved": moved, "refused": refused}


@contextlib.asynccontextmanager
async def logged_in(gw: Any, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        await client.get("/web/login")
        csrf = client.cookies.get("cg_csrf", path="/web")
        data = {"csrf": csrf, "token": token, "next": "/web/map"}
        r = await client.post("/web/login", data=data)
        assert r.status_code == 303, r.text
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def operator(gw: Any, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(gw, tokens["operator"]) as client:
        yield client


def row_of(html: str, case_id: str) -> str:
    m = re.search(rf'<tr id="case-{case_id}">(.*?)</tr>', html, re.S)
    assert m, f"case {case_id} not listed"
    return m.group(1)


async def test_cases_pages_need_a_login_and_a_reader_role(
    gw: Any, tokens: dict[str, str], cases: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as anon:
        r = await anon.get("/web/cases")
        assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/cases"
        r = await anon.get(f"/web/cases/{cases['moved']}")
        assert r.status_code == 303 and "/web/login?next=/web/cases/" in r.headers["location"]
    for role, code in (("operator", 200), ("inspector", 200), ("admin", 403),
                       ("technician", 403), ("device", 403), ("payments", 403)):  # fmt: skip
        async with logged_in(gw, tokens[role]) as client:
            for path in ("/web/cases", f"/web/cases/{cases['moved']}"):
                r = await client.get(path)
                assert r.status_code == code, (role, path, r.status_code)
                assert r.headers["content-type"].startswith("text/html")
                if code == 403:
                    assert "inspector / operator" in r.text and role in r.text
                    assert cases["moved"] not in r.text
            nav = (await client.get("/web/tariffs")).text
            if role in ("technician", "admin", "operator", "inspector"):
                assert ('href="/web/cases"' in nav) is (code == 200), role


async def test_the_list_shows_the_case_its_step_and_its_delivery(
    operator: httpx.AsyncClient, cases: dict[str, str], tokens: dict[str, str]
) -> None:
    r = await operator.get("/web/cases")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert tokens["operator"] not in r.text
    moved = row_of(r.text, cases["moved"])
    assert "3/7 任务派遣 · dispatched" in moved and 'data-step="3"' in moved
    assert 'data-delivery="delivered"' in moved and "甘G12345" in moved
    assert f'href="/web/cases/{cases["moved"]}"' in moved
    refused = row_of(r.text, cases["refused"])
    assert "1/7 巡查上报 · reported" in refused and 'data-delivery="rejected"' in refused
    # newest first: the refused report was raised after the moved one
    assert r.text.index(f"case-{cases['refused']}") < r.text.index(f"case-{cases['moved']}")


@pytest.mark.parametrize(
    ("query", "moved", "refused"),
    [
        ("status=dispatched", True, False),
        ("status=reported", False, True),
        ("status=closed", False, False),
        ("delivery=rejected", False, True),
        ("delivery=delivered", True, False),
        ("category=0107", True, False),
        ("category=0506", False, True),
        (f"site={CAR_PARK.id}", True, False),
        (f"site={OTHER.id}", False, False),
        (f"status=dispatched&site={CAR_PARK.id}&category=0107&delivery=delivered", True, False),
        ("status=&site=&category=&delivery=", True, True),  # an empty form filters nothing
    ],
)
async def test_filters(
    operator: httpx.AsyncClient, cases: dict[str, str], query: str, moved: bool, refused: bool
) -> None:
    r = await operator.get(f"/web/cases?{query}")
    assert r.status_code == 200, r.text
    assert (f'id="case-{cases["moved"]}"' in r.text) is moved
    assert (f'id="case-{cases["refused"]}"' in r.text) is refused


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("status=bogus", 422),
        ("status=%E7%BB%93%E6%A1%88", 422),  # 结案: the API's callback takes it, not the list
        ("status=reported&status=closed", 400),
        ("delivery=failing", 422),
        ("category=" + "9" * 17, 422),
        ("category=%3Cscript%3E", 422),
        ("site=cp-nowhere", 422),
        ("site=" + "x" * 5000, 422),
        ("before=bm90LWEtY3Vyc29y", 422),  # base64, but not a cursor
        ("before=%27%20OR%201%3D1--", 422),
        ("limit=100000", 400),
        ("sort=id", 400),
        ("a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9", 400),
        ("status=reported%00", 422),
        ("%ff=1", 400),
    ],
)
async def test_hostile_queries_are_a_4xx_page(
    operator: httpx.AsyncClient, cases: dict[str, str], query: str, status: int
) -> None:
    r = await operator.get(f"/web/cases?{query}")
    assert r.status_code == status, (query, r.status_code, r.text[:300])
    if query != "status=reported%00":  # refused before any route, as for the API
        assert r.headers["content-type"].startswith("text/html")
        assert "<script>" not in r.text and 'role="alert"' in r.text


async def test_paging_is_bounded_and_follows_the_cursor(
    operator: httpx.AsyncClient, cases: dict[str, str]
) -> None:
    r = await operator.get("/web/cases")
    assert 'rel="next"' not in r.text  # two cases: one page
    # a well-formed cursor past the newest case pages back from it
    from gateway.cases.outbox import encode_cursor

    cursor = encode_cursor(datetime.now(UTC) + timedelta(days=1), "f" * 36)
    r = await operator.get(f"/web/cases?before={cursor}")
    assert r.status_code == 200 and f'id="case-{cases["moved"]}"' in r.text
    assert 'href="/web/cases"' in r.text and "最新 · Newest" in r.text


async def test_the_detail_goes_through_the_seven_steps(
    operator: httpx.AsyncClient, cases: dict[str, str], tokens: dict[str, str]
) -> None:
    r = await operator.get(f"/web/cases/{cases['moved']}")
    assert r.status_code == 200
    html = r.text
    states = re.findall(r'<li class="s-(\w+)" data-state="\1"', html)
    assert states == ["done", "done", "current", "next", "next", "next", "next"], states
    assert html.count('aria-current="step"') == 1
    steps = re.findall(r'<span class="label">(.*?)</span>', html)
    assert steps[0] == "巡查上报 · reported" and steps[-1] == "综合评价 · evaluated"
    # the done and current steps carry their times; the next ones none
    items = re.findall(r'<li class="s-\w+".*?</li>', html, re.S)
    assert all("<time>" in li for li in items[:3]) and not any("<time>" in li for li in items[3:])
    assert NOTE in html  # the callback's note
    # evidence as stored, never a link to it; the place links to the map
    assert "oss://evidence/abandoned_vehicle/plate-30.jpg" in html
    assert 'href="oss://' not in html and "图片 · image" in html
    assert f'href="/web/map#site-{CAR_PARK.id}"' in html and CAR_PARK.name in html
    assert 'data-delivery="delivered"' in html and "已送达" in html
    assert "/redeliver" not in html  # delivered: nothing to send again
    for token in tokens.values():
        assert token not in html
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert all(h.startswith(("/web/", "#")) or h == "data:," for h in hrefs), hrefs


async def test_an_unknown_case_is_a_404_page(operator: httpx.AsyncClient) -> None:
    for case_id in ("0b6f1c9e-3f57-4a8e-9d0c-5a1f2e3d4c5b", "x" * 300, "%3Cb%3Ehi%3C%2Fb%3E",
                    "..%2F..%2Fetc", "%E6%A1%88"):  # fmt: skip
        r = await operator.get(f"/web/cases/{case_id}")
        assert r.status_code == 404, (case_id, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), (case_id, r.text[:200])
        assert r.headers["content-type"].startswith("text/html")
        assert "未找到 · Not found" in r.text and "<b>hi" not in r.text


async def test_a_rejected_report_is_sent_again_by_an_operator_only(
    gw: Any, operator: httpx.AsyncClient, tokens: dict[str, str], cases: dict[str, str],
    case_system: CaseSystem,
) -> None:  # fmt: skip
    path = f"/web/cases/{cases['refused']}"
    async with logged_in(gw, tokens["inspector"]) as inspector:
        page = await inspector.get(path)
        assert page.status_code == 200 and "/redeliver" not in page.text
        assert "missing picture" in page.text and 'data-delivery="rejected"' in page.text
        csrf = inspector.cookies.get("cg_csrf", path="/web")
        r = await inspector.post(f"{path}/redeliver", data={"csrf": csrf})
        assert r.status_code == 403
    page = await operator.get(path)
    assert f'action="{path}/redeliver"' in page.text
    r = await operator.post(f"{path}/redeliver", data={"csrf": "x" * 43})
    assert r.status_code == 403 and "表单已过期" in r.text
    csrf = operator.cookies.get("cg_csrf", path="/web")
    r = await operator.post(f"{path}/redeliver", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == path
    await wait_for(lambda: cases["refused"] in case_system.cases, 10, what="sent again")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as api:
        await wait_delivery(api, tokens["inspector"], cases["refused"], "delivered")
    r = await operator.post(f"{path}/redeliver", data={"csrf": csrf})
    assert r.status_code == 409 and "not rejected" in r.text
    r = await operator.post("/web/cases/nope/redeliver", data={"csrf": csrf})
    assert r.status_code == 404
