"""The platform's side of the body cams through a running gateway: the queries it sends
after a registration and their answers matched by SN, the MobilePosition subscription
refreshed in its own dialog (a 481 ends it: one new SUBSCRIBE, no loop), provisioning over the
API live within seconds (the change feed), the roles, and presence across a restart."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.gb28181.device import CatalogEntry, catalog_bodies
from drivers.sip.message import SipRequest
from drivers.sip.responses import response_to
from gateway.directory.bodycams import set_passwords
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.sip_uac import Uac

PLATFORM = "62072500082000000001"
REALM = "6207250008"
PASSWORD = "platform-test-pw"


def cam(n: int) -> str:
    return f"62072500081380{n:06d}"


def settings(tmp_path: Path, broker: Broker, **bodycams: Any) -> Any:
    db = f"sqlite+aiosqlite:///{tmp_path / 'citygate.db'}"
    return gateway_settings(
        db, broker, bodycams={"persist_interval_s": 0.1, "subscription_expires_s": 30, **bodycams}
    )


async def provision(gw: Any, *ns: int) -> None:
    async with gw.services.sessions.begin() as s:
        await set_passwords(s, {cam(n): PASSWORD for n in ns}, REALM, gw.services.clock())
    await wait_for(lambda: all(gw.services.bodycams.credentials[cam(n)].ha1 for n in ns), 10)


async def next_request(uac: Uac, method: str, timeout: float = 5) -> SipRequest:
    while True:
        req = await asyncio.wait_for(uac.requests.get(), timeout)
        if req.method == method:
            return req


def sn_of(req: SipRequest) -> int:
    m = re.search(rb"<SN>(\d+)</SN>", req.body)
    assert m
    return int(m.group(1))


async def test_queries_answered_by_sn_and_a_subscription_refreshed_in_its_dialog(
    tmp_path: Path, mosquitto: Broker
) -> None:
    async with running_gateway(settings(tmp_path, mosquitto)) as gw:
        await provision(gw, 1)
        uac = await Uac(cam(1), PASSWORD, REALM, PLATFORM).open(gw.sip_port)
        uac.answer = False
        try:
            assert (await uac.register()).status == 200
            queries = {}
            sub = None
            while len(queries) < 3 or sub is None:
                req = await asyncio.wait_for(uac.requests.get(), 5)
                if req.method == "MESSAGE":
                    kind = re.search(rb"<CmdType>(\w+)</CmdType>", req.body)
                    assert kind
                    queries[kind.group(1).decode()] = sn_of(req)
                    uac.send_raw(response_to(req, 200).to_bytes())
                elif req.method == "SUBSCRIBE":
                    sub = req
            assert set(queries) == {"DeviceInfo", "DeviceStatus", "Catalog"}
            assert sub.headers.get("Event") == "presence"
            assert b"<Interval>5</Interval>" in sub.body and sub.to.tag is None
            # the cam grants 3 s: the refresh comes in the same dialog before that
            ok = response_to(sub, 200, to_tag="camdialog", headers=[("Expires", "3")])
            uac.send_raw(ok.to_bytes())
            refresh = await next_request(uac, "SUBSCRIBE", 5)
            assert refresh.call_id == sub.call_id
            assert refresh.to.tag == "camdialog" and refresh.from_.tag == sub.from_.tag
            assert refresh.cseq.number == sub.cseq.number + 1
            # the cam forgot the dialog: 481 ends it, one new SUBSCRIBE opens another
            uac.send_raw(response_to(refresh, 481).to_bytes())
            fresh = await next_request(uac, "SUBSCRIBE", 5)
            assert fresh.call_id != sub.call_id and fresh.to.tag is None
            uac.send_raw(response_to(fresh, 200, headers=[("Expires", "600")]).to_bytes())
            with pytest.raises(TimeoutError):
                await next_request(uac, "SUBSCRIBE", 1.5)  # no loop
            # answers matched by SN: DeviceInfo (vendor battery field) and DeviceStatus
            info = (
                f"<Response><CmdType>DeviceInfo</CmdType><SN>{queries['DeviceInfo']}</SN>"
                f"<DeviceID>{cam(1)}</DeviceID><Result>OK</Result><Manufacturer>Hik</Manufacturer>"
                "<Model>DSJ-X1</Model><Firmware>V2.1</Firmware><Battery>76</Battery></Response>"
            )
            assert (await uac.message(info)).status == 200
            status = (
                f"<Response><CmdType>DeviceStatus</CmdType><SN>{queries['DeviceStatus']}</SN>"
                f"<DeviceID>{cam(1)}</DeviceID><Result>OK</Result><Online>ONLINE</Online>"
                "<Status>OK</Status><TotalStorage>65536</TotalStorage>"
                "<StorageFree>40960</StorageFree></Response>"
            )
            assert (await uac.message(status)).status == 200
            live = gw.services.bodycams.cams[cam(1)]
            assert (live.manufacturer, live.model, live.battery_percent) == ("Hik", "DSJ-X1", 76)
            assert (live.storage_total_mb, live.storage_free_mb) == (65536, 40960)
            # the Catalog comes back in two parts with the query's SN: reassembled, answered
            entries = [
                CatalogEntry(f"{cam(1)[:10]}131{n:07d}", f"通道{n}", "Hik", "DSJ-X1", cam(1))
                for n in (1, 2)
            ]
            first, second = catalog_bodies(queries["Catalog"], cam(1), entries, per_part=1)
            assert (await uac.message_bytes(first)).status == 200
            assert live.catalog_items is None and len(gw.services.bodycams.queries) == 1
            assert (await uac.message_bytes(second)).status == 200
            assert live.catalog_items == 2
            assert len(gw.services.bodycams.queries) == 0  # all three answered, by SN
        finally:
            uac.close()


async def test_provisioning_over_the_api_is_live_and_roles_hold(
    tmp_path: Path, mosquitto: Broker
) -> None:
    async with running_gateway(settings(tmp_path, mosquitto)) as gw:
        tokens = await make_tokens(gw)
        new_id = "62072500081380000500"

        def h(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[role]}"}

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            body = {"id": new_id, "officer_id": "of-003"}
            r = await http.post("/api/v1/devices/bodycams", json=body, headers=h("operator"))
            assert r.status_code == 403
            r = await http.post("/api/v1/devices/bodycams", json=body, headers=h("technician"))
            assert r.status_code == 201, r.text
            first = r.json()["password"]
            assert r.json()["realm"] == REALM and len(first) >= 12
            r = await http.post("/api/v1/devices/bodycams", json=body, headers=h("technician"))
            assert r.status_code == 409
            bad = {"id": "12345", "password": "short"}
            r = await http.post("/api/v1/devices/bodycams", json=bad, headers=h("technician"))
            assert r.status_code == 422
            uac = await Uac(new_id, first, REALM, PLATFORM).open(gw.sip_port)
            try:
                # live within seconds, without a restart (the change feed)
                async def registers() -> bool:
                    return (await uac.register()).status == 200

                await wait_for(registers, 10, interval=0.2, what="new cam registers")
                r = await http.post(
                    f"/api/v1/devices/bodycams/{new_id}/password",
                    json={"password": "rotated-by-tech"},
                    headers=h("technician"),
                )
                assert r.status_code == 200 and r.json()["password"] == "rotated-by-tech"

                async def old_refused() -> bool:
                    return (await uac.register()).status == 403

                await wait_for(old_refused, 10, interval=0.2, what="old password refused")
                assert (await uac.register(password="rotated-by-tech")).status == 200
            finally:
                uac.close()
            r = await http.post(
                "/api/v1/devices/bodycams/62072500081380009999/password", headers=h("technician")
            )
            assert r.status_code == 404
            for role in ("operator", "inspector"):
                r = await http.get("/api/v1/field", headers=h(role))
                assert r.status_code == 200
            r = await http.get("/api/v1/field", headers=h("device"))
            assert r.status_code == 403
            view = (await http.get("/api/v1/field", headers=h("inspector"))).json()
            assert view["datum"] == "WGS-84" and view["total"] == 73  # 72 sample cams + the new
            line = next(c for c in view["cams"] if c["device_id"] == new_id)
            assert line["online"] is True and line["officer_id"] == "of-003"
            r = await http.get("/api/v1/field/62072500081380009999", headers=h("inspector"))
            assert r.status_code == 404
            listed = await http.get("/api/v1/devices/bodycams", headers=h("technician"))
            assert any(c["id"] == new_id and c["password_set"] for c in listed.json()["bodycams"])
            assert "ha1" not in listed.text


async def test_presence_survives_a_restart_and_the_next_keepalive_confirms_it(
    tmp_path: Path, mosquitto: Broker
) -> None:
    s = settings(tmp_path, mosquitto, keepalive_interval_s=3.0, keepalive_count=3)
    async with running_gateway(s) as gw:
        await provision(gw, 2)
        uac = await Uac(cam(2), PASSWORD, REALM, PLATFORM).open(gw.sip_port)
        try:
            assert (await uac.register()).status == 200
            assert (await uac.keepalive()).status == 200
        finally:
            uac.close()
    async with running_gateway(s) as gw:
        live = gw.services.bodycams.cams[cam(2)]
        assert live.presence.online(gw.services.clock()) and not live.presence.confirmed
        tokens = await make_tokens(gw)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            r = await http.get(
                f"/api/v1/field/{cam(2)}",
                headers={"Authorization": f"Bearer {tokens['operator']}"},
            )
            assert r.json()["online"] is True  # not every cam offline at boot
        uac = await Uac(cam(2), PASSWORD, REALM, PLATFORM).open(gw.sip_port)
        try:
            assert (await uac.keepalive()).status == 200  # no new REGISTER needed
            assert live.presence.confirmed
            # the restored cam is asked again and subscribed afresh
            await next_request(uac, "SUBSCRIBE", 5)
        finally:
            uac.close()


async def _first_requests(uac: Uac) -> tuple[SipRequest, SipRequest]:
    """The first query (MESSAGE) and the SUBSCRIBE the platform sends a registered cam."""
    query = sub = None
    while query is None or sub is None:
        req = await asyncio.wait_for(uac.requests.get(), 5)
        if req.method == "MESSAGE" and query is None:
            query = req
        elif req.method == "SUBSCRIBE":
            sub = req
    return query, sub


def _via_host(req: SipRequest) -> str:
    via = req.headers.get("Via") or ""
    return via.split()[1].split(";")[0].rsplit(":", 1)[0]


async def test_bound_to_every_address_each_cam_is_told_the_address_it_reaches_us_at(
    tmp_path: Path, mosquitto: Broker
) -> None:
    from drivers.sip.transport import _route_source

    lan = _route_source("198.51.100.1", 9)  # this machine's address on its network
    if lan is None or lan.startswith("127."):
        pytest.skip("this machine has no address besides loopback")
    s = settings(tmp_path, mosquitto, host="0.0.0.0")
    async with running_gateway(s) as gw:
        await provision(gw, 1, 2)
        near = await Uac(cam(1), PASSWORD, REALM, PLATFORM).open(gw.sip_port)
        far = await Uac(cam(2), PASSWORD, REALM, PLATFORM).open(gw.sip_port, lan, lan)
        try:
            for uac, address in ((near, "127.0.0.1"), (far, lan)):
                assert (await uac.register()).status == 200
                query, sub = await _first_requests(uac)
                assert _via_host(query) == address and _via_host(sub) == address
                contact = sub.headers.get("Contact") or ""
                assert f"@{address}:{gw.sip_port}>" in contact
        finally:
            near.close()
            far.close()


async def test_an_advertised_address_is_what_every_cam_is_told(
    tmp_path: Path, mosquitto: Broker
) -> None:
    s = settings(tmp_path, mosquitto, host="0.0.0.0", advertised_host="203.0.113.7")
    async with running_gateway(s) as gw:
        await provision(gw, 3)
        uac = await Uac(cam(3), PASSWORD, REALM, PLATFORM).open(gw.sip_port)
        try:
            assert (await uac.register()).status == 200
            query, sub = await _first_requests(uac)
            assert _via_host(query) == _via_host(sub) == "203.0.113.7"
            assert f"@203.0.113.7:{gw.sip_port}>" in (sub.headers.get("Contact") or "")
        finally:
            uac.close()
