"""EV chargers through a running gateway: simulated chargers (the ocpp library's own
ChargePoint over real websockets) boot, fault, charge, go offline and come back; inspectors
see health, operators send commands, the app sees availability and bills."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import InvalidStatus

from gateway.demo.ocpp import Charger16, Charger201, SimCharger
from gateway.directory.chargers import set_password
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(
        module_db_url, mosquitto, ocpp={"faulted_report_after_s": 60, "heartbeat_s": 60}
    )
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def passwords(gw: Any) -> dict[str, str]:
    """Every sample charger provisioned with a password (as `citygate chargers set-password`)."""
    out = {}
    async with gw.services.persister._sessions.begin() as s:
        for cid in gw.services.charging.chargers:
            out[cid] = await set_password(s, cid, gw.services.clock())
    return out


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def charger(http: httpx.AsyncClient, tokens: dict[str, str], cid: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/chargers/{cid}", headers=auth(tokens["inspector"]))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_boot_status_and_a_fault_reach_the_inspector(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    async with Charger16(url(gw), "SDEV001", passwords["SDEV001"], firmware="2.3.1") as c:
        await c.boot()
        await c.status(1, "Available")
        await c.status(2, "Available")

        async def online() -> dict[str, Any] | None:
            body = await charger(http, tokens, "SDEV001")
            ok = body["online"] and body["state"] == "available"
            return body if ok and body["firmware"] == "2.3.1" else None

        body = await wait_for(online, 10, what="charger online and available")
        assert body["protocol"] == "ocpp1.6" and body["site_id"] == "cp-shiminting"
        assert [(x["id"], x["status"]) for x in body["connectors"]] == [
            (1, "Available"),
            (2, "Available"),
        ]

        await c.fault(2, "GroundFailure", vendor_error_code="E-0x1F")

        async def faulted() -> dict[str, Any] | None:
            body = await charger(http, tokens, "SDEV001")
            return body if body["state"] == "faulted" else None

        body = await wait_for(faulted, 10, what="charger faulted")
        assert "GroundFailure" in body["reason"]
        conn2 = next(x for x in body["connectors"] if x["id"] == 2)
        assert (conn2["status"], conn2["error_code"], conn2["vendor_error_code"]) == (
            "Faulted",
            "GroundFailure",
            "E-0x1F",
        )
        fleet = (await http.get("/api/v1/chargers", headers=auth(tokens["inspector"]))).json()
        assert fleet["total"] == len(gw.services.charging.chargers)
        assert fleet["chargers"][0]["id"] == "SDEV001"  # worst first
        assert fleet["counts"]["faulted"] == 1

        async def fault_event() -> bool:  # the recorder writes events behind the live view
            r = await http.get("/api/v1/chargers/SDEV001/events", headers=auth(tokens["inspector"]))
            return any(
                e["kind"] == "status" and e["error_code"] == "GroundFailure"
                for e in r.json()["events"]
            )

        await wait_for(fault_event, 5, what="the fault in the charger's events")
        # The public sees the connector out of order, not the internals.
        locs = (await http.get("/api/v1/charging/locations")).json()["locations"]
        here = next(loc for loc in locs if loc["id"] == "cp-shiminting")
        statuses = {e["uid"]: e["status"] for e in here["evses"]}
        assert statuses["SDEV001*1"] == "AVAILABLE" and statuses["SDEV001*2"] == "OUTOFORDER"
        assert "error_code" not in str(here)


async def test_a_201_fault_shows_its_codes(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    async with Charger201(url(gw), "SDEV029", passwords["SDEV029"]) as c:
        await c.boot()
        await c.status(1, "Available")
        await c.status(2, "Available")
        await c.fault(2, tech_code="GF-0x17", tech_info="residual current 31 mA")

        async def faulted() -> dict[str, Any] | None:
            body = await charger(http, tokens, "SDEV029")
            conn = next(x for x in body["connectors"] if x["id"] == 2)
            return conn if conn["vendor_error_code"] == "GF-0x17" else None

        conn = await wait_for(faulted, 10, what="2.0.1 fault with its codes")
        assert (conn["status"], conn["error_code"]) == ("Faulted", "Connector/Problem")
        body = await charger(http, tokens, "SDEV029")
        assert body["state"] == "faulted" and "GF-0x17" in body["reason"]


async def test_a_charging_session_is_billed_once_even_when_resent(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    async with Charger16(url(gw), "SDEV017", passwords["SDEV017"]) as c:
        await c.boot()
        tx = await c.start_transaction(1, "APP-7731", meter_start=1_000, timestamp=start)
        for i in range(1, 5):
            await c.meter_values(
                1, tx=tx, energy_wh=1_000 + 5_000 * i, timestamp=start + timedelta(minutes=15 * i)
            )
        await c.stop_transaction(
            tx, meter_stop=21_000, reason="EVDisconnected", timestamp=start + timedelta(hours=1)
        )
        # The charger re-sends its stop (a lost answer): nothing is counted twice.
        await c.stop_transaction(
            tx, meter_stop=21_000, reason="EVDisconnected", timestamp=start + timedelta(hours=1)
        )

        async def closed() -> dict[str, Any] | None:
            r = await http.get(
                "/api/v1/chargers/SDEV017/sessions", headers=auth(tokens["inspector"])
            )
            got = [s for s in r.json()["sessions"] if s["state"] == "closed"]
            return got[0] if got else None

        s = await wait_for(closed, 10, what="charging session closed")
    detail = (await http.get(f"/api/v1/charging/sessions/{s['id']}")).json()
    bill = detail["bill"]
    assert bill["energy_wh"] == 20_000
    # 汽车客运站 waives up to two hours of parking for a charging vehicle.
    assert detail["parking_waiver"]["site_id"] == "cp-keyunzhan"
    assert bill["total_fen"] == sum(line["amount_fen"] for line in bill["lines"]) > 0
    sessions = (
        await http.get("/api/v1/chargers/SDEV017/sessions", headers=auth(tokens["inspector"]))
    ).json()["sessions"]
    assert len(sessions) == 1


async def test_offline_queue_arrives_late_back_dated_and_in_order(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    c = Charger16(url(gw), "SDEV021", passwords["SDEV021"])
    await c.connect()
    await c.boot()
    await c.drop()  # the uplink is cut
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    tx = await c.start_transaction(1, "CARD-0042", meter_start=500, timestamp=t0)
    await c.meter_values(1, tx=tx, energy_wh=3_500, timestamp=t0 + timedelta(minutes=20))
    await c.stop_transaction(tx, meter_stop=7_500, timestamp=t0 + timedelta(minutes=40))
    assert len(c.queue) == 3
    await c.connect()  # delivers the queue in order
    try:

        async def closed() -> list[dict[str, Any]] | None:
            r = await http.get(
                "/api/v1/chargers/SDEV021/sessions", headers=auth(tokens["inspector"])
            )
            got = [s for s in r.json()["sessions"] if s["state"] == "closed"]
            return got or None

        (s,) = await wait_for(closed, 10, what="queued session recorded")
        assert s["started_at"] == t0.isoformat()
        assert s["ended_at"] == (t0 + timedelta(minutes=40)).isoformat()
        bill = (await http.get(f"/api/v1/charging/sessions/{s['id']}")).json()["bill"]
        assert bill["energy_wh"] == 7_000
    finally:
        await c.disconnect()


async def test_commands_reach_the_charger_and_bad_ones_are_refused(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    base = "/api/v1/chargers/SDEV030/commands"
    op = auth(tokens["operator"])
    r = await http.post(f"{base}/reset", json={"type": "soft"}, headers=op)
    assert r.status_code == 409  # not connected
    async with Charger201(url(gw), "SDEV030", passwords["SDEV030"]) as c:
        await c.boot()
        await wait_for(lambda: "SDEV030" in gw.services.charging.live, 5, what="connected")
        r = await http.post(f"{base}/reset", json={"type": "soft"}, headers=op)
        assert r.status_code == 200 and r.json()["status"] == "Accepted"
        assert c.received[-1][0] == "Reset"
        r = await http.post(f"{base}/get_configuration", json={}, headers=op)
        assert r.status_code == 422  # a 1.6 command to a 2.0.1 charger
        r = await http.post(
            f"{base}/reset", json={"type": "soft"}, headers=auth(tokens["inspector"])
        )
        assert r.status_code == 403
        r = await http.post(f"{base}/self_destruct", json={}, headers=op)
        assert r.status_code == 404


async def test_bad_credentials_are_refused_and_counted(gw: Any, passwords: dict[str, str]) -> None:
    before = gw.metrics_value(
        "citygate_ocpp_rejected_total", what="connection", reason="bad_password"
    )
    for cid, password in (("SDEV002", "not-the-password"), ("NOT-A-CHARGER", "x" * 20)):
        with pytest.raises(InvalidStatus) as refused:  # the handshake is refused
            async with Charger16(url(gw), cid, password):
                pass
        assert refused.value.response.status_code == 401
    after = gw.metrics_value(
        "citygate_ocpp_rejected_total", what="connection", reason="bad_password"
    )
    assert after == before + 1
    assert (
        gw.metrics_value("citygate_ocpp_rejected_total", what="connection", reason="unknown_id")
        >= 1
    )


async def _refused(charger: SimCharger) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with charger:
            pass
    status: int = refused.value.response.status_code
    return status


@pytest.mark.parametrize(
    ("cid", "command", "body"),
    [
        (
            "SDEV006",
            "change_configuration",
            lambda pw: {"key": "AuthorizationKey", "value": pw},
        ),
        (
            "SDEV007",
            "set_variables",
            lambda pw: {
                "variables": [
                    {"component": "SecurityCtrlr", "variable": "BasicAuthPassword", "value": pw}
                ]
            },
        ),
    ],
    ids=["ocpp1.6-AuthorizationKey", "ocpp2.0.1-BasicAuthPassword"],
)
async def test_password_rotated_through_ocpp_follows_in_the_registry(
    gw: Any,
    http: httpx.AsyncClient,
    tokens: dict[str, str],
    passwords: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    cid: str,
    command: str,
    body: Any,
) -> None:
    """The charger takes a new password (Accepted): the stored hash follows, so its next
    connection with the new password is accepted and the old one gets 401. A Rejected
    rotation leaves the old hash. The password is never logged nor echoed by the API."""
    caplog.set_level(logging.DEBUG)
    kind = Charger16 if command == "change_configuration" else Charger201
    old, refused_pw, new = passwords[cid], f"refused-{cid}-000000000", f"rotated-{cid}-0123456789"
    endpoint = f"/api/v1/chargers/{cid}/commands/{command}"
    op = auth(tokens["operator"])
    c = kind(url(gw), cid, old)
    async with c:
        await c.boot()
        await wait_for(lambda: cid in gw.services.charging.live, 5, what="connected")
        action = "ChangeConfiguration" if command == "change_configuration" else "SetVariables"
        c.answers[action] = "Rejected"
        r = await http.post(endpoint, json=body(refused_pw), headers=op)
        assert r.status_code == 200 and r.json()["status"] == "Rejected"
        assert c.password == old
        del c.answers[action]
        r = await http.post(endpoint, json=body("too-short"), headers=op)
        assert r.status_code == 422 and "too-short" not in r.text
        r = await http.post(endpoint, json=body(new), headers=op)
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        assert new not in r.text
        assert c.password == new  # the charger uses it from its next connection on
    passwords[cid] = new
    # The same charger reconnects, now with its new password: accepted.
    async with c:
        assert (await c.heartbeat()) is not None
        await wait_for(lambda: cid in gw.services.charging.live, 5, what="reconnected")
    assert await _refused(kind(url(gw), cid, old)) == 401
    assert await _refused(kind(url(gw), cid, refused_pw)) == 401
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("drivers", "gateway"))]
    assert any("accepted a new password" in m for m in ours)
    for secret in (new, refused_pw):
        assert not any(secret in m for m in ours)


async def test_meter_readings_are_written_lazily_and_flushed(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    """A connector's last meter reading is live in the API at once, written to its row at most
    once a minute (the book is its live truth), and written when the recorder is flushed."""
    from sqlalchemy import select

    from gateway.infra.storage.schema import ConnectorRow

    async def stored() -> float | None:
        async with gw.services.persister._sessions() as s:
            row = await s.scalar(
                select(ConnectorRow).where(
                    ConnectorRow.charger_id == "SDEV012", ConnectorRow.connector_id == 1
                )
            )
            return None if row is None else row.last_meter_wh

    async with Charger16(url(gw), "SDEV012", passwords["SDEV012"]) as c:
        await c.boot()
        await c.meter_values(1, energy_wh=1_000)
        await gw.services.charging.flushed()
        assert await stored() == 1_000
        for wh in (2_000, 3_000):
            await c.meter_values(1, energy_wh=wh)

        async def live() -> bool:
            body = await charger(http, tokens, "SDEV012")
            conn = next(x for x in body["connectors"] if x["id"] == 1)
            return bool(conn["last_meter_wh"] == 3_000)

        await wait_for(live, 5, what="the latest reading in the API")
        assert await stored() == 1_000  # held back: written once a minute
        await gw.services.charging.flushed()
        assert await stored() == 3_000


async def case_reports_of(gw: Any, charger_id: str) -> list[Any]:
    from sqlalchemy import select

    from gateway.infra.storage.schema import CaseReportRow

    async with gw.services.persister._sessions() as s:
        q = select(CaseReportRow).where(CaseReportRow.device_id == charger_id)
        return list((await s.execute(q)).scalars().all())


async def test_a_long_fault_raises_a_maintenance_report(gw: Any, passwords: dict[str, str]) -> None:
    """An active charger's long fault is reported; a charger still being installed
    (provisioned: its checks not run yet) faulting just as long is not."""
    from gateway.directory.chargers import NewCharger, add_charger

    async with gw.services.persister._sessions.begin() as s:
        new_password = await add_charger(
            s, NewCharger("SDEV-NEW-1", None, "安装中 · being installed", 38.78, 101.08),
            gw.services.clock(),
        )  # fmt: skip
    gw.services.follower.kick()
    await wait_for(lambda: "SDEV-NEW-1" in gw.services.charging.chargers, 5, what="new charger")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    async with (
        Charger16(url(gw), "SDEV040", passwords["SDEV040"]) as c,
        Charger16(url(gw), "SDEV-NEW-1", new_password) as fresh,
    ):
        await fresh.boot()
        await fresh.status(1, "Faulted", "PowerMeterFailure", timestamp=long_ago)
        await c.boot()
        await c.status(1, "Faulted", "PowerMeterFailure", timestamp=long_ago)

        async def reported() -> bool:
            rows = await case_reports_of(gw, "SDEV040")
            return bool(rows) and rows[0].category == "charger"

        await wait_for(reported, 15, what="maintenance report filed")
        # the watch has judged both faults by now (the fresh one's came first): no report
        assert gw.services.charging.chargers["SDEV-NEW-1"].lifecycle == "provisioned"
        assert await case_reports_of(gw, "SDEV-NEW-1") == []


@pytest.mark.slow
async def test_the_whole_fleet_connects_at_once(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], passwords: dict[str, str]
) -> None:
    ids = sorted(gw.services.charging.chargers)  # the town's, and one an earlier test added
    fleet = [Charger16(url(gw), cid, passwords[cid]) for cid in ids if cid in passwords
             and cid != "SDEV001"]  # fmt: skip
    await asyncio.gather(*(c.connect() for c in fleet))
    try:
        await asyncio.gather(*(c.boot() for c in fleet))
        await asyncio.gather(
            *(
                c.status(n, "Available")
                for c in fleet
                for n in range(1, gw.services.charging.chargers[c.charger_id].connectors + 1)
            )
        )
        await wait_for(
            lambda: len(gw.services.charging.live) >= len(fleet), 15, what="fleet connected"
        )

        members = {c.charger_id for c in fleet}

        async def summary() -> dict[str, Any] | None:
            r = await http.get("/api/v1/chargers", headers=auth(tokens["inspector"]))
            body: dict[str, Any] = r.json()
            reported = {
                x["id"] for x in body["chargers"] if x["online"] and x["state"] != "unknown"
            }
            return body if members <= reported else None

        body = await wait_for(summary, 20, what="fleet summary")
        assert sum(body["counts"].values()) == body["total"] == len(ids)
        assert len(body["chargers"]) == len(ids)
        # Worst first: each line's state is at least as good as the one before it.
        order = ["faulted", "offline", "unavailable", "unknown", "warning", "charging",
                 "occupied", "available"]  # fmt: skip
        ranks = [order.index(x["state"]) for x in body["chargers"]]
        assert ranks == sorted(ranks)
        # Every charger whose connectors all said Available is available; the few that are
        # not carry an earlier test's fault.
        assert body["counts"]["available"] >= len(fleet) - 3
    finally:
        await asyncio.gather(*(c.disconnect() for c in fleet), return_exceptions=True)
