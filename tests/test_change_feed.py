"""One source of truth, followed live: what a technician changes through the CLI (another
process) or the API takes effect in the running gateway within seconds, without a restart —
chargers, tokens, the town, posted tariffs — on SQLite (polling) and PostgreSQL (NOTIFY)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import InvalidStatus

from gateway.demo.ocpp import Charger16
from gateway.directory.town import SAMPLE_TOWN
from gateway.services.parking.quotes import QuoteRequest, make_quote
from parking.tariff_file import load_sample_tariffs, loads_tariffs
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ZONE = ZoneInfo("Asia/Shanghai")
LIVE_S = 2.0  # a change is live within this, whichever door it came through
DATA = Path(__file__).parent.parent / "gateway" / "data"


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


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def citygate(db_url: str, *args: str) -> tuple[int, str, str]:
    """The CLI in its own process, on the gateway's database (as a technician runs it)."""
    env = {**os.environ, "CITYGATE_DATABASE__URL": json.dumps(db_url)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def ocpp_url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"


async def shown(http: httpx.AsyncClient, token: str, charger_id: str) -> dict[str, Any] | None:
    r = await http.get(f"/api/v1/chargers/{charger_id}", headers=auth(token))
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def connects_and_shows(
    gw: Any, http: httpx.AsyncClient, token: str, charger_id: str, password: str
) -> dict[str, Any]:
    """The charger's handshake is accepted and the inspector sees it online within LIVE_S."""
    async with Charger16(ocpp_url(gw), charger_id, password) as c:
        await c.boot()

        async def online() -> dict[str, Any] | None:
            body = await shown(http, token, charger_id)
            return body if body is not None and body["online"] else None

        body: dict[str, Any] = await wait_for(online, LIVE_S, what=f"{charger_id} live")
    return body


async def test_a_charger_added_through_the_cli_connects_and_shows_at_once(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], module_db_url: str
) -> None:
    code, out, err = await citygate(
        module_db_url, "chargers", "add", "CLI-NEW-1", "--site", "cp-tonghe", "--json"
    )
    assert code == 0, err
    password = json.loads(out)["password"]
    body = await connects_and_shows(gw, http, tokens["inspector"], "CLI-NEW-1", password)
    assert body["site_id"] == "cp-tonghe"
    fleet = (await http.get("/api/v1/chargers", headers=auth(tokens["inspector"]))).json()
    assert "CLI-NEW-1" in {c["id"] for c in fleet["chargers"]}


