"""The lanes page over plain HTTP against a running gateway (SQLite and PostgreSQL): who sees
it and who may open, the operator's manual open recorded through the form (read back from the
lanes API), CSRF, hostile forms (a 4xx, never a 5xx), and the plate pictures of a real camera
push (the Vzenith simulator) served behind the login as JPEG."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.demo.cameras import VzenithCamera
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.test_web import FORM, csrf_of, login

pytestmark = pytest.mark.asyncio(loop_scope="module")
LANE, CAMERA, SITE = "ln-shiminting-in", "cam-shiminting-in", "cp-shiminting"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    async with running_gateway(gateway_settings(module_db_url, mosquitto)) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def decisions(http: httpx.AsyncClient, token: str, lane: str = LANE) -> list[Any]:
    r = await http.get(f"/api/v1/lanes/{lane}", headers=bearer(token))
    assert r.status_code == 200, r.text
    out: list[Any] = r.json()["decisions"]
    return out


async def test_the_lanes_page_needs_a_login_and_a_lane_role(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await http.get("/web/lanes")
    assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/lanes"
    r = await http.post(f"/web/lanes/{LANE}/open", data={"reason": "x"})
    assert r.status_code == 303  # to the login, nothing opened
    for role in ("device", "payments"):
        await login(http, tokens[role])
        r = await http.get("/web/lanes")
        assert r.status_code == 403 and "<title>403" in r.text and role in r.text
        assert "车道 · Lanes" not in r.text  # no nav entry for a page it may not see
    for role, may_open in (
        ("inspector", False),
        ("technician", False),
        ("operator", True),
        ("admin", True),
    ):
        await login(http, tokens[role])
        r = await http.get("/web/lanes")
        assert r.status_code == 200, role
        assert r.text.count('<section class="card lane"') == 9, role  # the sample town's
        assert ('action="/web/lanes/' in r.text) is may_open, role
        assert "人工开闸 · Open the gate" in r.text if may_open else "人工开闸" not in r.text
        assert 'aria-current="page">车道 · Lanes' in r.text


async def test_a_role_that_may_not_open_gets_a_403_and_nothing_is_recorded(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    before = len(await decisions(http, tokens["operator"]))
    for role in ("inspector", "technician"):
        await login(http, tokens[role])
        r = await http.post(
            f"/web/lanes/{LANE}/open", data={"csrf": csrf_of(http), "reason": "I want in"}
        )
        assert r.status_code == 403 and "<main" in r.text, role
    assert len(await decisions(http, tokens["operator"])) == before


async def test_the_operators_open_is_recorded_and_shown(
    http: httpx.AsyncClient, tokens: dict[str, str], gw: Any
) -> None:
    await login(http, tokens["operator"])
    await http.get("/web/lanes")
    reason = "救护车通行  ambulance\tthrough"
    r = await http.post(f"/web/lanes/{LANE}/open", data={"csrf": csrf_of(http), "reason": reason})
    assert r.status_code == 303, r.text
    where = r.headers["location"]
    m = re.fullmatch(rf"/web/lanes\?opened=(ld_[0-9a-f]+)#lane-{LANE}", where)
    assert m, where
    decision_id = m.group(1)
    # the API shows the decision: the operator's token id, the reason as the API folds it
    found = [d for d in await decisions(http, tokens["operator"]) if d["id"] == decision_id]
    assert found, "the open is not on the lane"
    (d,) = found
    async with gw.services.sessions() as db:
        from gateway.directory.tokens import verify_token

        info = await verify_token(db, tokens["operator"])
    assert d["operator"] == info.id and d["reason"].endswith(": 救护车通行 ambulance through")
    assert d["verdict"] and d["state"] in {"pending", "sent", "failed", "confirmed"}
    page = await http.get(where)
    assert page.status_code == 200
    shown = re.search(r'<p class="card ok" role="status" id="opened">(.*?)</p>', page.text, re.S)
    assert shown and LANE in shown.group(1) and "救护车通行 ambulance through" in shown.group(1)
    assert f'id="d-{decision_id}"' in page.text
    # without its CSRF field: a 403 page, nothing recorded
    n = len(await decisions(http, tokens["operator"]))
    r = await http.post(f"/web/lanes/{LANE}/open", data={"reason": "no csrf here"})
    assert r.status_code == 403
    r = await http.post(f"/web/lanes/{LANE}/open", data={"csrf": "x" * 43, "reason": "wrong"})
    assert r.status_code == 403
    assert len(await decisions(http, tokens["operator"])) == n


async def test_hostile_open_forms_get_a_4xx(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["operator"])
    csrf = csrf_of(http)
    n = len(await decisions(http, tokens["operator"]))
    for reason, status, say in (
        ("", 422, "3 characters or more"),
        ("  a \t ", 422, "3 characters or more"),
        ("x" * 201, 422, "at most 200"),
        ("x" * 5000, 422, "at most 200"),
        ("bad\x07bell", 422, "control characters"),
        ("nul\x00here", 422, "NUL"),
    ):
        r = await http.post(f"/web/lanes/{LANE}/open", data={"csrf": csrf, "reason": reason})
        assert r.status_code == status and say in r.text, (reason[:20], r.status_code, r.text[:300])
    r = await http.post("/web/lanes/ln-nowhere/open", data={"csrf": csrf, "reason": "open it"})
    assert r.status_code == 404 and "ln-nowhere" in r.text
    r = await http.post(f"/web/lanes/{'x' * 500}/open", data={"csrf": csrf, "reason": "open it"})
    assert r.status_code == 404
    for body, headers, status in (
        (f"csrf={csrf}&reason=".encode() + b"a" * 20_000, FORM, 413),
        (f"csrf={csrf}&reason=%FF%FE".encode(), FORM, 400),
        (f"csrf={csrf}&reason=a&reason=b".encode(), FORM, 400),
        (
            f'{{"csrf": "{csrf}", "reason": "json"}}'.encode(),
            {"content-type": "application/json"},
            415,
        ),
    ):
        r = await http.post(f"/web/lanes/{LANE}/open", content=body, headers=headers)
        assert r.status_code == status, (body[:40], r.status_code)
    assert len(await decisions(http, tokens["operator"])) == n  # none of them opened


async def test_a_cameras_plate_picture_is_shown_and_served_behind_the_login(
    http: httpx.AsyncClient, tokens: dict[str, str], gw: Any
) -> None:
    r = await http.post(
        "/api/v1/devices/cameras",
        json={"id": CAMERA, "vendor": "vzenith", "site_id": SITE, "lane_id": LANE},
        headers=bearer(tokens["technician"]),
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    base = f"http://127.0.0.1:{gw.api_port}"
    await wait_for(lambda: gw.services.live.directory.get(CAMERA) is not None, 5, what="camera")
    cam = VzenithCamera(base, CAMERA, secret)
    try:
        assert (await cam.push("甘G12345")).status_code == 200
    finally:
        await cam.client.aclose()
    rt = gw.services.lanes.lanes[LANE]
    await wait_for(lambda: any(d.plate == "甘G12345" for d in rt.recent), 5, what="a decision")
    await login(http, tokens["inspector"])
    page = await http.get("/web/lanes")
    row = re.search(r'<tr id="d-ld_[0-9a-f]+"><td>[^<]*</td><td>甘G12345</td>.*?</tr>', page.text)
    assert row, "the read's decision is not on the page"
    thumb = re.search(r'<img class="thumb" src="(/web/lanes/reads/(\d+)/(\d+))"', row.group(0))
    assert thumb, row.group(0)
    url, read_id, n = thumb.group(1), int(thumb.group(2)), int(thumb.group(3))
    assert 'alt="车牌图片 · plate picture 甘G12345"' in row.group(0)
    pic = await http.get(url)
    assert pic.status_code == 200 and pic.headers["content-type"] == "image/jpeg"
    assert (
        pic.content[:3] == b"\xff\xd8\xff"
        and len(pic.content) <= gw.settings.cameras.max_image_bytes
    )
    assert (
        pic.headers["cache-control"] == "no-store"
        and pic.headers["x-content-type-options"] == "nosniff"
    )
    async with gw.services.sessions() as db:
        from gateway.infra.storage.schema import CameraReadRow

        stored = await db.get(CameraReadRow, read_id)
    assert stored is not None and "Fragment" in stored.images[n]  # the plate crop, not the scene
    for bad in (f"/web/lanes/reads/{read_id}/9", "/web/lanes/reads/999999/0",
                "/web/lanes/reads/-1/0", f"/web/lanes/reads/{read_id}/x",
                f"/web/lanes/reads/{2**70}/0", f"/web/lanes/reads/{read_id}/０",
                f"/web/lanes/reads/{read_id}/00000"):  # fmt: skip
        r = await http.get(bad)
        assert r.status_code == 404 and "<main" in r.text, (bad, r.status_code)  # a page
    # the file on disk decides: not a JPEG any more, too large, pruned
    path = gw.settings.cameras.evidence_dir / stored.images[n]
    path.write_bytes(b"GIF89a" + b"\0" * 100)
    r = await http.get(url)
    assert r.status_code == 415 and "image" not in r.headers["content-type"]
    path.write_bytes(b"\xff\xd8\xff" + b"\0" * gw.settings.cameras.max_image_bytes)
    assert (await http.get(url)).status_code == 413
    path.unlink()
    r = await http.get(url)
    assert r.status_code == 404 and "pruned" in r.text
    async with httpx.AsyncClient(base_url=base) as anonymous:
        r = await anonymous.get(url)
        assert r.status_code == 303 and "image" not in r.headers.get("content-type", "")
    await login(http, tokens["payments"])
    assert (await http.get(url)).status_code == 403
