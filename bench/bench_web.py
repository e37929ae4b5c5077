"""The web page in a real browser: the real gateway (``Gateway.open``, SQLite, the sample town,
a private Mosquitto) in this process and Debian's headless chromium (Playwright,
``executable_path=/usr/bin/chromium``), logged in with an operator's token. Figures:

- ``web_map_load_cold`` (ms, median of ``--loads``): ``/web/map`` in a fresh browser context
  (empty cache; only the login cookie added), from navigation start to the load event (the
  HTML and every asset: stylesheet, htmx, its SSE extension, map.js), by the page's own
  Navigation Timing. Baseline: the same cold navigation to one small static file of the gateway
  (the floor of a navigation on this machine: browser, loopback, server).
- ``web_map_load_warm`` (ms, median): the second load in the same context (the assets come
  from the browser's cache: they are immutable). Baseline: the cold load.
- ``web_map_bytes_cold`` (bytes): what the cold load transferred (Resource Timing
  ``transferSize``: headers and encoded bodies of the page and its assets; the live stream,
  which never ends, is not counted). Baseline: the bodies alone (``encodedBodySize``).
- ``web_uplink_to_dom_p50`` / ``_p99`` (ms, ``--samples`` uplinks): a berth sensor's
  ChirpStack uplink published over Mosquitto (one connected client, QoS 1; the wall time just
  before the publish) until the site's occupied count changed in the page's DOM (a
  MutationObserver on the count records ``Date.now()``: the same machine's wall clock, to
  the millisecond). Each uplink flips the berth (occupied, free, ...) so each is a real
  change, and the next is published only after the page showed the last one and
  ``--gap-ms`` more. Baseline: the same uplink until the site's ``SiteCountsChanged`` was
  published on the gateway's bus (the gateway's share: broker, decoding, occupancy; the rest
  is the stream and the browser).

One JSON line per figure (``bench.bench_ingest.emit``). Targets: cold load < 1 s on loopback,
< 600 KB transferred, uplink-to-DOM p99 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from bench.bench_ingest import emit
from drivers.sensors import nwave
from events import Event, SiteCountsChanged
from gateway.web import assets
from tests.conftest import gateway_settings, make_tokens, start_mosquitto, wait_for
from tests.test_e2e_sensors import chirpstack, sensor_of

CHROMIUM = "/usr/bin/chromium"

# Navigation and resource timing of the page just loaded (the live stream excluded).
TIMING_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource").filter(
    (r) => !r.name.includes("/stream"));
  return {
    load: nav.loadEventEnd - nav.startTime,
    html: nav.responseEnd - nav.startTime,
    transfer: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
    body: nav.encodedBodySize + res.reduce((s, r) => s + r.encodedBodySize, 0),
    resources: res.length,
  };
}"""