async def test_a_charger_added_through_the_api_connects_shows_rotates_and_retires(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    tech = auth(tokens["technician"])
    new = {"id": "API-NEW-1", "site_id": "cp-shiminting", "connectors": 2, "vendor": "XJ"}
    r = await http.post("/api/v1/chargers", json=new, headers=tech)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["place"] == "市民大厅停车场" and created["connectors"] == 2
    password = created["password"]
    body = await connects_and_shows(gw, http, tokens["inspector"], "API-NEW-1", password)
    assert password not in json.dumps(body)  # shown once: never again
    assert [c["id"] for c in body["connectors"]] == [1, 2]

    # The same id twice, bad bodies, unknown ids: clear refusals.
    assert (await http.post("/api/v1/chargers", json=new, headers=tech)).status_code == 409
    for bad in (
        {**new, "id": "API-NEW-2", "connectors": 99},
        {**new, "id": "API-NEW-2", "site_id": "cp-nowhere"},
        {"id": "API-NEW-2"},  # neither a site nor a place
        {**new, "id": "bad id with spaces"},
    ):
        r = await http.post("/api/v1/chargers", json=bad, headers=tech)
        assert r.status_code == 422, (bad, r.text)
    assert (await http.post("/api/v1/chargers/NOPE/password", headers=tech)).status_code == 404
    r = await http.patch("/api/v1/chargers/NOPE", json={"lifecycle": "retired"}, headers=tech)
    assert r.status_code == 404
    inspector = auth(tokens["inspector"])
    assert (await http.post("/api/v1/chargers", json=new, headers=inspector)).status_code == 403

    # Rotation: the new password opens the connection, the old one no longer does.
    r = await http.post("/api/v1/chargers/API-NEW-1/password", headers=tech)
    assert r.status_code == 200
    rotated = r.json()["password"]
    assert rotated != password
    with pytest.raises(InvalidStatus) as refused:
        async with Charger16(ocpp_url(gw), "API-NEW-1", password):
            pass
    assert refused.value.response.status_code == 401

    # Moving it: the inspector sees the new site at once.
    r = await http.patch("/api/v1/chargers/API-NEW-1", json={"site_id": "cp-tonghe"}, headers=tech)
    assert r.status_code == 200 and r.json()["site_id"] == "cp-tonghe"

    async def moved() -> bool:
        body = await shown(http, tokens["inspector"], "API-NEW-1")
        return body is not None and body["site_id"] == "cp-tonghe"

    await wait_for(moved, LIVE_S, what="charger moved")

    # Retiring a connected charger: its connection is closed, the handshake refused, and it
    # leaves the fleet and the public map.
    async with Charger16(ocpp_url(gw), "API-NEW-1", rotated) as c:
        await c.boot()
        r = await http.patch(
            "/api/v1/chargers/API-NEW-1", json={"lifecycle": "retired"}, headers=tech
        )
        assert r.status_code == 200 and r.json()["lifecycle"] == "retired"
        await asyncio.wait_for(c.wait_closed(), LIVE_S)
    with pytest.raises(InvalidStatus) as refused:
        async with Charger16(ocpp_url(gw), "API-NEW-1", rotated):
            pass
    assert refused.value.response.status_code == 401
    assert await shown(http, tokens["inspector"], "API-NEW-1") is None
    fleet = (await http.get("/api/v1/chargers", headers=inspector)).json()
    assert "API-NEW-1" not in {c["id"] for c in fleet["chargers"]}
    locations = (await http.get("/api/v1/charging/locations")).json()["locations"]
    assert not any(e["uid"].startswith("API-NEW-1*") for loc in locations for e in loc["evses"])


async def test_a_cli_token_works_at_once_and_a_revoked_one_stops_at_once(
    gw: Any, http: httpx.AsyncClient, module_db_url: str
) -> None:
    code, out, err = await citygate(module_db_url, "token", "create", "--role", "inspector")
    assert code == 0, err
    token = out.strip()
    r = await http.get("/api/v1/chargers", headers=auth(token))
    assert r.status_code == 200  # no wait
    code, _, err = await citygate(module_db_url, "token", "revoke", token.split("_")[1])
    assert code == 0, err
    r = await http.get("/api/v1/chargers", headers=auth(token))
    assert r.status_code == 401  # no wait


def _town_with_a_new_car_park(tmp: Path) -> Path:
    text = (DATA / SAMPLE_TOWN).read_text("utf-8")
    text += (
        "\n[[sites]]\n"
        'id = "cp-xinjian"\nname = "新建停车场"\nkind = "car_park"\n'
        "lat = 38.7801\nlon = 101.0805\ncapacity = 150\n"
        'counting = "entry_exit"\nsegment_class = "B"\ncontroller_id = "ctl-xinjian"\n'
    )
    path = tmp / "town.toml"
    path.write_text(text, "utf-8")
    return path


async def test_a_town_import_adding_a_car_park_shows_in_the_vacancy_map(
    gw: Any, http: httpx.AsyncClient, module_db_url: str, tmp_path: Path
) -> None:
    town = _town_with_a_new_car_park(tmp_path)
    code, out, err = await citygate(module_db_url, "town", "import", str(town))
    assert code == 0, err
    assert json.loads(out)["created"] == {"sites": 1, "devices": 1}

    async def listed() -> dict[str, Any] | None:
        sites = (await http.get("/api/v1/sites")).json()["sites"]
        return next((s for s in sites if s["id"] == "cp-xinjian"), None)

    site = await wait_for(listed, 5, what="the new car park in /api/v1/sites")
    assert (site["capacity"], site["unknown"], site["counting"]) == (150, 150, "entry_exit")
    # The rest of the gateway knows it too: its posted tariff, its lane controller.
    r = await http.get("/api/v1/sites/cp-xinjian/tariff")
    assert r.status_code == 200 and r.json()["site_class"] == "B"
    assert gw.services.live.controllers["cp-xinjian"] == "ctl-xinjian"
    assert gw.services.live.directory.get("ctl-xinjian") is not None


async def test_a_tariff_import_changes_a_quote_live(
    gw: Any, http: httpx.AsyncClient, module_db_url: str, tmp_path: Path
) -> None:
    stay = {
        "site_id": "cp-renminyiyuan",
        "vehicle_class": "small",
        "entry": "2026-03-10T09:00:00+08:00",
        "exit": "2026-03-10T12:00:00+08:00",
    }
    before = (await http.post("/api/v1/quotes", json=stay)).json()
    site = gw.services.live.sites["cp-renminyiyuan"]
    assert before == make_quote(load_sample_tariffs(ZONE), site, QuoteRequest(**stay))
    text = (Path(__file__).parent.parent / "parking" / "data" / "sample_tariffs.toml").read_text(
        "utf-8"
    )
    dearer = text.replace("rate_fen = 100,", "rate_fen = 300,")
    assert dearer != text
    new = tmp_path / "tariffs.toml"
    new.write_text(dearer, "utf-8")
    expected = make_quote(loads_tariffs(dearer, zone=ZONE), site, QuoteRequest(**stay))
    assert expected["total_fen"] != before["total_fen"]

    broken = tmp_path / "broken.toml"
    broken.write_text(dearer.replace("rate_fen = 300,", 'rate_fen = "3",', 1), "utf-8")
    code, _, err = await citygate(module_db_url, "tariffs", "import", str(broken))
    assert code == 1 and "rate_fen must be an integer" in err and "broken.toml" in err

    code, _, err = await citygate(module_db_url, "tariffs", "import", str(new))
    assert code == 0, err

    async def requoted() -> bool:
        r = await http.post("/api/v1/quotes", json=stay)
        return bool(r.json() == expected)

    await wait_for(requoted, LIVE_S, what="the quote at the new tariff")
    # The CLI quotes what the API quotes: the tariff in force in the database.
    code, out, err = await citygate(
        module_db_url,
        "tariff",
        "quote",
        "--site",
        stay["site_id"],
        "--vehicle",
        "small",
        "--entry",
        stay["entry"],
        "--exit",
        stay["exit"],
    )
    assert code == 0, err
    assert json.loads(out) == expected


async def test_the_feed_position_is_in_the_metrics(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    text = (await http.get("/metrics", headers=auth(tokens["inspector"]))).text
    assert "citygate_changes_applied_seq" in text and "citygate_changes_lag_seconds" in text
    assert gw.metrics_value("citygate_changes_applied_seq") == gw.services.follower.applied_seq > 0


async def test_a_sensor_replaced_through_the_cli_is_bound_live(
    gw: Any, http: httpx.AsyncClient, module_db_url: str
) -> None:
    site, berth = "cp-zhening", "cp-zhening-002"

    async def sensor() -> str | None:
        berths = (await http.get(f"/api/v1/sites/{site}/berths")).json()["berths"]
        found = next(b for b in berths if b["id"] == berth)["sensor"]
        return None if found is None else str(found["dev_eui"])

    old = await sensor()
    assert old is not None
    code, _, err = await citygate(module_db_url, "devices", "set", old, "--lifecycle", "retired")
    assert code == 0, err
    await wait_for(lambda: _none(sensor()), LIVE_S, what="the old sensor unbound")
    new = "a84041000181beef"
    code, out, err = await citygate(
        module_db_url, "devices", "add", new, "--model", "nwave-nps405", "--berth", berth
    )
    assert code == 0, err
    assert json.loads(out)["berth_id"] == berth
    await wait_for(lambda: _equal(sensor(), new), LIVE_S, what="the new sensor bound")
    code, _, err = await citygate(module_db_url, "devices", "add", "not-hex", "--model", "x")
    assert code == 2 and "dev_eui" in err


async def _none(value: Any) -> bool:
    return await value is None


async def _equal(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
