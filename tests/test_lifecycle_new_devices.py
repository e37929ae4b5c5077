"""New chargers and body cams start ``provisioned``, whichever way they come in (the CLI in
its own process, the API, a bulk import, the new device of a replacement), while the town
file's installed fleet stays ``active``; a provisioned charger connects over OCPP with the
``ocpp`` library's charge point, boots, charges (a billed session), is commissioned by its
checks and made active by its next heartbeat; a provisioned body cam registers with SIPp and
is commissioned the same way; the chargers' own lifecycle path (``citygate chargers set
--lifecycle``, ``PATCH /api/v1/chargers/{id}``) follows the one lifecycle: every state name,
a retired charger stays retired. Against a running gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.demo.ocpp import Charger16
from gateway.directory.lifecycle import LifeKind
from gateway.infra.storage.schema import AuditRow, BodycamRow, ChargerRow, OfficerRow
from gateway.services import lifecycle
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.sipp_device import run_sipp

pytestmark = pytest.mark.asyncio(loop_scope="module")
LIVE_S = 10.0
SITE = "cp-dongguan"
CAM_CLI, CAM_API, CAM_BULK, CAM_NEW = (
    "62072500081389990101", "62072500081389990102", "62072500081389990103",
    "62072500081389990104",
)  # fmt: skip
CAM_PASSWORD = "sipp-provisioned-1"
# what the tests below pass on: passwords given out once, town ids picked at the start
_given: dict[str, str] = {}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, bodycams={"persist_interval_s": 0.1})
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def auth(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


async def citygate(db_url: str, *args: str) -> tuple[int, str, str]:
    """The CLI in its own process, on the gateway's database (as a technician runs it)."""
    env = {**os.environ, "CITYGATE_DATABASE__URL": json.dumps(db_url)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def stored(gw: Any, kind: LifeKind, key: str) -> str | None:
    async with gw.services.sessions() as db:
        return await lifecycle.state_of(db, kind, key)


async def until_stored(gw: Any, kind: LifeKind, key: str, want: str) -> None:
    async def check() -> bool:
        return await stored(gw, kind, key) == want

    await wait_for(check, LIVE_S, what=f"{kind} {key} stored {want}")


async def commission(http: httpx.AsyncClient, token: str, device: str) -> dict[str, Any]:
    r = await http.post(f"/api/v1/commission/{device}", json={"cycle": False},
                        headers=auth(token))  # fmt: skip
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def audit_count(gw: Any, key: str) -> int:
    async with gw.services.sessions() as db:
        return len(list(await db.execute(select(AuditRow.id).where(AuditRow.key == key))))


async def test_the_town_fleet_is_active_and_every_way_in_is_provisioned(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], module_db_url: str
) -> None:
    tech = tokens["technician"]
    async with gw.services.sessions() as db:
        chargers = {r.id: r.lifecycle for r in (await db.execute(select(ChargerRow))).scalars()}
        cams = {r.id: (r.lifecycle, r.officer_id)
                for r in (await db.execute(select(BodycamRow))).scalars()}  # fmt: skip
        officers = sorted((await db.execute(select(OfficerRow.id))).scalars())
    # the sample town's installed fleet, as the town file imported it
    assert len(chargers) == 56 and set(chargers.values()) == {"active"}
    assert len(cams) >= 57 and {life for life, _ in cams.values()} == {"active"}
    town_chargers = sorted(chargers)
    _given["replace_charger"], _given["town_charger"] = town_chargers[-1], town_chargers[-2]
    _given["replace_cam"] = sorted(k for k, (_, o) in cams.items() if o)[-1]
    _given["officer"] = officers[0]

    # CLI, in its own process
    code, out, err = await citygate(module_db_url, "chargers", "add", "CP-NEW-CLI",
                                    "--site", SITE, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["id"] == "CP-NEW-CLI"
    code, out, err = await citygate(module_db_url, "bodycams", "add", CAM_CLI, "--json")
    assert code == 0, err
    # API
    r = await http.post("/api/v1/chargers", json={"id": "CP-NEW-API", "site_id": SITE,
                        "connectors": 2}, headers=auth(tech))  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["lifecycle"] == "provisioned"
    _given["CP-NEW-API"] = r.json()["password"]
    r = await http.post("/api/v1/devices/bodycams", headers=auth(tech), json={
        "id": CAM_API, "officer_id": _given["officer"], "password": CAM_PASSWORD})  # fmt: skip
    assert r.status_code == 201, r.text
    # bulk import
    toml = (
        f"[[chargers]]\nid = 'CP-NEW-BULK'\nsite_id = '{SITE}'\n[[bodycams]]\nid = '{CAM_BULK}'\n"
    )
    r = await http.post("/api/v1/import", content=toml.encode(),
                        headers=auth(tech, **{"Content-Type": "application/toml"}))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["added"] == {"charger": ["CP-NEW-BULK"], "bodycam": [CAM_BULK]}
    # the new device of a replacement, given inline
    old_charger, old_cam = _given["replace_charger"], _given["replace_cam"]
    r = await http.post(f"/api/v1/devices/{old_charger}/replace", json={"new": "CP-NEW-REPL"},
                        headers=auth(tech))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["new"]["lifecycle"] == "provisioned" and r.json()["new"]["created"]
    r = await http.post(f"/api/v1/devices/{old_cam}/replace", json={"new": CAM_NEW},
                        headers=auth(tech))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["new"]["lifecycle"] == "provisioned"

    for key in ("CP-NEW-CLI", "CP-NEW-API", "CP-NEW-BULK", "CP-NEW-REPL"):
        assert await stored(gw, LifeKind.CHARGER, key) == "provisioned", key
        # in the running gateway's fleet (the change feed), provisioned
        await wait_for(
            lambda key=key: getattr(gw.services.charging.chargers.get(key), "lifecycle", None)
            == "provisioned",
            LIVE_S, what=f"{key} provisioned in the fleet",
        )  # fmt: skip
    for cam in (CAM_CLI, CAM_API, CAM_BULK, CAM_NEW):
        assert await stored(gw, LifeKind.BODYCAM, cam) == "provisioned", cam
        # the registrar's view: a provisioned cam may register (only a retired one may not)
        await wait_for(
            lambda cam=cam: getattr(gw.services.bodycams.credentials.get(cam), "active", False),
            LIVE_S, what=f"{cam} may register",
        )  # fmt: skip
    assert await stored(gw, LifeKind.CHARGER, old_charger) == "retired"
    assert await stored(gw, LifeKind.BODYCAM, old_cam) == "retired"
    # nothing else of the town's fleet moved
    assert await stored(gw, LifeKind.CHARGER, _given["town_charger"]) == "active"


async def test_a_provisioned_charger_connects_charges_and_is_commissioned_then_active(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    key = "CP-NEW-API"
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    async with Charger16(url, key, _given[key], firmware="1.0.0") as c:
        boot = await c.boot()
        assert boot.status == "Accepted"
        await c.status(1, "Available")
        await c.status(2, "Available")
        # it charges, provisioned: billed by the posted tariff like any other session
        tx = await c.start_transaction(1, "APP-PROV-1", meter_start=0, timestamp=start)
        await c.meter_values(1, tx=tx, energy_wh=4_000, timestamp=start + timedelta(minutes=15))
        await c.stop_transaction(tx, meter_stop=8_000, timestamp=start + timedelta(minutes=30))

        async def closed() -> dict[str, Any] | None:
            r = await http.get(f"/api/v1/chargers/{key}/sessions",
                               headers=auth(tokens["inspector"]))  # fmt: skip
            got = [s for s in r.json()["sessions"] if s["state"] == "closed"]
            return got[0] if got else None

        session = await wait_for(closed, LIVE_S, what="the provisioned charger's session closed")
        bill = (await http.get(f"/api/v1/charging/sessions/{session['id']}")).json()["bill"]
        assert bill["energy_wh"] == 8_000 and bill["total_fen"] > 0
        # its messages do not put it in service: it is not commissioned yet
        assert await stored(gw, LifeKind.CHARGER, key) == "provisioned"

        async def passing() -> dict[str, Any] | None:
            doc = await commission(http, tokens["technician"], key)
            return doc if doc["passed"] else None

        doc = await wait_for(passing, LIVE_S, interval=0.1, what="the charger's checks pass")
        assert (doc["lifecycle"], doc["commissioned_now"]) == ("commissioned", True)
        await wait_for(
            lambda: gw.services.charging.chargers[key].lifecycle == "commissioned",
            LIVE_S, what="commissioned in the fleet",
        )  # fmt: skip
        await c.heartbeat()  # its first good message after the checks
        await until_stored(gw, LifeKind.CHARGER, key, "active")
    trail = select(AuditRow).where(AuditRow.key == key).order_by(AuditRow.id)
    async with gw.services.sessions() as db:
        moves = [
            (r.action, (r.after or {}).get("cause"))
            for r in (await db.execute(trail)).scalars()
            if r.action in ("commissioned", "active")
        ]
    assert moves == [("commissioned", "checks"), ("active", "message")]


async def test_a_provisioned_body_cam_registers_and_is_commissioned_then_active(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    b = gw.settings.bodycams
    sipp = await run_sipp(
        "keepalive.xml", gw.sip_port, CAM_API, CAM_PASSWORD,
        realm=b.effective_realm, platform=b.platform_id, workdir=tmp_path,
    )  # fmt: skip
    assert sipp.ok(), sipp.stdout[-2000:] + sipp.errors[-2000:]
    assert await stored(gw, LifeKind.BODYCAM, CAM_API) == "provisioned"
    doc = await commission(http, tokens["technician"], CAM_API)
    assert doc["passed"] is True, doc
    assert (doc["lifecycle"], doc["commissioned_now"]) == ("commissioned", True)
    await wait_for(
        lambda: gw.services.bodycams.credentials[CAM_API].lifecycle == "commissioned",
        LIVE_S, what="commissioned on the SIP platform",
    )  # fmt: skip
    again = await run_sipp(
        "keepalive.xml", gw.sip_port, CAM_API, CAM_PASSWORD,
        realm=b.effective_realm, platform=b.platform_id, workdir=tmp_path,
    )  # fmt: skip
    assert again.ok(), again.stdout[-2000:] + again.errors[-2000:]
    await until_stored(gw, LifeKind.BODYCAM, CAM_API, "active")


async def test_the_chargers_own_lifecycle_path_follows_the_rules(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], module_db_url: str
) -> None:
    tech = auth(tokens["technician"])
    town = _given["town_charger"]
    # every state name is accepted; the operator's moves of an active charger pass
    code, _, err = await citygate(module_db_url, "chargers", "set", town,
                                  "--lifecycle", "maintenance")  # fmt: skip
    assert code == 0, err
    await wait_for(lambda: gw.services.charging.in_maintenance(town), LIVE_S,
                   what="maintenance in the fleet")  # fmt: skip
    r = await http.patch(f"/api/v1/chargers/{town}", json={"lifecycle": "active"}, headers=tech)
    assert r.status_code == 200 and r.json()["lifecycle"] == "active", r.text
    # a provisioned charger is not put in service by a command: its checks come first
    code, _, err = await citygate(module_db_url, "chargers", "set", "CP-NEW-CLI",
                                  "--lifecycle", "active")  # fmt: skip
    assert code == 4 and "citygate commission CP-NEW-CLI" in err, err
    r = await http.patch("/api/v1/chargers/CP-NEW-BULK", json={"lifecycle": "commissioned"},
                         headers=tech)  # fmt: skip
    assert r.status_code == 409 and "commission" in r.json()["detail"], r.text
    # retired stays retired, through the CLI and the API, and nothing is written
    code, _, err = await citygate(module_db_url, "chargers", "set", "CP-NEW-CLI",
                                  "--lifecycle", "retired")  # fmt: skip
    assert code == 0, err
    await wait_for(lambda: "CP-NEW-CLI" not in gw.services.charging.chargers, LIVE_S,
                   what="the retired charger out of the fleet")  # fmt: skip
    entries = await audit_count(gw, "CP-NEW-CLI")
    for to in ("maintenance", "provisioned", "commissioned", "active"):
        r = await http.patch("/api/v1/chargers/CP-NEW-CLI", json={"lifecycle": to},
                             headers=tech)  # fmt: skip
        assert r.status_code == 409 and r.json()["code"] == "refused_transition", r.text
        assert "citygate devices replace" in r.json()["detail"]
    code, _, err = await citygate(module_db_url, "chargers", "set", "CP-NEW-CLI",
                                  "--lifecycle", "maintenance")  # fmt: skip
    assert code == 4 and "retired is final" in err and "citygate devices replace" in err, err
    code, out, _ = await citygate(module_db_url, "chargers", "set", "CP-NEW-CLI",
                                  "--lifecycle", "active", "--json")  # fmt: skip
    error = json.loads(out)["error"]
    assert code == 4 and error["code"] == "refused_transition" and "retired" in error["message"]
    assert "citygate devices replace" in error["message"]
    old = _given["replace_charger"]  # retired by its replacement
    r = await http.patch(f"/api/v1/chargers/{old}", json={"lifecycle": "active"}, headers=tech)
    assert r.status_code == 409, r.text
    assert await stored(gw, LifeKind.CHARGER, "CP-NEW-CLI") == "retired"
    assert await stored(gw, LifeKind.CHARGER, old) == "retired"
    assert await audit_count(gw, "CP-NEW-CLI") == entries
    # a name the lifecycle does not know: a usage error, not a move
    code, _, err = await citygate(module_db_url, "chargers", "set", town, "--lifecycle", "gone")
    assert code == 2 and "invalid choice" in err
    r = await http.patch(f"/api/v1/chargers/{town}", json={"lifecycle": "gone"}, headers=tech)
    assert r.status_code == 422, r.text
