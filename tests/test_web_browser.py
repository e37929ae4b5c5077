"""The web page in a real browser: Debian's headless chromium driven by Playwright (one browser
for the module). Login and logout, CSRF, the map's counts following a sensor's uplink over
Mosquitto within a second, the posted tariffs in zh and en with a working quote, screenshots of
each page with Chinese text rendered as glyphs (not boxes), phone width without horizontal
scrolling, and an accessibility check of each page (title, landmarks, labelled controls)."""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from drivers.sensors import nwave
from gateway.directory.town import load_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway
from tests.test_e2e_sensors import chirpstack, publish, sensor_of

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOWN = load_town(None)
CHROMIUM = "/usr/bin/chromium"
PAGES = ("/web/login", "/web/map", "/web/tariffs")

# Draws two different Chinese characters and an unassigned code point in the page's own font
# and returns their pixels: with a CJK font, the characters differ from each other and from
# the missing-glyph box; without one, all three are the same box (or nothing at all).
GLYPHS_JS = """() => {
  const family = getComputedStyle(document.querySelector("h1")).fontFamily;
  const c = document.createElement("canvas");
  c.width = 56; c.height = 56;
  const g = c.getContext("2d", {willReadFrequently: true});
  const draw = (ch) => {
    g.clearRect(0, 0, 56, 56);
    g.font = "48px " + family;
    g.textBaseline = "top";
    g.fillStyle = "#000";
    g.fillText(ch, 4, 4);
    const px = g.getImageData(0, 0, 56, 56).data;
    let ink = 0, sig = [];
    for (let i = 3; i < px.length; i += 4) {
      if (px[i] > 128) { ink++; }
      sig.push(px[i] > 128 ? 1 : 0);
    }
    return {ink: ink, sig: sig.join("")};
  };
  return {ting: draw("停"), che: draw("车"), missing: draw("\\u0378")};
}"""

