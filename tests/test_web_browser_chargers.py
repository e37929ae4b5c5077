"""The charger health pages in a real browser (Debian's chromium through Playwright, the
fixtures of tests/test_web_browser.py): a charger faulted for real (the ocpp library's charge
point over a websocket) shows its fault code at the top of the fleet page; an operator's
command button reaches the charger and the answer is shown; an inspector sees no button;
screenshots at 1280 and 375 px with Chinese drawn as glyphs, no sideways scrolling, the
accessibility check, and no script or CSP error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from tests.conftest import wait_for
from tests.test_web_browser import (  # noqa: F401  (fixtures: browser, gw, page, tokens)
    A11Y_JS,
    GLYPHS_JS,
    browser,
    gw,
    log_in,
    page,
    png_size,
    tokens,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
FAULTY, TALKER = "SDEV005", "SDEV006"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def faulty(gw: Any) -> AsyncIterator[Charger16]:  # noqa: F811
    """A charger connected for the module, its connector 2 faulted (HighTemperature, E-77)."""
    async with gw.services.persister._sessions.begin() as s:
        password = await set_password(s, FAULTY, gw.services.clock())
    async with Charger16(f"ws://127.0.0.1:{gw.ocpp_port}/ocpp", FAULTY, password) as c:
        await c.boot()
        await c.status(1, "Available")
        await c.fault(2, "HighTemperature", vendor_error_code="E-77", info="cabinet 81 °C")
        book = gw.services.charging.book
        await wait_for(
            lambda: book.health(FAULTY, gw.services.clock()).state.value == "faulted",
            10,
            what="charger faulted",
        )
        yield c


async def test_a_faulted_charger_shows_its_fault_code_on_the_fleet_page(
    page: Page,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
    faulty: Charger16,
) -> None:
    await log_in(page, tokens["inspector"], "/web/chargers")
    first = page.locator("#fleet tbody tr").first
    assert await first.get_attribute("id") == f"charger-{FAULTY}"  # worst first
    text = await first.inner_text()
    assert "HighTemperature" in text and "E-77" in text and "故障 · faulted" in text
    assert await page.locator("#count-faulted .n").inner_text() == "1"
    await first.get_by_role("link", name=FAULTY).click()
    await page.wait_for_url(f"**/web/chargers/{FAULTY}")
    faults = page.locator("#faults")
    assert "HighTemperature" in await faults.inner_text()
    assert "E-77" in await faults.inner_text()
    assert await page.locator("svg.timeline rect.st-faulted").count() >= 2  # 24 h and 7 d
    # an inspector reads, but may not command: no button, no command form
    assert await page.locator("button.cmd").count() == 0
    assert await page.locator("form[action$='/command']").count() == 0


async def test_an_operator_command_button_reaches_the_charger(
    page: Page,  # noqa: F811
    gw: Any,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
) -> None:
    async with gw.services.persister._sessions.begin() as s:
        password = await set_password(s, TALKER, gw.services.clock())
    async with Charger16(f"ws://127.0.0.1:{gw.ocpp_port}/ocpp", TALKER, password) as c:
        await c.boot()
        await c.status(1, "Available")
        await wait_for(lambda: TALKER in gw.services.charging.live, 5, what="connected")
        await log_in(page, tokens["operator"], f"/web/chargers/{TALKER}")
        await page.get_by_role("button", name="软重启 · Soft reset").click()
        outcome = page.locator("#outcome")
        await outcome.filter(has_text="Accepted").wait_for()
        assert "软重启 · Soft reset" in await outcome.inner_text()
        assert c.received == [("Reset", {"type": "Soft"})]
        assert page.url.endswith(f"/web/chargers/{TALKER}")  # htmx swapped it in
        c.answers["UnlockConnector"] = "UnlockFailed"
        await page.get_by_role("button", name="解锁 · Unlock #1").click()
        await page.locator("#outcome.error").filter(has_text="UnlockFailed").wait_for()
        assert c.received[-1] == ("UnlockConnector", {"connector_id": 1})


async def test_screenshots_phone_width_and_accessibility(
    browser: Browser,  # noqa: F811
    gw: Any,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
    faulty: Charger16,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp_path = tmp_path_factory.mktemp("shots")
    errors: list[str] = []  # script errors and Content-Security-Policy violations
    pages = {
        "/web/chargers": ("充电桩健康 · Charger health", "HighTemperature"),
        f"/web/chargers/{FAULTY}": (f"充电桩 {FAULTY}", "E-77"),
    }
    for width, height in ((1280, 900), (375, 740)):
        context = await browser.new_context(
            base_url=f"http://127.0.0.1:{gw.api_port}", viewport={"width": width, "height": height}
        )
        p = await context.new_page()
        p.set_default_timeout(5000)
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        p.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await log_in(p, tokens["operator"], "/web/chargers")
            for path, (heading, expected) in pages.items():
                await p.goto(path)
                assert heading in await p.locator("h1").inner_text()
                assert expected in await p.locator("main").inner_text()
                shot = await p.screenshot(full_page=True)
                (tmp_path / f"{path.rsplit('/', 1)[1]}-{width}.png").write_bytes(shot)
                w, h = png_size(shot)
                assert w == width and h >= height and len(shot) > 10_000, (path, w, h)

                glyphs = await p.evaluate(GLYPHS_JS)
                ting, che, missing = glyphs["ting"], glyphs["che"], glyphs["missing"]
                assert ting["ink"] > 100 and che["ink"] > 100, (path, glyphs)
                assert len({ting["sig"], che["sig"], missing["sig"]}) == 3, (
                    f"{path}: Chinese characters render as the missing-glyph box"
                )
                scroll = await p.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert scroll[0] <= scroll[1], f"{path} at {width} px scrolls sideways: {scroll}"
                a11y = await p.evaluate(A11Y_JS)
                assert a11y["problems"] == [] and a11y["nav"] == 1, (path, a11y)
                if path != "/web/chargers":  # the charts fit the page: drawn, not cut off
                    for chart in ("svg.timeline", "svg.bars"):
                        box = await p.locator(chart).first.bounding_box()
                        assert box and box["width"] <= width and box["height"] > 10, chart
            assert errors == [], errors
        finally:
            await context.close()