# Record when the site's occupied count changes, in epoch milliseconds: Date.now(), the wall
# clock Python's time.time() reads too (performance.timeOrigin + performance.now() runs on a
# monotonic clock and may be milliseconds off the wall clock).
OBSERVE_JS = """(id) => {
  window.__marks = [];
  const cell = document.getElementById("c-" + id);
  const read = () => (cell.querySelector(".n-occ") || {}).textContent;
  let last = read();
  new MutationObserver(() => {
    const now = read();
    if (now !== last) {
      last = now;
      window.__marks.push({t: Date.now(), occ: now});
    }
  }).observe(cell, {childList: true, subtree: true, characterData: true});
}"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def new_context(browser: Browser, base: str, cookies: list[Any]) -> BrowserContext:
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    await context.add_cookies(cookies)
    return context


async def log_in(browser: Browser, base: str, token: str) -> list[Any]:
    """The login cookies a person gets (the form, as in the browser tests)."""
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    await page.goto("/web/login?next=/web/map")
    await page.get_by_label("API 令牌 · API token").fill(token)
    await page.get_by_role("button", name="登录 · Log in").click()
    await page.wait_for_url("**/web/map")
    cookies = await context.cookies()
    await context.close()
    return cookies


async def timed_load(page: Page, path: str) -> dict[str, float]:
    await page.goto(path, wait_until="load")
    await page.wait_for_function(
        "() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0"
    )
    out: dict[str, float] = await page.evaluate(TIMING_JS)
    return out


async def page_loads(browser: Browser, base: str, cookies: list[Any], n: int) -> None:
    floor, cold, warm, transfer, body, html = [], [], [], [], [], []
    static = assets.url("VENDORED.txt")
    for _ in range(n):
        ctx = await new_context(browser, base, cookies)
        page = await ctx.new_page()
        floor.append((await timed_load(page, static))["load"])
        await ctx.close()
        ctx = await new_context(browser, base, cookies)
        page = await ctx.new_page()
        first = await timed_load(page, "/web/map")
        cold.append(first["load"])
        html.append(first["html"])
        transfer.append(first["transfer"])
        body.append(first["body"])
        resources = int(first["resources"])
        warm.append((await timed_load(page, "/web/map"))["load"])
        await ctx.close()
    cold_ms = statistics.median(cold)
    emit("web_map_load_cold", cold_ms, "ms", statistics.median(floor), loads=n,
         max_ms=round(max(cold), 2), html_ms=round(statistics.median(html), 2),
         resources=resources, target_ms=1000)  # fmt: skip
    emit("web_map_load_warm", statistics.median(warm), "ms", cold_ms, loads=n,
         max_ms=round(max(warm), 2))  # fmt: skip
    emit("web_map_bytes_cold", statistics.median(transfer), "bytes", statistics.median(body),
         target_bytes=600_000)  # fmt: skip


async def uplink_to_dom(
    browser: Browser, base: str, cookies: list[Any], gw: Any, broker_port: int, n: int, gap: float
) -> None:
    dev_eui, _, site_id = sensor_of("nwave-nps405")
    ctx = await new_context(browser, base, cookies)
    page = await ctx.new_page()
    await page.goto("/web/map")
    await page.locator('#live[data-state="open"]').wait_for(timeout=10_000)
    await page.evaluate(OBSERVE_JS, site_id)

    bus_at: list[float] = []

    def accepts(e: Event) -> bool:
        # called inside EventBus.publish: the moment the gateway publishes the site's change
        # (a subscriber task's own wake-up would add the loop's queueing to the baseline)
        if isinstance(e, SiteCountsChanged) and e.site_id == site_id:
            bus_at.append(time.time() * 1000)
        return False

    sub = gw.services.bus.subscribe("bench-web", accepts, maxsize=1)
    dom_ms: list[float] = []
    bus_ms: list[float] = []
    topic = f"application/app-1/device/{dev_eui}/event/up"
    try:
        async with aiomqtt.Client(
            "127.0.0.1", broker_port, identifier=f"bench-web-{uuid.uuid4().hex[:6]}"
        ) as mqtt:
            for i in range(n):
                port, data = nwave.encode_status(i % 2 == 0)
                payload = chirpstack(dev_eui, port, data, 100 + i)
                buses = len(bus_at)
                sent = time.time() * 1000
                await mqtt.publish(topic, payload, qos=1)
                await page.wait_for_function(
                    "(k) => window.__marks.length > k", arg=i, timeout=10_000
                )
                mark = await page.evaluate("(k) => window.__marks[k]", i)
                dom_ms.append(mark["t"] - sent)
                await wait_for(lambda b=buses: len(bus_at) > b, 10, what="bus event")  # type: ignore[misc]
                bus_ms.append(bus_at[buses] - sent)
                await asyncio.sleep(gap)  # spacing: each uplink is a change of its own
    finally:
        gw.services.bus.unsubscribe(sub)
        await ctx.close()
    emit("web_uplink_to_dom_p50", pct(dom_ms, 0.5), "ms", pct(bus_ms, 0.5), samples=n)
    emit("web_uplink_to_dom_p99", pct(dom_ms, 0.99), "ms", pct(bus_ms, 0.99), samples=n,
         max_ms=round(max(dom_ms), 2), target_ms=1000)  # fmt: skip


async def main(loads: int, samples: int, gap_ms: float) -> None:
    from gateway.supervisor import Gateway

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-web-"))
    broker = start_mosquitto(tmp / "mqtt")
    try:
        settings = gateway_settings(f"sqlite+aiosqlite:///{tmp / 'cg.db'}", broker)
        gw = await Gateway.open(settings)
        run = asyncio.create_task(gw.run())
        try:
            await wait_for(lambda: gw.started.is_set() or run.done(), 30, what="gateway start")
            if run.done():
                run.result()
            await wait_for(gw.services.transport.connected.is_set, 10, what="MQTT connected")
            token = (await make_tokens(gw))["operator"]
            base = f"http://127.0.0.1:{gw.api_port}"
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    cookies = await log_in(browser, base, token)
                    await page_loads(browser, base, cookies, loads)
                    await uplink_to_dom(
                        browser, base, cookies, gw, broker.port, samples, gap_ms / 1000
                    )
                finally:
                    await browser.close()
        finally:
            gw.request_stop()
            await asyncio.wait({run}, timeout=30)
    finally:
        broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=10, help="cold and warm loads of the map")
    ap.add_argument("--samples", type=int, default=200, help="uplinks timed to the DOM")
    ap.add_argument("--gap-ms", type=float, default=50.0, help="pause after each change")
    a = ap.parse_args()
    asyncio.run(main(a.loads, a.samples, a.gap_ms))