# The page's own accessibility check: a title, html lang, one header and one main (and the
# nav when logged in), an h1, every visible form control labelled, every button named, and
# the map's SVG named.
A11Y_JS = """() => {
  const problems = [];
  if (!document.title.trim()) problems.push("no title");
  if (!document.documentElement.lang) problems.push("no lang");
  for (const tag of ["header", "main"]) {
    if (document.querySelectorAll(tag).length !== 1) problems.push("not one " + tag);
  }
  if (!document.querySelector("h1")) problems.push("no h1");
  const named = (el) => (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").split(" ").map(
      (id) => (document.getElementById(id) || {}).textContent || "").join("").trim();
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const label = el.id && document.querySelector('label[for="' + el.id + '"]');
    if (!(label && label.textContent.trim()) && !el.closest("label") && !named(el)) {
      problems.push("unlabelled " + el.tagName + " " + (el.name || ""));
    }
  }
  for (const b of document.querySelectorAll("button")) {
    if (!b.textContent.trim() && !named(b)) problems.push("unnamed button");
  }
  for (const s of document.querySelectorAll("svg[role=img]")) {
    if (!named(s)) problems.push("unnamed svg");
  }
  for (const n of document.querySelectorAll("nav")) {
    if (!named(n)) problems.push("unnamed nav");
  }
  return {problems: problems, nav: document.querySelectorAll("nav").length};
}"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("webb") / "cg.db"
    settings = gateway_settings(f"sqlite+aiosqlite:///{db}", mosquitto)
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


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


async def log_in(page: Page, token: str, path: str = "/web/map") -> None:
    await page.goto(path)
    assert (
        page.url.endswith("/web/login?next=" + path.replace("/", "%2F")) or "/web/login" in page.url
    )
    await page.get_by_label("API 令牌 · API token").fill(token)
    await page.get_by_role("button", name="登录 · Log in").click()
    await page.wait_for_url("**" + path)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_login_logout_and_a_bad_token(page: Page, tokens: dict[str, str]) -> None:
    await page.goto("/web/map")
    assert "/web/login" in page.url
    await page.get_by_label("API 令牌 · API token").fill("cg_nope_nope")
    await page.get_by_role("button", name="登录 · Log in").click()
    await page.get_by_role("alert").filter(has_text="Invalid or revoked token").wait_for()
    assert "/web/login" in page.url

    await log_in(page, tokens["inspector"], "/web/tariffs")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["cg_web"]["httpOnly"] and cookies["cg_web"]["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""  # no script reads either cookie
    assert tokens["inspector"] not in await page.content()
    await page.get_by_role("button", name="退出 · Log out").click()
    await page.wait_for_url("**/web/login")
    await page.goto("/web/tariffs")
    assert "/web/login" in page.url


async def test_a_form_without_its_csrf_field_is_403(page: Page, tokens: dict[str, str]) -> None:
    await page.goto("/web/login")
    await page.evaluate("document.querySelector('input[name=csrf]').remove()")
    await page.get_by_label("API 令牌 · API token").fill(tokens["inspector"])
    async with page.expect_response("**/web/login") as info:
        await page.get_by_role("button", name="登录 · Log in").click()
    assert (await info.value).status == 403
    assert "cg_web" not in {c["name"] for c in await page.context.cookies()}


async def test_the_map_follows_an_uplink_within_a_second(
    page: Page, tokens: dict[str, str], mosquitto: Broker
) -> None:
    await log_in(page, tokens["operator"])
    for site in TOWN.sites:  # every site, with its capacity
        cap = page.locator(f"#c-{site.id} .n-cap")
        assert await cap.inner_text() == str(site.capacity), site.id
    assert await page.locator("svg.map g.site").count() == len(TOWN.sites)
    await page.locator('#live[data-state="open"]').wait_for()
    dev_eui, _, site_id = sensor_of("nwave-nps405")
    occupied = page.locator(f"#c-{site_id} .n-occ")
    before = int(await occupied.inner_text())
    marker = page.locator(f"#m-{site_id}")
    level_before = await marker.get_attribute("class")
    port, data = nwave.encode_status(True)
    t0 = time.monotonic()
    await publish(
        mosquitto,
        f"application/app-1/device/{dev_eui}/event/up",
        chirpstack(dev_eui, port, data, 10),
    )
    await page.wait_for_function(
        "([id, n]) => document.querySelector('#c-' + id + ' .n-occ').textContent === n",
        arg=[site_id, str(before + 1)],
        timeout=1000,
    )
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, elapsed
    # the marker follows: its number is the free count, its colour the counts' level
    counts = page.locator(f"#c-{site_id} .counts")
    free = await page.locator(f"#c-{site_id} .n-free").inner_text()
    assert await marker.locator("text").text_content() == free
    level = await counts.get_attribute("data-level")
    assert await marker.get_attribute("class") == f"site lvl-{level}" != level_before


async def test_tariffs_in_zh_and_en_and_a_quote(page: Page, tokens: dict[str, str]) -> None:
    await log_in(page, tokens["inspector"], "/web/tariffs")
    card = page.locator("article.tariff", has=page.locator("#tariff-cp-shiminting"))
    assert "每次停车前60分钟免费" in await card.locator(".zh").inner_text()
    assert "the first 60 min of every stay are free" in await card.locator(".en").inner_text()
    await page.get_by_label("停车点 · Site", exact=True).select_option("cp-shiminting")
    await page.get_by_label("车型 · Vehicle").select_option("small")
    await page.get_by_label("入场时间 · Arrive (Asia/Shanghai)").fill("2026-08-03T09:00")
    await page.get_by_label("离场时间 · Leave (Asia/Shanghai)").fill("2026-08-03T11:00")
    await page.get_by_role("button", name="计算 · Quote").click()
    total = page.locator("#quote-total")
    await total.wait_for()
    assert "¥" in await total.inner_text()
    assert page.url.endswith("/web/tariffs")  # htmx swapped the result in; no page load
    await page.get_by_label("离场时间 · Leave (Asia/Shanghai)").fill("2026-08-03T08:00")
    await page.get_by_role("button", name="计算 · Quote").click()
    await page.get_by_role("alert").filter(has_text="exit is before entry").wait_for()


async def test_screenshots_phone_width_and_accessibility(
    browser: Browser, gw: Any, tokens: dict[str, str], tmp_path: Path
) -> None:
    errors: list[str] = []  # script errors and Content-Security-Policy violations
    for width, height in ((1280, 900), (375, 740)):
        context = await browser.new_context(
            base_url=f"http://127.0.0.1:{gw.api_port}", viewport={"width": width, "height": height}
        )
        page = await context.new_page()
        page.set_default_timeout(5000)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            for path in PAGES:
                if path != "/web/login" and "/web/login" in (page.url or "/web/login"):
                    await log_in(page, tokens["admin"], path)
                else:
                    await page.goto(path)
                await page.locator("h1").wait_for()
                shot = await page.screenshot()
                (tmp_path / f"{path.rsplit('/', 1)[1]}-{width}.png").write_bytes(shot)
                w, h = png_size(shot)
                assert (w, h) == (width, height) and len(shot) > 10_000, (path, w, h, len(shot))

                glyphs = await page.evaluate(GLYPHS_JS)
                ting, che, missing = glyphs["ting"], glyphs["che"], glyphs["missing"]
                assert ting["ink"] > 100 and che["ink"] > 100, (path, glyphs)
                assert len({ting["sig"], che["sig"], missing["sig"]}) == 3, (
                    f"{path}: Chinese characters render as the missing-glyph box"
                )
                h1 = await page.locator("h1").bounding_box()
                assert h1 and h1["height"] > 10

                scroll = await page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert scroll[0] <= scroll[1], f"{path} at {width} px scrolls sideways: {scroll}"

                a11y = await page.evaluate(A11Y_JS)
                assert a11y["problems"] == [], (path, a11y)
                assert a11y["nav"] == (0 if path == "/web/login" else 1), path
            assert errors == [], errors
        finally:
            await context.close()
