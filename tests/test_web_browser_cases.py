"""The cases pages in a real browser (Debian's headless chromium, Playwright; the browser and
checks of tests/test_web_browser.py): a case raised by a detection and moved on by the case
system's callbacks, found with the list's filter form and opened from the list; the stepper;
screenshots of the list and the detail at 1280 and 375 px with Chinese drawn as glyphs, no
sideways scrolling at phone width, no script or CSP error, and the accessibility check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests import test_web_browser as wb
from tests.case_system import CaseSystem
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway
from tests.test_web_browser import A11Y_JS, GLYPHS_JS, log_in, png_size
from tests.test_web_cases import CAR_PARK, callback, detect, wait_delivery

pytestmark = pytest.mark.asyncio(loop_scope="module")
browser = wb.browser  # the same fixtures: one browser for the module, a page at 1280 px
page = wb.page


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def case_system() -> AsyncIterator[CaseSystem]:
    system = CaseSystem()
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(
    mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory, case_system: CaseSystem
) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("webc") / "cg.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}",
        mosquitto,
        cases={"url": case_system.url, "secret": case_system.secret.decode()},
    )
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def case_id(gw: Any, tokens: dict[str, str], case_system: CaseSystem) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as api:
        cid = await detect(
            api, tokens["device"], "abandoned_vehicle", 30, site_id=CAR_PARK.id, plate="甘G12345"
        )
        await wait_delivery(api, tokens["inspector"], cid, "delivered")
        for step in ("registered", "dispatched", "handled"):
            await callback(api, case_system, cid, step)
    return cid


async def test_find_a_case_with_the_filters_and_open_it(
    page: Page, tokens: dict[str, str], case_id: str
) -> None:
    await log_in(page, tokens["inspector"], "/web/cases")
    await page.get_by_label("步骤 · Step").select_option("handled")
    await page.get_by_label("停车点 · Site").select_option(CAR_PARK.id)
    await page.get_by_role("button", name="筛选 · Filter").click()
    await page.wait_for_url(f"**/web/cases?status=handled**site={CAR_PARK.id}**")
    row = page.locator(f"#case-{case_id}")
    assert "4/7 任务处置" in await row.inner_text()
    await page.get_by_label("步骤 · Step").select_option("closed")
    await page.get_by_role("button", name="筛选 · Filter").click()
    await page.get_by_role("status").filter(has_text="No case matches").wait_for()
    await page.get_by_role("link", name="清除 · Clear").click()
    await page.locator(f"#case-{case_id} a").click()
    await page.wait_for_url(f"**/web/cases/{case_id}")
    current = page.locator('.stepper li[aria-current="step"]')
    assert "任务处置" in await current.inner_text()
    assert await page.locator(".stepper li.s-done").count() == 3
    assert await page.locator(".stepper li.s-next").count() == 3
    assert "已送达 · delivered" in await page.locator("#delivery-state").inner_text()
    assert await page.get_by_role("button", name="重新发送 · Send again").count() == 0


async def test_screenshots_phone_width_and_accessibility(
    browser: Browser, gw: Any, tokens: dict[str, str], case_id: str, tmp_path: Path
) -> None:
    errors: list[str] = []  # script errors and Content-Security-Policy violations
    pages = {
        "/web/cases": ["案件 · Cases", CAR_PARK.id],
        f"/web/cases/{case_id}": ["七步流程", "任务处置 · handled", "发送到案件系统", "甘G12345"],
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
            await log_in(p, tokens["operator"], "/web/cases")
            for path, texts in pages.items():
                await p.goto(path)
                await p.locator("h1").wait_for()
                shot = await p.screenshot(full_page=False)
                name = "detail" if path != "/web/cases" else "list"
                (tmp_path / f"cases-{name}-{width}.png").write_bytes(shot)
                w, h = png_size(shot)
                assert (w, h) == (width, height) and len(shot) > 10_000, (path, w, h, len(shot))
                body = await p.locator("main").inner_text()
                for text in texts:
                    assert text in body, (path, text)

                glyphs = await p.evaluate(GLYPHS_JS)
                ting, che, missing = glyphs["ting"], glyphs["che"], glyphs["missing"]
                assert ting["ink"] > 100 and che["ink"] > 100, (path, glyphs)
                assert len({ting["sig"], che["sig"], missing["sig"]}) == 3, (
                    f"{path}: Chinese characters render as the missing-glyph box"
                )
                scroll = await p.evaluate("[document.documentElement.scrollWidth, innerWidth]")
                assert scroll[0] <= scroll[1], f"{path} at {width} px scrolls sideways: {scroll}"
                a11y = await p.evaluate(A11Y_JS)
                assert a11y["problems"] == [], (path, a11y)
            assert errors == [], errors
        finally:
            await context.close()
