"""End to end: real ChirpStack / TTS / NB-IoT / controller messages through a real Mosquitto
into a running gateway, observed through its HTTP API."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from drivers.sensors import bosch, nbiot, nwave
from gateway.directory.town import load_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

TOWN = load_town(None)


def sensor_of(model: str) -> tuple[str, str, str]:
    """(dev_eui, berth_id, site_id) of the first sample sensor of *model* on the street."""
    berths = {b.id: b for b in TOWN.berths}
    sites = {s.id: s for s in TOWN.sites}
    for s in TOWN.sensors:
        site = sites[berths[s.berth].site]
        if s.model == model and site.kind.value == "on_street":
            return s.dev_eui.lower(), s.berth, site.id
    raise LookupError(model)


def chirpstack(dev_eui: str, f_port: int, data: bytes, f_cnt: int) -> bytes:
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "deviceInfo": {
                "tenantId": "t",
                "applicationId": "app-1",
                "devEui": dev_eui,
                "deviceName": "berth",
            },
            "devAddr": "01020304",
            "fCnt": f_cnt,
            "fPort": f_port,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
        }
    ).encode()


async def publish(broker: Broker, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"t-{uuid.uuid4().hex[:6]}"
    ) as c:
        await c.publish(topic, payload, qos=1)


async def get_json(gw: Any, path: str) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        r = await http.get(path)
        r.raise_for_status()
        return r.json()


@pytest.mark.slow
async def test_chirpstack_uplink_changes_site_vacancy(mosquitto: Broker, tmp_path: Path) -> None:
    dev_eui, berth_id, site_id = sensor_of("nwave-nps405")
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto)
    async with running_gateway(settings) as gw:
        before = await get_json(gw, f"/api/v1/sites/{site_id}")
        assert before["occupied"] == 0 and before["unknown"] == before["capacity"]

        port, data = nwave.encode_status(True)
        await publish(
            mosquitto,
            f"application/app-1/device/{dev_eui}/event/up",
            chirpstack(dev_eui, port, data, 10),
        )

        async def occupied() -> Any:
            site = await get_json(gw, f"/api/v1/sites/{site_id}")
            return site if site["occupied"] == 1 else None

        site = await wait_for(occupied, 10, what="occupied count to become 1")
        assert site["unknown"] == before["unknown"] - 1
        assert site["free"] + site["occupied"] + site["unknown"] == site["capacity"]
        berths = (await get_json(gw, f"/api/v1/sites/{site_id}/berths"))["berths"]
        mine = next(b for b in berths if b["id"] == berth_id)
        assert mine["state"] == "occupied"
        assert mine["sensor"] == {"dev_eui": dev_eui, "model": "nwave-nps405"}

        # The car leaves; a duplicate of the old uplink (same fCnt) changes nothing.
        port, data = nwave.encode_status(False, 600)
        await publish(
            mosquitto,
            f"application/app-1/device/{dev_eui}/event/up",
            chirpstack(dev_eui, port, data, 11),
        )
        await wait_for(lambda: gw.services.live.book.site(site_id).free == 1, 10, what="free")
        # A re-delivery of the last uplink (same fCnt) and a late, older one (lower fCnt)
        # change nothing: counted as duplicate and stale.
        port, data = nwave.encode_status(True)
        topic = f"application/app-1/device/{dev_eui}/event/up"
        await publish(mosquitto, topic, chirpstack(dev_eui, port, data, 11))
        await publish(mosquitto, topic, chirpstack(dev_eui, port, data, 9))
        await wait_for(
            lambda: (
                gw.metrics_value("citygate_uplinks_total", verdict="duplicate") == 1
                and gw.metrics_value("citygate_uplinks_total", verdict="stale") == 1
            ),
            10,
            what="duplicate and stale counted",
        )
        assert (await get_json(gw, f"/api/v1/sites/{site_id}"))["free"] == 1

        # Garbage on the same topic is rejected by reason and the loop goes on.
        await publish(mosquitto, f"application/app-1/device/{dev_eui}/event/up", b"{not json")
        await publish(
            mosquitto,
            "application/app-1/device/0000000000000bad/event/up",
            chirpstack("0000000000000bad", 1, b"\x01", 1),
        )
        await wait_for(
            lambda: gw.metrics_value(
                "citygate_messages_rejected_total", source="chirpstack", reason="unknown_device"
            ),
            10,
            what="unknown device rejection",
        )
        assert (
            gw.metrics_value(
                "citygate_messages_rejected_total", source="chirpstack", reason="bad_json"
            )
            == 1
        )


@pytest.mark.slow
async def test_other_sources_reach_the_api(mosquitto: Broker, tmp_path: Path) -> None:
    bosch_eui, bosch_berth, _ = sensor_of("bosch-tps110")
    nb_eui, nb_berth, nb_site = sensor_of("nbiot-geomag")
    controlled = next(s for s in TOWN.sites if s.counting.value == "entry_exit")
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto)
    async with running_gateway(settings) as gw:
        # The Things Stack v3 uplink for a Bosch sensor.
        port, data = bosch.encode_status(True)
        tts = {
            "end_device_ids": {
                "device_id": "b1",
                "dev_eui": bosch_eui.upper(),
                "application_ids": {"application_id": "parking"},
            },
            "uplink_message": {
                "f_port": port,
                "f_cnt": 5,
                "frm_payload": base64.b64encode(data).decode(),
                "rx_metadata": [{"rssi": -101, "snr": 4.0}],
            },
        }
        await publish(mosquitto, "v3/parking@town/devices/b1/up", json.dumps(tts).encode())
        # NB-IoT frames: a car parks above the sensor (two agreeing samples to debounce).
        for seq in range(1, 4):
            frame = nbiot.encode_frame(
                device_id=nb_eui,
                seq=seq,
                raw=(40, -12, 420),
                baseline=(20, -10, 200),
                battery_mv=3600,
                rssi_dbm=-85,
            )
            await publish(mosquitto, f"nbiot/{nb_eui}/up", frame)
        # A car-park controller reports counts.
        await publish(
            mosquitto,
            f"citygate/carpark/{controlled.id}/counts",
            json.dumps({"seq": 1, "entered": 5, "exited": 0}).encode(),
        )

        await wait_for(
            lambda: gw.services.live.book.berth(bosch_berth).state.value == "occupied",
            10,
            what="bosch berth occupied",
        )
        await wait_for(
            lambda: gw.services.live.book.berth(nb_berth).state.value == "occupied",
            10,
            what="nb-iot berth occupied",
        )
        await wait_for(
            lambda: gw.services.live.book.site(controlled.id).occupied == 5,
            10,
            what="car park count",
        )
        site = await get_json(gw, f"/api/v1/sites/{controlled.id}")
        assert site["occupied"] == 5 and site["free"] == controlled.capacity - 5
        assert site["stale"] is False
        geo = await get_json(gw, "/api/v1/map")
        feature = next(f for f in geo["features"] if f["id"] == nb_site)
        assert feature["properties"]["occupied"] >= 1
        assert feature["geometry"]["type"] == "Point"


@pytest.mark.slow
async def test_nbiot_frame_on_another_devices_topic_is_refused(
    mosquitto: Broker, tmp_path: Path
) -> None:
    nb = [s for s in TOWN.sensors if s.model == "nbiot-geomag"]
    berths = {b.id: b for b in TOWN.berths}
    victim = next(s for s in nb if berths[s.berth].site == berths[nb[0].berth].site)
    spoofer = next(s for s in nb if s.dev_eui != victim.dev_eui)
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto)
    async with running_gateway(settings) as gw:
        for seq in range(1, 4):
            frame = nbiot.encode_frame(
                device_id=victim.dev_eui.lower(),
                seq=seq,
                raw=(40, -12, 420),
                baseline=(20, -10, 200),
            )
            await publish(mosquitto, f"nbiot/{spoofer.dev_eui.lower()}/up", frame)
        await wait_for(
            lambda: (
                gw.metrics_value(
                    "citygate_messages_rejected_total", source="nbiot", reason="device_mismatch"
                )
                == 3
            ),
            10,
            what="three device_mismatch rejections",
        )
        berths_out = (await get_json(gw, f"/api/v1/sites/{berths[victim.berth].site}/berths"))[
            "berths"
        ]
        mine = next(b for b in berths_out if b["id"] == victim.berth)
        assert mine["state"] == "unknown"
        assert gw.metrics_value("citygate_uplinks_total", verdict="applied") == 0


@pytest.mark.slow
async def test_chirpstack_uplink_still_encrypted_is_refused(
    mosquitto: Broker, tmp_path: Path
) -> None:
    dev_eui, berth_id, site_id = sensor_of("nwave-nps405")
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto)
    async with running_gateway(settings) as gw:
        port, data = nwave.encode_status(True)
        doc = json.loads(chirpstack(dev_eui, port, data, 10))
        # ChirpStack without the AppSKey: the (here plaintext-looking) data is ciphertext.
        doc["joinServerContext"] = {"sessionKeyId": "0102030405060708"}
        topic = f"application/app-1/device/{dev_eui}/event/up"
        await publish(mosquitto, topic, json.dumps(doc).encode())
        await wait_for(
            lambda: (
                gw.metrics_value(
                    "citygate_messages_rejected_total", source="chirpstack", reason="encrypted"
                )
                == 1
            ),
            10,
            what="encrypted uplink rejected",
        )
        berths = (await get_json(gw, f"/api/v1/sites/{site_id}/berths"))["berths"]
        assert next(b for b in berths if b["id"] == berth_id)["state"] == "unknown"
        # The same uplink decrypted by ChirpStack is applied.
        await publish(mosquitto, topic, chirpstack(dev_eui, port, data, 11))
        await wait_for(
            lambda: gw.services.live.book.berth(berth_id).state.value == "occupied",
            10,
            what="plaintext uplink applied",
        )


@pytest.mark.slow
async def test_chirpstack_status_battery_reaches_the_api_and_the_database(
    mosquitto: Broker, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from gateway.infra.storage.schema import DeviceRow

    dev_eui, _, _ = sensor_of("bosch-tps110")  # Bosch frames carry no battery of their own
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto)
    async with running_gateway(settings) as gw:
        tokens = await make_tokens(gw)
        auth = {"Authorization": f"Bearer {tokens['technician']}"}

        async def device() -> Any:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
                r = await http.get(f"/api/v1/devices/{dev_eui}", headers=auth)
                r.raise_for_status()
                return r.json()

        assert (await device())["battery_pct"] is None
        status = {
            "deduplicationId": str(uuid.uuid4()),
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "app-1", "devEui": dev_eui},
            "margin": 7,
            "batteryLevel": 82.68,
        }
        topic = f"application/app-1/device/{dev_eui}/event/status"
        await publish(mosquitto, topic, json.dumps(status).encode())

        async def reported() -> Any:
            d = await device()
            return d if d["battery_pct"] is not None else None

        shown = await wait_for(reported, 10, what="battery level in the API")
        assert shown["battery_pct"] == pytest.approx(82.68)
        assert shown["last_seen"] is not None

        async def stored() -> float | None:
            async with gw.services.persister._sessions() as s:
                row = (
                    await s.execute(select(DeviceRow).where(DeviceRow.id == dev_eui))
                ).scalar_one()
                return row.battery_pct

        assert await wait_for(stored, 10, what="battery level written") == pytest.approx(82.68)

        # Externally powered: no level, and the last known one is kept.
        status["externalPowerSource"] = True
        status.pop("batteryLevel")
        await publish(mosquitto, topic, json.dumps(status).encode())
        await wait_for(
            lambda: gw.metrics_value("citygate_messages_in_total", source="chirpstack") == 2,
            10,
            what="second status handled",
        )
        assert (await device())["battery_pct"] == pytest.approx(82.68)
