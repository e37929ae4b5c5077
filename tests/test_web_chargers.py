"""The charger health pages over plain HTTP against a running gateway (both databases): the
fleet shows what ``GET /api/v1/chargers`` shows, in the same order; a faulted charger's page
shows its OCPP and vendor codes; roles (inspectors read, operators also command: a 403 page for
an inspector who posts anyway); CSRF on the command forms; a command to a real charger (the
ocpp library's charge point over a websocket) answered and audited; unknown chargers and
hostile paths, queries and forms get a 4xx page, never a 5xx."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.test_web import FORM, csrf_of

pytestmark = pytest.mark.asyncio(loop_scope="module")
FAULTY = "SDEV005"  # faulted for real in these tests
TALKER = "SDEV006"  # connected and commanded


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, ocpp={"command_timeout_s": 5})
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def passwords(gw: Any) -> dict[str, str]:
    out = {}
    async with gw.services.persister._sessions.begin() as s:
        for cid in (FAULTY, TALKER):
            out[cid] = await set_password(s, cid, gw.services.clock())
    return out


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def ws(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"


async def login(http: httpx.AsyncClient, token: str) -> None:
    await http.get("/web/login")
    r = await http.post("/web/login", data={"csrf": csrf_of(http), "token": token})
    assert r.status_code == 303


async def audit(http: httpx.AsyncClient, tokens: dict[str, str], cid: str) -> list[Any]:
    r = await http.get(
        "/api/v1/audit",
        params={"kind": "charger", "key": cid},
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["action"] == "command"]


async def test_pages_need_a_login(http: httpx.AsyncClient) -> None:
    for page in ("/web/chargers", f"/web/chargers/{FAULTY}"):
        r = await http.get(page)
        assert r.status_code == 303 and r.headers["location"] == f"/web/login?next={page}"
    r = await http.post(f"/web/chargers/{TALKER}/command", data={"action": "reset-soft"})
    assert r.status_code == 303 and r.headers["location"] == "/web/login?next=/web/map"


async def test_the_fleet_page_shows_what_the_api_shows(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    api = {"Authorization": f"Bearer {tokens['inspector']}"}
    async with Charger16(ws(gw), FAULTY, passwords[FAULTY]) as c:
        await c.boot()
        await c.status(1, "Available")
        await c.fault(2, "GroundFailure", vendor_error_code="E-0x1F", info="RCD tripped")

        async def faulted() -> bool:
            body = (await http.get(f"/api/v1/chargers/{FAULTY}", headers=api)).json()
            return bool(body["state"] == "faulted")

        await wait_for(faulted, 10, what="charger faulted")
        await login(http, tokens["inspector"])
        page = await http.get("/web/chargers")
        fleet = (await http.get("/api/v1/chargers", headers=api)).json()
    assert page.status_code == 200, page.text
    shown = re.findall(r'id="charger-([^"]+)"', page.text)
    assert shown == [c["id"] for c in fleet["chargers"]]  # the same chargers, worst first
    assert shown[0] == FAULTY and 'aria-current="page">充电桩 · Chargers' in page.text
    for state, n in fleet["counts"].items():
        assert re.search(rf'id="count-{state}"[^>]*>[^<]*<span class="n">{n}</span>', page.text)
    card = page.text.split(f'id="charger-{FAULTY}"', 1)[1].split("</tr>", 1)[0]
    assert "connector 2 Faulted: GroundFailure" in card and "E-0x1F" in card

    detail = await http.get(f"/web/chargers/{FAULTY}")
    assert detail.status_code == 200
    faults = detail.text.split('id="faults"', 1)[1].split("</table>", 1)[0]
    assert "GroundFailure" in faults and "E-0x1F" in faults and "RCD tripped" in faults
    row = detail.text.split('id="connector-2"', 1)[1].split("</tr>", 1)[0]
    assert "Faulted" in row and "GroundFailure" in row and "E-0x1F" in row
    assert 'class="st-faulted"' in detail.text  # the timeline draws the fault
    assert "<svg" in detail.text and "style=" not in detail.text  # CSP: no inline style
    filtered = await http.get("/web/chargers", params={"state": "faulted"})
    assert filtered.status_code == 200, (
        filtered.status_code,
        filtered.text.split("<main", 1)[1][:600],
    )
    assert re.findall(r'id="charger-([^"]+)"', filtered.text) == [FAULTY]


async def test_roles_decide_who_reads_and_who_commands(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for role in ("device", "payments"):
        await login(http, tokens[role])
        for page in ("/web/chargers", f"/web/chargers/{FAULTY}"):
            r = await http.get(page)
            assert r.status_code == 403 and "<title>403" in r.text and role in r.text, page
        r = await http.post(
            f"/web/chargers/{TALKER}/command", data={"csrf": csrf_of(http), "action": "reset-soft"}
        )
        assert r.status_code == 403
    buttons = {}
    for role in ("inspector", "operator", "technician", "admin"):
        await login(http, tokens[role])
        r = await http.get(f"/web/chargers/{TALKER}")
        assert r.status_code == 200, role
        assert "充电桩 · Chargers" in (await http.get("/web/map")).text
        buttons[role] = ("/command" in r.text, 'class="cmd' in r.text)
    # as the API: POST /api/v1/chargers/{id}/commands/... admits operator, technician, admin
    assert buttons == {
        "inspector": (False, False),
        "operator": (True, True),
        "technician": (True, True),
        "admin": (True, True),
    }


async def test_an_inspector_posting_a_command_gets_403_and_nothing_is_sent(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    async with Charger16(ws(gw), TALKER, passwords[TALKER]) as c:
        await c.boot()
        await wait_for(lambda: TALKER in gw.services.charging.live, 5, what="connected")
        await login(http, tokens["inspector"])
        r = await http.post(
            f"/web/chargers/{TALKER}/command", data={"csrf": csrf_of(http), "action": "reset-soft"}
        )
        assert r.status_code == 403 and "Sending commands needs one of the roles" in r.text
        assert c.received == []
    assert await audit(http, tokens, TALKER) == []


async def test_an_operator_command_is_answered_shown_and_audited(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    async with Charger16(ws(gw), TALKER, passwords[TALKER]) as c:
        await c.boot()
        await c.status(1, "Available")
        await wait_for(lambda: TALKER in gw.services.charging.live, 5, what="connected")
        await login(http, tokens["operator"])
        url = f"/web/chargers/{TALKER}/command"
        # without, or with a wrong, CSRF field: 403 and nothing sent
        for csrf in (None, "", "x" * 43):
            data = {"action": "reset-soft"} | ({"csrf": csrf} if csrf is not None else {})
            r = await http.post(url, data=data)
            assert r.status_code == 403 and "<title>403" in r.text, csrf
        r = await http.post(url, data={"action": "reset-soft"}, headers={"hx-request": "true"})
        assert r.status_code == 403 and "<html" not in r.text and "expired" in r.text
        assert c.received == []

        r = await http.post(url, data={"csrf": csrf_of(http), "action": "reset-soft"})
        assert r.status_code == 200 and "<title>充电桩" in r.text  # the page, with the outcome
        assert "软重启 · Soft reset: 充电桩应答 · The charger answered: Accepted" in r.text
        assert c.received == [("Reset", {"type": "Soft"})]

        c.answers["UnlockConnector"] = "UnlockFailed"
        r = await http.post(
            url,
            data={"csrf": csrf_of(http), "action": "unlock", "connector": "1"},
            headers={"hx-request": "true"},
        )
        assert r.status_code == 200 and "<html" not in r.text  # the fragment htmx swaps in
        assert "解锁 · Unlock #1" in r.text and "UnlockFailed" in r.text
        assert 'class="outcome error"' in r.text

        for data, status in (
            ({"action": "launch"}, 422),
            ({"action": "unlock", "connector": "9"}, 422),
            ({"action": "unlock", "connector": "-1"}, 422),
            ({"action": "unlock", "connector": "1" * 50}, 422),
            ({"action": "unlock", "connector": "²"}, 422),
            ({"action": "unlock", "connector": ""}, 422),
            ({"action": "stop", "connector": "1"}, 422),  # no transaction on it
        ):
            r = await http.post(url, data={"csrf": csrf_of(http), **data})
            assert r.status_code == status, (data, r.status_code)
        assert len(c.received) == 2
    entries = await audit(http, tokens, TALKER)
    got = [(e["after"]["command"], e["after"]["outcome"], e["role"]) for e in entries]
    assert got == [
        ("unlock_connector", "UnlockFailed", "operator"),
        ("reset", "Accepted", "operator"),
    ]
    assert entries[1]["after"]["params"] == {"type": "soft"} and entries[0]["source"] == "web"
    await wait_for(lambda: TALKER not in gw.services.charging.live, 5, what="disconnected")
    r = await http.post(url, data={"csrf": csrf_of(http), "action": "reset-hard"})
    assert r.status_code == 409 and "The charger is not connected" in r.text
    assert len(await audit(http, tokens, TALKER)) == 2  # nothing went out


async def test_the_api_command_is_audited_as_the_page_is(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    before = len(await audit(http, tokens, TALKER))
    async with Charger16(ws(gw), TALKER, passwords[TALKER]) as c:
        await c.boot()
        await wait_for(lambda: TALKER in gw.services.charging.live, 5, what="connected")
        r = await http.post(
            f"/api/v1/chargers/{TALKER}/commands/reset",
            json={"type": "hard"},
            headers={"Authorization": f"Bearer {tokens['technician']}"},
        )
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
    entries = await audit(http, tokens, TALKER)
    assert len(entries) == before + 1
    assert entries[0]["after"] == {"command": "reset", "params": {"type": "hard"},
                                   "outcome": "Accepted"}  # fmt: skip
    assert entries[0]["role"] == "technician" and entries[0]["source"] == "api"


async def test_unknown_chargers_and_hostile_input_get_a_4xx_page(
    http: httpx.AsyncClient, gw: Any, tokens: dict[str, str]
) -> None:
    await login(http, tokens["operator"])
    for cid in ("NOPE", "x" * 500, "停车<script>", "%3Cb%3E", "SDEV001%20"):
        r = await http.get(f"/web/chargers/{cid}")
        assert r.status_code == 404 and "<title>404" in r.text, (cid, r.status_code)
        assert "<script>" not in r.text.split("<main", 1)[1]
        r = await http.post(f"/web/chargers/{cid}/command",
                            data={"csrf": csrf_of(http), "action": "reset-soft"})  # fmt: skip
        assert r.status_code == 404, cid
    for path, status in (
        ("/web/chargers/SDEV001%00", 422),
        ("/web/chargers?state=%00", 422),
        ("/web/chargers?state=broken", 400),
        ("/web/chargers?state=" + "f" * 5000, 400),
        ("/web/chargers?state=faulted&state=%FF", 400),
        ("/web/chargers/a/b", 404),
    ):
        r = await http.get(path)
        assert 400 <= r.status_code < 500 and r.status_code == status, (path, r.status_code)
    assert (await http.get("/web/chargers?state=available&x=%3Cscript%3E")).status_code == 200
    csrf = csrf_of(http)
    url = f"/web/chargers/{TALKER}/command"
    for body, headers, status in (
        (b"csrf=" + csrf.encode() + b"&action=" + b"a" * 20_000, FORM, 413),
        (f"csrf={csrf}&action=reset%00".encode(), FORM, 422),
        (f"csrf={csrf}&action=%FF%FE".encode(), FORM, 400),
        (f"csrf={csrf}&action=a&action=b".encode(), FORM, 400),
        (b"&".join(b"f%d=1" % i for i in range(40)), FORM, 413),
        (f'{{"csrf": "{csrf}"}}'.encode(), {"content-type": "application/json"}, 415),
    ):
        r = await http.post(url, content=body, headers=headers)
        assert r.status_code == status, (body[:40], r.status_code, r.text[:200])
        assert "text/html" in r.headers["content-type"]
