"""The field page over plain HTTP against a running gateway (SQLite and PostgreSQL): who sees
it (GET /api/v1/field's roles), the drone loudspeaker and return home for operators only (a
403 page for the others, buttons shown to operators only), their outcome recorded as the API
records it and shown, CSRF, and hostile forms (a 4xx, never a 5xx). No vehicle flies here:
drone-2 is a MAVLink vehicle (no loudspeaker: ``rejected``), never heard (its return home is
refused by its link: ``rejected``); a flying one is in tests/test_web_browser_ops.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.directory.town import load_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway
from tests.test_web import FORM, csrf_of, login

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOWN = load_town(None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, drones={"speaker_max_chars": 50})
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


async def commands(http: httpx.AsyncClient, tokens: dict[str, str], drone: str) -> list[Any]:
    r = await http.get(
        f"/api/v1/drones/{drone}", headers={"Authorization": f"Bearer {tokens['operator']}"}
    )
    assert r.status_code == 200, r.text
    out: list[Any] = r.json()["commands"]
    return out


async def test_who_sees_the_field_and_who_may_command(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await http.get("/web/field")
    assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/field"
    for role in ("device", "payments", "technician"):
        await login(http, tokens[role])
        r = await http.get("/web/field")
        assert r.status_code == 403 and "<title>403" in r.text and role in r.text, role
        assert "外勤 · Field" not in r.text
    officers = sum(1 for _ in TOWN.officers)
    for role, may in (("inspector", False), ("operator", True), ("admin", True)):
        await login(http, tokens[role])
        r = await http.get("/web/field")
        assert r.status_code == 200, role
        assert r.text.count('<tr id="cam-') == officers, role
        assert 'id="drone-drone-1"' in r.text and 'id="drone-drone-2"' in r.text
        assert ("喊话 · Speak" in r.text) is may and ("返航 · Return home" in r.text) is may, role
        # the loudspeaker only where the link has one: drone-1 (DJI), not drone-2 (MAVLink)
        assert ("/drones/drone-1/speaker" in r.text) is may
        assert "/drones/drone-2/speaker" not in r.text
        assert ("此无人机无喊话器" in r.text) is may
        assert ("/drones/drone-2/return-home" in r.text) is may
        squads = {o.squad for o in TOWN.officers}
        assert all(s in r.text for s in squads)
        assert 'aria-current="page">外勤 · Field' in r.text


async def test_an_inspector_posting_anyway_gets_a_403_and_nothing_is_sent(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    before = len(await commands(http, tokens, "drone-2"))
    await login(http, tokens["inspector"])
    for path, data in (
        ("/web/field/drones/drone-2/speaker", {"text": "请勿停车", "volume": "50"}),
        ("/web/field/drones/drone-2/return-home", {}),
    ):
        r = await http.post(path, data={"csrf": csrf_of(http), **data})
        assert r.status_code == 403 and "<main" in r.text, path
    assert len(await commands(http, tokens, "drone-2")) == before


async def test_the_speaker_and_return_home_are_recorded_and_their_outcome_shown(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["operator"])
    await http.get("/web/field")
    r = await http.post(
        "/web/field/drones/drone-2/speaker",
        data={"csrf": csrf_of(http), "text": " 请勿 占道经营 ", "volume": "60", "loop": "on"},
    )
    assert r.status_code == 303, r.text
    m = re.fullmatch(r"/web/field\?command=([^#]+)#drone-drone-2", r.headers["location"])
    assert m, r.headers["location"]
    cmd = next(c for c in await commands(http, tokens, "drone-2") if c["id"] == m.group(1))
    # as the API: text folded, the volume and loop given; a MAVLink vehicle has no speaker
    assert cmd["kind"] == "speaker" and cmd["status"] == "rejected"
    assert cmd["args"] == {"text": "请勿 占道经营", "volume": 60, "loop": True}
    assert cmd["requested_by"] == "test operator"
    page = await http.get(r.headers["location"])
    done = re.search(r'id="command-done">(.*?)</p>', page.text, re.S)
    assert done and "被拒绝 · rejected" in done.group(1) and "drone-2" in done.group(1)
    assert f'id="cmd-{cmd["id"]}" data-status="rejected"' in page.text
    # return home to a vehicle never heard: recorded, refused by its link, shown
    r = await http.post("/web/field/drones/drone-2/return-home", data={"csrf": csrf_of(http)})
    assert r.status_code == 303, r.text
    latest = (await commands(http, tokens, "drone-2"))[0]
    assert (latest["kind"], latest["status"]) == ("return_home", "rejected")
    assert r.headers["location"].startswith(f"/web/field?command={latest['id']}#")
    page = await http.get(r.headers["location"])
    done = re.search(r'id="command-done">(.*?)</p>', page.text, re.S)
    assert done and "返航 · return home" in done.group(1) and "被拒绝 · rejected" in done.group(1)
    assert "unknown vehicle" in done.group(1)


async def test_hostile_command_forms_get_a_4xx(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await login(http, tokens["operator"])
    csrf = csrf_of(http)
    before = len(await commands(http, tokens, "drone-1"))
    speaker = "/web/field/drones/drone-1/speaker"  # the drone with a loudspeaker: its form
    for fields, say in (
        ({"text": ""}, "Say something"),
        ({"text": "   "}, "Say something"),
        ({"text": "长" * 51}, "at most 50"),
        ({"text": "x" * 5000}, "at most 50"),
        ({"text": "bell\x07"}, "control characters"),
        ({"text": "ok", "volume": "101"}, "0 to 100"),
        ({"text": "ok", "volume": "-1"}, "0 to 100"),
        ({"text": "ok", "volume": "loud"}, "0 to 100"),
        ({"text": "ok", "volume": "１０"}, "0 to 100"),  # full-width digits
        ({"text": "ok", "loop": "maybe"}, "checkbox"),
    ):
        r = await http.post(speaker, data={"csrf": csrf, **fields})
        assert r.status_code == 422 and say in r.text, (fields, r.status_code, r.text[:300])
        assert 'aria-invalid="true"' in r.text
    r = await http.post(speaker, data={"csrf": csrf, "text": "nul\x00"})
    assert r.status_code == 422
    r = await http.post(speaker, data={"text": "no csrf"})
    assert r.status_code == 403
    r = await http.post("/web/field/drones/drone-2/return-home", data={"csrf": "y" * 43})
    assert r.status_code == 403
    r = await http.post("/web/field/drones/drone-9/speaker", data={"csrf": csrf, "text": "hi"})
    assert r.status_code == 404 and "drone-9" in r.text
    r = await http.post(f"/web/field/drones/{'z' * 300}/return-home", data={"csrf": csrf})
    assert r.status_code == 404
    for body, headers, status in (
        (f"csrf={csrf}&text=".encode() + b"a" * 20_000, FORM, 413),
        (f"csrf={csrf}&text=%FF".encode(), FORM, 400),
        (f"csrf={csrf}&text=a&text=b".encode(), FORM, 400),
        (b"&".join(b"f%d=1" % i for i in range(40)), FORM, 413),
        (f'{{"csrf": "{csrf}"}}'.encode(), {"content-type": "application/json"}, 415),
    ):
        r = await http.post(speaker, content=body, headers=headers)
        assert r.status_code == status, (body[:40], r.status_code)
    assert len(await commands(http, tokens, "drone-1")) == before  # nothing was sent


async def field_events(
    http: httpx.AsyncClient, until: Any, timeout: float = 5.0
) -> list[tuple[float, str]]:
    """The map stream's ``field`` events (arrival time, data) until *until*(events) holds;
    the stream is read from its first line (the counts snapshot comes first)."""
    import asyncio
    import contextlib
    import time

    got: list[tuple[float, str]] = []

    async def read() -> None:
        async with http.stream("GET", "/web/map/stream") as r:
            assert r.status_code == 200
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "field":
                    got.append((time.monotonic(), line[6:]))
                    if until(got):
                        return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), timeout)
    return got


async def test_the_map_stream_moves_field_markers_coalesced_and_role_scoped(
    http: httpx.AsyncClient, tokens: dict[str, str], gw: Any
) -> None:
    import asyncio
    from datetime import UTC, datetime

    from events import BodycamPosition

    cam = next(o for o in TOWN.officers if o.bodycam).bodycam
    assert cam is not None
    bus = gw.services.bus
    site = TOWN.sites[0]

    def burst() -> None:  # ten fixes within a few ms: the page gets the first and the newest
        for i in range(10):
            bus.publish(
                BodycamPosition(device_id=cam, ts=datetime.now(UTC), lat=site.lat + i * 1e-5,
                                lon=site.lon)
            )  # fmt: skip

    async def published_when_subscribed() -> None:
        from tests.conftest import wait_for

        await wait_for(lambda: "web-map" in bus.depths(), 5, what="the stream")
        burst()

    await login(http, tokens["inspector"])
    task = asyncio.create_task(published_when_subscribed())
    events = await field_events(http, lambda got: len(got) > 2, timeout=3)
    await task
    assert len(events) == 2, events  # within 3 s: the first at once, the newest a second on
    (t1, first), (t2, _) = events
    assert f'data-mk="o-{cam}"' in first and 'data-kind="officer"' in first
    assert 'data-on="1"' in first and 'data-in="1"' in first
    assert t2 - t1 >= 0.9, (t1, t2)  # at most one update per marker per second
    # the newest fix (i = 9) is the one that lands
    ys = [float(e.split('data-y="')[1].split('"')[0]) for _, e in events]
    assert ys[1] < ys[0]  # further north: a smaller y
    # a technician's map has no field layer: no field events on its stream
    await login(http, tokens["technician"])
    task = asyncio.create_task(published_when_subscribed())
    events = await field_events(http, lambda got: True, timeout=1.5)
    await task
    assert events == []
