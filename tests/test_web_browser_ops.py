"""The lanes and field pages, and the map's live markers, in a real browser (Debian's headless
chromium driven by Playwright; the helpers of tests/test_web_browser.py). An operator opens a
lane with a reason and the page and the lanes API both show the decision; a plate picture of a
real camera push (the Vzenith simulator) loads as an image; inspectors and technicians see no
command button; the loudspeaker and return home go to a real MAVLink vehicle (the simulator over
UDP) and their outcomes are shown; the vehicle's marker moves on the one map as its positions
arrive, and a simulated body cam's marker appears and goes offline; screenshots at 1280 and
375 px with Chinese glyphs, no sideways scrolling, labelled controls."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from gateway.demo.bodycam_town import simulate_town_bodycams
from gateway.demo.cameras import VzenithCamera
from gateway.demo.mav_vehicle import MavVehicle
from gateway.directory.town import load_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.test_web_browser import A11Y_JS, CHROMIUM, GLYPHS_JS, log_in, png_size

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
LANE, CAMERA = "ln-shiminting-in", "cam-shiminting-in"
STATION = [(38.7990, 101.0740), (38.7900, 101.0830), (38.7860, 101.0840)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("webops") / "cg.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}",
        mosquitto,
        drones={"persist_interval_s": 0.1, "mavlink_link_timeout_s": 2,
                "mavlink_ack_timeout_s": 0.5, "command_timeout_s": 10},
        bodycams={"keepalive_interval_s": 2, "position_interval_s": 1},
    )  # fmt: skip
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def vehicle(gw: Any) -> AsyncIterator[MavVehicle]:
    v = MavVehicle(("127.0.0.1", gw.mavlink_port), STATION, system_id=1, speed_mps=40.0)
    await v.start()
    task = asyncio.create_task(v.run())
    yield v
    task.cancel()
    v.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, gw: Any) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=f"http://127.0.0.1:{gw.api_port}", viewport={"width": 1280, "height": 900}
    )
    p = await context.new_page()
    p.set_default_timeout(5000)
    try:
        yield p
    finally:
        await context.close()


def api(gw: Any, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.api_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )


async def test_a_lanes_manual_open_is_recorded(page: Page, gw: Any, tokens: dict[str, str]) -> None:
    async with api(gw, tokens["technician"]) as tech:
        r = await tech.post(
            "/api/v1/devices/cameras",
            json={"id": CAMERA, "vendor": "vzenith", "site_id": "cp-shiminting", "lane_id": LANE},
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
    await wait_for(lambda: gw.services.live.directory.get(CAMERA) is not None, 5, what="camera")
    cam = VzenithCamera(f"http://127.0.0.1:{gw.api_port}", CAMERA, secret)
    try:
        assert (await cam.push("甘G54321")).status_code == 200
    finally:
        await cam.client.aclose()
    rt = gw.services.lanes.lanes[LANE]
    await wait_for(lambda: any(d.plate == "甘G54321" for d in rt.recent), 5, what="decision")

    await log_in(page, tokens["operator"], "/web/lanes")
    lane = page.locator(f"#lane-{LANE}")
    thumb = lane.locator("img.thumb").first
    await thumb.wait_for()
    # the picture loads as an image (served as JPEG behind the login, allowed by the CSP)
    await page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=await thumb.element_handle()
    )
    assert "甘G54321" in (await thumb.get_attribute("alt") or "")

    await lane.get_by_label("开闸原因 · Reason to open").fill("救护车通行 · ambulance")
    await lane.get_by_role("button", name="人工开闸 · Open the gate").click()
    await page.wait_for_url(re.compile(r".*/web/lanes\?opened=ld_[0-9a-f]+#lane-" + LANE))
    shown = page.locator("#opened")
    assert "救护车通行 · ambulance" in await shown.inner_text()
    decision_id = page.url.split("opened=")[1].split("#")[0]
    assert await page.locator(f"#d-{decision_id}").count() == 1
    async with api(gw, tokens["operator"]) as op:
        r = await op.get(f"/api/v1/lanes/{LANE}")
    (d,) = [d for d in r.json()["decisions"] if d["id"] == decision_id]
    assert d["reason"].endswith("救护车通行 · ambulance") and d["operator"]

    # an empty reason is refused by the browser itself (required); a short one by the server
    await lane.get_by_label("开闸原因 · Reason to open").fill("ab")
    await page.evaluate(
        "(id) => document.getElementById('reason-' + id).removeAttribute('minlength')", LANE
    )
    async with page.expect_response(f"**/web/lanes/{LANE}/open") as info:
        await lane.get_by_role("button", name="人工开闸 · Open the gate").click()
    assert (await info.value).status == 422
    await page.get_by_role("alert").filter(has_text="3 characters or more").wait_for()


async def test_inspectors_and_technicians_see_no_command_button(
    page: Page, tokens: dict[str, str]
) -> None:
    for role in ("inspector", "technician"):
        await page.context.clear_cookies()
        await log_in(page, tokens[role], "/web/lanes")
        assert await page.locator("section.lane").count() == 9
        assert await page.get_by_role("button", name="人工开闸 · Open the gate").count() == 0
        assert await page.get_by_label("开闸原因 · Reason to open").count() == 0
    await page.goto("/web/field")  # the technician may not see the field
    assert await page.locator("h1").inner_text() == "403 · 无权访问 · Forbidden"
    await page.context.clear_cookies()
    await log_in(page, tokens["inspector"], "/web/field")
    assert await page.locator("article.drone").count() == 2
    assert await page.get_by_role("button", name="喊话 · Speak").count() == 0
    assert await page.get_by_role("button", name="返航 · Return home").count() == 0


async def test_the_speaker_and_return_home_show_their_outcome(
    page: Page, gw: Any, tokens: dict[str, str], vehicle: MavVehicle
) -> None:
    async with api(gw, tokens["operator"]) as op:

        async def online() -> bool:
            r = await op.get("/api/v1/drones/drone-2")
            return bool(r.json()["link"] == "online")

        await wait_for(online, 20, 0.2, what="drone-2 online")
    await page.context.clear_cookies()
    await log_in(page, tokens["operator"], "/web/field")
    drone = page.locator("#drone-drone-2")
    # a MAVLink vehicle has no loudspeaker: no form that could only be refused, a note instead
    assert await drone.get_by_role("button", name="喊话 · Speak").count() == 0
    assert "此无人机无喊话器 · This drone has no loudspeaker." in await drone.inner_text()
    assert await page.locator("#drone-drone-1").get_by_role("button", name="喊话 · Speak").count()
    await page.locator("#drone-drone-2").get_by_role("button", name="返航 · Return home").click()
    await page.wait_for_url("**/web/field?command=*")
    text = await page.locator("#command-done").inner_text()
    assert "返航 · return home" in text and "成功 · ok" in text, text
    assert any(c.command == 20 for c in vehicle.commands)  # MAV_CMD_NAV_RETURN_TO_LAUNCH


async def test_a_drone_marker_moves_on_the_map_as_positions_arrive(
    page: Page, gw: Any, tokens: dict[str, str], vehicle: MavVehicle
) -> None:
    await page.context.clear_cookies()
    await log_in(page, tokens["operator"], "/web/map")
    await page.locator('#live[data-state="open"]').wait_for()
    marker = page.locator("#dr-drone-2")
    await marker.wait_for(state="attached", timeout=10_000)
    before = await marker.get_attribute("transform")
    moved_at = await marker.get_attribute("data-moved")
    await page.wait_for_function(
        "([t]) => { const m = document.getElementById('dr-drone-2');"
        " return m && m.getAttribute('transform') !== t && m.hasAttribute('data-moved'); }",
        arg=[before],
        timeout=10_000,
    )
    after = await marker.get_attribute("transform")
    assert after != before and moved_at != await marker.get_attribute("data-moved")
    assert "drone" in (await marker.get_attribute("class") or "")
    # coalesced: no more than about one move a second, however often the vehicle reports
    moves = await page.evaluate(
        """() => new Promise((done) => {
             const m = document.getElementById('dr-drone-2'); let n = 0;
             const o = new MutationObserver(() => n++);
             o.observe(m, {attributes: true, attributeFilter: ['transform']});
             setTimeout(() => { o.disconnect(); done(n); }, 3000);
           })"""
    )
    assert 1 <= moves <= 4, moves


async def test_an_officer_marker_appears_and_goes_offline_when_its_cam_leaves(
    page: Page, gw: Any, tokens: dict[str, str]
) -> None:
    """One simulated body cam over real SIP/UDP (the town's demo simulator): its marker appears
    on the map with its first position (it had none when the page loaded), is updated with the
    next ones, and turns offline once the cam has unregistered (the presence check, every 5 s)."""
    await page.context.clear_cookies()
    await log_in(page, tokens["inspector"], "/web/map")
    await page.locator('#live[data-state="open"]').wait_for()
    assert await page.locator("circle.officer").count() == 0  # no cam has reported yet
    stop = asyncio.Event()
    town = load_town(gw.settings.town.file)
    sim = asyncio.create_task(
        simulate_town_bodycams(gw, town, stop, cams=1, overrides={"start_spread_s": 0.1})
    )
    try:
        marker = page.locator("circle.officer").first
        await marker.wait_for(state="attached", timeout=20_000)
        key = await marker.get_attribute("id")
        assert key and key.startswith("o-")
        assert "off" not in (await marker.get_attribute("class") or "").split()
        # the next position updates it (a walking officer pauses at sites: it may not move)
        before = await marker.get_attribute("data-moved")
        await page.wait_for_function(
            "([id, t]) => document.getElementById(id).getAttribute('data-moved') !== t",
            arg=[key, before],
            timeout=10_000,
        )
        assert "执法记录仪" in (await marker.locator("title").text_content() or "")
    finally:
        stop.set()
        await asyncio.wait_for(sim, 15)
    await page.wait_for_function(
        "(id) => document.getElementById(id).classList.contains('off')", arg=key, timeout=10_000
    )


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (375, 740)])
async def test_screenshots_phone_width_and_accessibility(
    browser: Browser, gw: Any, tokens: dict[str, str], tmp_path: Path, width: int, height: int
) -> None:
    errors: list[str] = []
    context = await browser.new_context(
        base_url=f"http://127.0.0.1:{gw.api_port}", viewport={"width": width, "height": height}
    )
    page = await context.new_page()
    page.set_default_timeout(5000)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    expected = {"/web/lanes": "市民大厅", "/web/field": "督查中队", "/web/map": "停车资源一张图"}
    try:
        await log_in(page, tokens["admin"], "/web/lanes")
        for path, text in expected.items():
            await page.goto(path)
            await page.locator("h1").wait_for()
            assert text in await page.locator("main").inner_text(), path
            shot = await page.screenshot()
            (tmp_path / f"{path.rsplit('/', 1)[1]}-{width}.png").write_bytes(shot)
            w, h = png_size(shot)
            assert (w, h) == (width, height) and len(shot) > 10_000, (path, w, h, len(shot))
            glyphs = await page.evaluate(GLYPHS_JS)
            ting, che, missing = glyphs["ting"], glyphs["che"], glyphs["missing"]
            assert ting["ink"] > 100 and che["ink"] > 100, (path, glyphs)
            assert len({ting["sig"], che["sig"], missing["sig"]}) == 3, path
            scroll = await page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert scroll[0] <= scroll[1], f"{path} at {width} px scrolls sideways: {scroll}"
            a11y = await page.evaluate(A11Y_JS)
            assert a11y["problems"] == [] and a11y["nav"] == 1, (path, a11y)
            nav = await page.get_by_role("navigation").inner_text()
            assert "车道 · Lanes" in nav and "外勤 · Field" in nav
        assert errors == [], errors
    finally:
        await context.close()
