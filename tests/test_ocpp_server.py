"""The OCPP central system against simulated chargers (the ``ocpp`` library's ChargePoint)
over real websockets: handshake and security profiles, every charger-sent message of 1.6,
2.0.1 and 2.1 mapped to events, faults, offline queues, malformed frames, replacement, TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server
from websockets.exceptions import InvalidStatus

from drivers.ocpp import (
    ChargerSession,
    IdTagStatus,
    MemoryBackend,
    charger_id_from_path,
    serve_ocpp,
)
from drivers.ocpp.values import meter_samples, parse_timestamp, read_sampled_values
from events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerHeartbeat,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    Event,
    MeterSample,
)
from gateway.demo.ocpp import Charger16, Charger21, Charger201, ChargerOffline
from tests.conftest import wait_for

PASSWORDS = {
    "CP16": "sixteen-secret-000000",
    "CP201": "two-o-one-secret-0000",
    "CP21": "two-one-secret-000000",
    "城关-07": "unicode-secret-000000",
}
T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


class Backend(MemoryBackend):
    """The memory backend, with an authorize that fails for one tag (a handler bug)."""

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        if id_tag == "BOOM":
            raise RuntimeError("the authorization cache is broken")
        return super().authorize(charger_id, id_tag)


@dataclass
class Central:
    backend: Backend
    server: Server
    url: str
    port: int

    def session(self, charger_id: str) -> ChargerSession:
        return self.backend.sessions[charger_id]

    async def online(self, charger_id: str) -> ChargerSession:
        session: ChargerSession = await wait_for(
            lambda: self.backend.sessions.get(charger_id), 5, what=f"{charger_id} online"
        )
        return session

    async def events(self, kind: type[Any], n: int = 1, charger_id: str | None = None) -> list[Any]:
        await wait_for(
            lambda: len(self.backend.of(kind, charger_id)) >= n, 5, what=f"{n} x {kind.__name__}"
        )
        return self.backend.of(kind, charger_id)


async def start_central(ssl_context: ssl.SSLContext | None = None) -> Central:
    backend = Backend(
        PASSWORDS, id_tags={"TAG1": "Accepted", "BLOCKED": "Blocked"}, heartbeat_s=120
    )
    server = await serve_ocpp(backend, "127.0.0.1", 0, ssl_context=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "wss" if ssl_context else "ws"
    return Central(backend, server, f"{scheme}://127.0.0.1:{port}/ocpp/", port)


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    c = await start_central()
    yield c
    c.server.close()
    await c.server.wait_closed()


def ts_of(events: list[Event]) -> list[datetime]:
    return [e.ts for e in events]


# -- pure parts ---------------------------------------------------------------------------------


def test_charger_ids_from_paths() -> None:
    assert charger_id_from_path("/ocpp/CP-1") == "CP-1"
    assert charger_id_from_path("/ocpp/%E5%9F%8E%E5%85%B3-07?x=1") == "城关-07"
    assert charger_id_from_path("/ocpp/" + "A" * 48) == "A" * 48
    for bad in (
        "/ocpp/",
        "/ocpp/" + "A" * 49,
        "/other/CP1",
        "/ocpp/a/b",
        "/ocpp/a%2Fb",
        "/ocpp/a%20b",
    ):
        assert charger_id_from_path(bad) is None, bad
    assert charger_id_from_path("/ocpp/%FF") is None


def test_timestamps() -> None:
    assert parse_timestamp("2026-11-28T01:00:00Z") == T0
    assert parse_timestamp("2026-11-28T09:00:00+08:00") == T0
    assert parse_timestamp("2026-11-28T01:00:00") == T0  # OCPP times are UTC
    assert parse_timestamp("2026-11-28T01:00:00.1234567Z") == T0 + timedelta(microseconds=123456)
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(17) is None


def test_sampled_values_units_phases_multipliers() -> None:
    r = read_sampled_values(
        [
            {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "15.5", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
            {"value": "2.0", "measurand": "Current.Import", "phase": "N", "unit": "A"},
            {"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": "234", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
            {"value": "35", "measurand": "Temperature", "location": "Body", "unit": "Celsius"},
            {"value": "80", "measurand": "SoC", "location": "EV", "unit": "Percent"},
        ]
    )
    assert r.values == {
        "energy_wh": 12500.0,
        "power_w": 7200.0,
        "current_a": 16.0,
        "voltage_v": 232.0,
        "soc_pct": 80.0,
    }
    assert r.problems == [] and r.context == "Sample.Periodic"
    # 2.0.1: numbers and multipliers; the unphased value wins over phases; default measurand
    r = read_sampled_values(
        [
            {
                "value": 12.5,
                "unit_of_measure": {"unit": "Wh", "multiplier": 3},
                "context": "Trigger",
            },
            {"value": 3000, "measurand": "Power.Active.Import", "phase": "L1"},
            {"value": 9000, "measurand": "Power.Active.Import"},
        ]
    )
    assert r.values == {"energy_wh": 12500.0, "power_w": 9000.0} and r.context == "Trigger"
    r = read_sampled_values(
        [
            {"value": "12,5", "unit": "kWh"},
            {"value": "7", "measurand": "Power.Active.Import", "unit": "MW"},
            {"value": "NaN", "measurand": "Voltage"},
            {"value": "abc", "format": "SignedData"},
            "nonsense",
        ]
    )
    assert r.values == {}
    assert sorted(r.problems) == [
        "bad_meter_unit",
        "bad_meter_value",
        "bad_meter_value",
        "bad_meter_value",
    ]
    samples, problems = meter_samples(
        "CP", 1, None, [{"timestamp": "?", "sampled_value": [{"value": "5"}]}], T0
    )
    assert samples[0].ts == T0 and samples[0].energy_wh == 5.0 and problems == ["bad_timestamp"]


# -- OCPP 1.6 -----------------------------------------------------------------------------------


async def test_boot_heartbeat_status_16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        answer = await cp.boot()
        assert answer.status == "Accepted" and answer.interval == 120
        assert parse_timestamp(answer.current_time) is not None
        session = await central.online("CP16")
        assert session.protocol == "ocpp1.6" and session.remote.startswith("127.0.0.1:")
        (connected,) = await central.events(ChargerConnected)
        assert connected.protocol == "ocpp1.6" and connected.remote == session.remote
        (booted,) = await central.events(ChargerBooted)
        assert (booted.vendor, booted.model, booted.serial, booted.firmware) == (
            "SimVendor",
            "Sim-22",
            "SN-0001",
            "1.0.0",
        )
        before = session.last_message_at
        await cp.heartbeat()
        await central.events(ChargerHeartbeat)
        assert session.last_message_at > before
        await cp.status(1, "Available", timestamp=T0)
        await cp.status(0, "Available", info="boot complete")
        first, second = await central.events(ConnectorStatusChanged, 2)
        assert (first.connector_id, first.status, first.error_code, first.ts) == (
            1,
            "Available",
            None,
            T0,
        )
        assert second.connector_id == 0 and second.info == "boot complete"
    (gone,) = await central.events(ChargerDisconnected)
    assert gone.reason.startswith("1000")
    assert "CP16" not in central.backend.sessions
    assert central.backend.history == [
        ("CP16", "connected", ""),
        ("CP16", "disconnected", gone.reason),
    ]


async def test_meter_values_16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        await cp.meter_values(
            1,
            energy_wh=12345,
            power_w=7100,
            current_a=31.5,
            voltage_v=229.5,
            soc_pct=40,
            timestamp=T0,
        )
        (sample,) = await central.events(MeterSample)
        assert sample.ts == T0 and sample.connector_id == 1 and sample.transaction_id is None
        assert (
            sample.energy_wh,
            sample.power_w,
            sample.current_a,
            sample.voltage_v,
            sample.soc_pct,
        ) == (
            12345.0,
            7100.0,
            31.5,
            229.5,
            40.0,
        )
        assert sample.context == "Sample.Periodic"
        # One unreadable value costs only itself, and is counted.
        await cp.meter_values(
            1,
            sampled_value=[
                {"value": "forty", "measurand": "SoC", "unit": "Percent"},
                {"value": "7.5", "measurand": "Power.Active.Import", "unit": "kW"},
            ],
        )
        _, second = await central.events(MeterSample, 2)
        assert second.power_w == 7500.0 and second.soc_pct is None
        assert central.backend.counts[("message", "bad_meter_value")] == 1


async def test_transaction_16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        assert (await cp.authorize("TAG1")).id_tag_info["status"] == "Accepted"
        assert (await cp.authorize("BLOCKED")).id_tag_info["status"] == "Blocked"
        assert (await cp.authorize("STRANGER")).id_tag_info["status"] == "Invalid"
        tx = await cp.start_transaction(2, "TAG1", meter_start=1000, timestamp=T0)
        assert tx.id == 1  # the backend's number
        await cp.meter_values(2, tx=tx, energy_wh=4000, timestamp=T0 + timedelta(minutes=10))
        end = [
            {
                "timestamp": iso_z(T0 + timedelta(minutes=20)),
                "sampled_value": [{"value": "9000", "context": "Transaction.End", "unit": "Wh"}],
            }
        ]
        answer = await cp.stop_transaction(
            tx,
            meter_stop=9000,
            id_tag="TAG1",
            transaction_data=end,
            timestamp=T0 + timedelta(minutes=20),
        )
        assert answer.id_tag_info["status"] == "Accepted"
        (ended,) = await central.events(ChargingEnded)
    (started,) = central.backend.of(ChargingStarted)
    assert (
        started.ts,
        started.connector_id,
        started.transaction_id,
        started.id_tag,
        started.meter_start_wh,
    ) == (
        T0,
        2,
        "1",
        "TAG1",
        1000.0,
    )
    samples = central.backend.of(MeterSample)
    assert [(s.transaction_id, s.connector_id, s.energy_wh, s.context) for s in samples] == [
        ("1", 2, 4000.0, "Sample.Periodic"),
        ("1", 2, 9000.0, "Transaction.End"),
    ]
    assert (
        ended.ts,
        ended.connector_id,
        ended.transaction_id,
        ended.meter_stop_wh,
        ended.reason,
    ) == (
        T0 + timedelta(minutes=20),
        2,
        "1",
        9000.0,
        "Local",  # absent reason means Local
    )
    kinds = [
        type(e).__name__
        for e in central.backend.events
        if not isinstance(e, ChargerConnected | ChargerDisconnected)
    ]
    assert kinds == ["ChargingStarted", "MeterSample", "MeterSample", "ChargingEnded"]


def iso_z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_faults_and_warnings_16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        await cp.fault(
            1,
            "GroundFailure",
            vendor_error_code="E-GF-07",
            vendor_id="SimVendor",
            info="RCD tripped",
        )
        await cp.status(2, "Charging", "HighTemperature", vendor_error_code="T85")
        fault, warning = await central.events(ConnectorStatusChanged, 2)
    assert (fault.status, fault.error_code, fault.vendor_error_code, fault.info) == (
        "Faulted",
        "GroundFailure",
        "E-GF-07",
        "RCD tripped",
    )
    assert (warning.status, warning.error_code, warning.vendor_error_code) == (
        "Charging",
        "HighTemperature",
        "T85",
    )


async def test_notices_16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        assert (await cp.data_transfer("com.example", "Ping", "hello")).status == "UnknownVendorId"
        await cp.firmware_status("Installed")
        await cp.diagnostics_status("Uploaded")
        await cp.security_event("TamperDetectionActivated", "door open", timestamp=T0)
        notices = await central.events(ChargerNotice, 4)
    assert [(n.notice, n.status) for n in notices] == [
        ("data_transfer", "com.example"),
        ("firmware", "Installed"),
        ("diagnostics", "Uploaded"),
        ("security", "TamperDetectionActivated"),
    ]
    assert json.loads(notices[0].detail) == {"message_id": "Ping", "data": "hello"}
    assert notices[3].ts == T0 and notices[3].detail == "door open"


async def test_offline_queue_16(central: Central) -> None:
    cp = Charger16(central.url, "CP16", PASSWORDS["CP16"])
    await cp.connect()
    await cp.boot()
    await cp.disconnect()
    await central.events(ChargerDisconnected)
    # Offline: the transaction happens, its messages wait in the charger's queue.
    tx = await cp.start_transaction(1, "TAG1", meter_start=500, timestamp=T0)
    assert tx.id is None
    await cp.meter_values(1, tx=tx, energy_wh=2500, timestamp=T0 + timedelta(minutes=5))
    await cp.stop_transaction(
        tx, meter_stop=4500, reason="EVDisconnected", timestamp=T0 + timedelta(minutes=9)
    )
    with pytest.raises(ChargerOffline):
        await cp.heartbeat()  # not a transaction message: not queued
    assert len(cp.queue) == 3
    await cp.connect()  # delivers the queue, in order, back-dated
    try:
        assert tx.id is not None and cp.queue == []
        (ended,) = await central.events(ChargingEnded)
    finally:
        await cp.disconnect()
    (started,) = central.backend.of(ChargingStarted)
    (sample,) = central.backend.of(MeterSample)
    assert [started.ts, sample.ts, ended.ts] == [
        T0,
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=9),
    ]
    assert started.transaction_id == sample.transaction_id == ended.transaction_id == str(tx.id)
    assert (ended.connector_id, ended.meter_stop_wh, ended.reason) == (1, 4500.0, "EVDisconnected")
    links = [
        type(e).__name__
        for e in central.backend.events
        if isinstance(e, ChargerConnected | ChargerDisconnected)
    ]
    assert links == [
        "ChargerConnected",
        "ChargerDisconnected",
        "ChargerConnected",
        "ChargerDisconnected",
    ]


async def test_resent_transaction_messages_16(central: Central) -> None:
    """A charger that did not get an answer sends the same message again: same transaction
    id, no second event (energy is never counted twice)."""
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        first = await cp.start_transaction(1, "TAG1", meter_start=100, timestamp=T0)
        again = await cp.start_transaction(1, "TAG1", meter_start=100, timestamp=T0)
        assert first.id == again.id
        await cp.stop_transaction(first, meter_stop=900, timestamp=T0 + timedelta(hours=1))
        await cp.stop_transaction(first, meter_stop=900, timestamp=T0 + timedelta(hours=1))
        await cp.heartbeat()
        await central.events(ChargerHeartbeat)
    assert len(central.backend.of(ChargingStarted)) == 1
    assert len(central.backend.of(ChargingEnded)) == 1
    assert central.backend.counts[("message", "duplicate")] == 2


# -- OCPP 2.0.1 and 2.1 -------------------------------------------------------------------------


async def test_boot_status_meter_201(central: Central) -> None:
    async with Charger201(central.url, "CP201", PASSWORDS["CP201"]) as cp:
        answer = await cp.boot("RemoteReset")
        assert answer.status == "Accepted" and answer.interval == 120
        assert (await central.online("CP201")).protocol == "ocpp2.0.1"
        (booted,) = await central.events(ChargerBooted)
        assert (booted.vendor, booted.model, booted.serial, booted.reason) == (
            "SimVendor",
            "Sim-22",
            "SN-0001",
            "RemoteReset",
        )
        await cp.heartbeat()
        await cp.status(2, "Occupied", timestamp=T0)
        await cp.status(2, "Available", connector_id=2)
        await cp.meter_values(2, energy_wh=15000, power_w=11000, soc_pct=55, timestamp=T0)
        status, other = await central.events(ConnectorStatusChanged, 2)
        (sample,) = await central.events(MeterSample)
        assert (await cp.authorize("TAG1")).id_token_info["status"] == "Accepted"
        assert (await cp.authorize("", "NoAuthorization")).id_token_info["status"] == "Accepted"
    assert (status.connector_id, status.status, status.error_code, status.ts, status.info) == (
        2,
        "Occupied",
        None,
        T0,
        None,
    )
    assert other.info == "connector 2"
    assert (sample.connector_id, sample.energy_wh, sample.power_w, sample.soc_pct, sample.ts) == (
        2,
        15000.0,
        11000.0,
        55.0,
        T0,
    )
    assert len(central.backend.of(ChargerHeartbeat)) == 1


async def test_transaction_201(central: Central) -> None:
    async with Charger201(central.url, "CP201", PASSWORDS["CP201"]) as cp:
        tx = await cp.start_transaction(1, "TAG1", meter_start=2000, timestamp=T0)
        await cp.meter_values(1, tx=tx, energy_wh=5000, timestamp=T0 + timedelta(minutes=15))
        answer = await cp.stop_transaction(
            tx, meter_stop=8000, reason="EVDisconnected", timestamp=T0 + timedelta(minutes=30)
        )
        assert answer.id_token_info is None  # no idToken in the request: none in the answer
        (ended,) = await central.events(ChargingEnded)
    (started,) = central.backend.of(ChargingStarted)
    assert (
        started.ts,
        started.connector_id,
        started.transaction_id,
        started.id_tag,
        started.meter_start_wh,
    ) == (
        T0,
        1,
        tx.id,
        "TAG1",
        2000.0,
    )
    assert [(s.energy_wh, s.context) for s in central.backend.of(MeterSample)] == [
        (2000.0, "Transaction.Begin"),
        (5000.0, "Sample.Periodic"),
        (8000.0, "Transaction.End"),
    ]
    assert (ended.ts, ended.connector_id, ended.meter_stop_wh, ended.reason) == (
        T0 + timedelta(minutes=30),
        1,  # the Ended event names no EVSE: remembered from Started
        8000.0,
        "EVDisconnected",
    )


async def test_fault_201(central: Central) -> None:
    async with Charger201(central.url, "CP201", PASSWORDS["CP201"]) as cp:
        await cp.fault(1, tech_code="GF-0x17", tech_info="residual current 31 mA")
        status, why = await central.events(ConnectorStatusChanged, 2)
        (notice,) = await central.events(ChargerNotice)
    assert (status.connector_id, status.status, status.error_code) == (1, "Faulted", None)
    # 2.0.1 StatusNotification has no codes: the Problem event gives them to the connector.
    assert (why.connector_id, why.status, why.error_code, why.vendor_error_code, why.info) == (
        1,
        "Faulted",
        "Connector/Problem",
        "GF-0x17",
        "residual current 31 mA",
    )
    assert (notice.notice, notice.status, notice.severity) == (
        "notify",
        "Connector/Problem=true",
        None,
    )
    assert json.loads(notice.detail) == {
        "event_id": 1,
        "evse_id": 1,
        "connector_id": 1,
        "trigger": "Delta",
        "cleared": False,
        "tech_code": "GF-0x17",
        "tech_info": "residual current 31 mA",
    }


async def test_notices_201(central: Central) -> None:
    async with Charger201(central.url, "CP201", PASSWORDS["CP201"]) as cp:
        assert (
            await cp.data_transfer("com.example", "Stats", {"temp": 41})
        ).status == "UnknownVendorId"
        await cp.firmware_status("Installed")
        await cp.log_status("Uploaded", request_id=3)
        await cp.security_event("FirmwareUpdated", timestamp=T0)
        notices = await central.events(ChargerNotice, 4)
    assert [(n.notice, n.status) for n in notices] == [
        ("data_transfer", "com.example"),
        ("firmware", "Installed"),
        ("log", "Uploaded"),
        ("security", "FirmwareUpdated"),
    ]
    assert json.loads(notices[0].detail) == {"message_id": "Stats", "data": '{"temp": 41}'}


async def test_offline_queue_201(central: Central) -> None:
    cp = Charger201(central.url, "CP201", PASSWORDS["CP201"])
    await cp.connect()
    await cp.drop()  # the cable is cut: no close handshake
    (gone,) = await central.events(ChargerDisconnected)
    assert gone.reason == "connection lost"
    tx = await cp.start_transaction(2, "TAG1", meter_start=0, timestamp=T0)
    await cp.meter_values(2, tx=tx, energy_wh=3000, timestamp=T0 + timedelta(minutes=10))
    await cp.stop_transaction(tx, meter_stop=6000, timestamp=T0 + timedelta(minutes=20))
    resend = cp.queue[-1]  # the Ended event, as it will be sent
    await cp.connect()
    try:
        (ended,) = await central.events(ChargingEnded)
        # The charger did not get the answer and sends the same seqNo again: no second end.
        await cp._deliver(resend, queued=True)
        await cp.heartbeat()
        await central.events(ChargerHeartbeat)
    finally:
        await cp.disconnect()
    (started,) = central.backend.of(ChargingStarted)
    samples = central.backend.of(MeterSample)
    assert ts_of([started, *samples, ended]) == [
        T0,
        T0,
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=20),
        T0 + timedelta(minutes=20),
    ]
    assert len(central.backend.of(ChargingEnded)) == 1
    assert central.backend.counts[("message", "duplicate")] == 1


async def test_ocpp21(central: Central) -> None:
    async with Charger21(central.url, "CP21", PASSWORDS["CP21"]) as cp:
        assert (await cp.boot()).status == "Accepted"
        assert (await central.online("CP21")).protocol == "ocpp2.1"
        tx = await cp.start_transaction(1, "TAG1", meter_start=10, timestamp=T0)
        await cp.stop_transaction(tx, meter_stop=20, timestamp=T0 + timedelta(minutes=1))
        await cp.notify_event(
            1, component="ChargingStation", variable="Problem", severity=2, tech_code="X1"
        )
        (notice,) = await central.events(ChargerNotice)
        (ended,) = await central.events(ChargingEnded)
    assert notice.severity == 2 and notice.status == "ChargingStation/Problem=true"
    assert ended.meter_stop_wh == 20.0


async def test_subprotocol_preference_and_unicode_ids(central: Central) -> None:
    cp = Charger201(
        central.url,
        "城关-07",
        PASSWORDS["城关-07"],
        subprotocols=["ocpp1.5", "ocpp2.1", "ocpp2.0.1"],
    )
    async with cp:
        assert cp.ws is not None and cp.ws.subprotocol == "ocpp2.0.1"
        await cp.heartbeat()
        assert (await central.online("城关-07")).protocol == "ocpp2.0.1"


# -- handshake: subprotocols and security profiles ----------------------------------------------


async def test_no_subprotocol_is_ocpp16(central: Central) -> None:
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"], subprotocols=None) as cp:
        assert cp.ws is not None and cp.ws.subprotocol is None
        assert (await cp.boot()).status == "Accepted"
        assert (await central.online("CP16")).protocol == "ocpp1.6"


async def test_unsupported_subprotocol_refused(central: Central) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await Charger16(
            central.url, "CP16", PASSWORDS["CP16"], subprotocols=["ocpp1.2", "ocpp1.5"]
        ).connect()
    assert refused.value.response.status_code == 400
    assert central.backend.counts[("connection", "no_subprotocol_match")] == 1
    assert central.backend.events == []


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("path", "headers", "status", "reason"),
    [
        ("CP16", {"Authorization": basic("CP16", "wrong")}, 401, "bad_password"),
        ("CP16", {}, 401, "bad_password"),  # no credentials at all
        ("CP99", {"Authorization": basic("CP99", "whatever")}, 401, "unknown_id"),
        ("CP16", {"Authorization": basic("CP201", PASSWORDS["CP201"])}, 401, "user_mismatch"),
        ("CP16", {"Authorization": "Basic !!!not-base64"}, 401, "bad_auth_header"),
        ("CP16", {"Authorization": "Bearer abc"}, 401, "bad_auth_header"),
        ("A" * 49, {}, 404, "bad_path"),
        ("", {}, 404, "bad_path"),
    ],
)
async def test_refused_handshakes(
    central: Central, path: str, headers: dict[str, str], status: int, reason: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(central.url + path, subprotocols=["ocpp1.6"], additional_headers=headers)  # type: ignore[list-item]
    response = refused.value.response
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert central.backend.counts == {("connection", reason): 1}
    assert central.backend.events == [] and central.backend.sessions == {}


async def test_password_never_logged(central: Central, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Charger16(central.url, "CP16", PASSWORDS["CP16"]) as cp:
        await cp.heartbeat()
    with pytest.raises(InvalidStatus):
        await Charger16(central.url, "CP16", "guessed-password-0000").connect()
    token = base64.b64encode(f"CP16:{PASSWORDS['CP16']}".encode()).decode()
    wrong = base64.b64encode(b"CP16:guessed-password-0000").decode()
    # Only the central system's logs: the simulated charger's own client logs its headers.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("drivers"))
    assert "Authorization: [redacted]" in logged  # websockets did log the headers, redacted
    for secret in (PASSWORDS["CP16"], token, "guessed-password-0000", wrong):
        assert secret not in logged


async def test_backend_failure_during_auth_is_503() -> None:
    class Broken(MemoryBackend):
        async def authenticate(self, charger_id: str, password: str | None) -> Any:
            raise OSError("database unreachable")

    backend = Broken()
    server = await serve_ocpp(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{port}/ocpp/CP1", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 503
        assert backend.counts == {("connection", "auth_error"): 1}
    finally:
        server.close()
        await server.wait_closed()


# -- malformed frames ---------------------------------------------------------------------------


async def raw_client(central: Central, charger_id: str, protocol: str) -> ClientConnection:
    return await connect(
        central.url + charger_id,
        subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers={"Authorization": basic(charger_id, PASSWORDS[charger_id])},
    )


async def exchange(ws: ClientConnection, frame: str) -> Any:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def assert_no_answer_then_usable(ws: ClientConnection, frame: str) -> None:
    """*frame* gets no answer: the next thing received answers the Heartbeat sent after it."""
    await ws.send(frame)
    answer = await exchange(ws, '[2,"hb","Heartbeat",{}]')
    assert answer[:2] == [3, "hb"] and "currentTime" in answer[2]


async def test_malformed_frames_16(central: Central) -> None:
    ws = await raw_client(central, "CP16", "ocpp1.6")
    try:
        await assert_no_answer_then_usable(ws, "this is not JSON")
        await assert_no_answer_then_usable(ws, '{"not": "an array"}')
        await assert_no_answer_then_usable(ws, "[2]")
        await assert_no_answer_then_usable(ws, '[3,"nobody-asked",{}]')  # a response to nothing
        cases = [
            ('[2,"m1","Heartbeat",{', "FormationViolation"),  # broken JSON, id recoverable
            ('[2,"m2","Heartbeat",[]]', "FormationViolation"),  # payload not an object
            ('[2,"m3","Heartbeat"]', "FormationViolation"),  # missing payload
            ('[2,"m4",["Heartbeat"],{}]', "FormationViolation"),  # action not a string
            ('[7,"m5",{}]', "FormationViolation"),  # unknown message type
            (
                '[2,"m6","StatusNotification",'
                '{"connectorId":"one","errorCode":"NoError","status":"Available"}]',
                "TypeConstraintViolation",
            ),
            ('[2,"m7","StatusNotification",{"connectorId":1}]', "ProtocolError"),
            (
                '[2,"m8","StatusNotification",'
                '{"connectorId":1,"errorCode":"NoError","status":"Sleeping"}]',
                "PropertyConstraintViolation",
            ),
            ('[2,"m9","Authorize",{"idTag":"' + "X" * 21 + '"}]', "TypeConstraintViolation"),
            ('[2,"m10","Heartbeat",{"extra":1}]', "FormationViolation"),
            ('[2,"m11","FlyToTheMoon",{}]', "NotImplemented"),
            ('[2,"m12","Reset",{"type":"Hard"}]', "NotSupported"),  # a central-system command
            ('[2,"m13","Authorize",{"idTag":"BOOM"}]', "InternalError"),  # our handler failed
        ]
        for n, (frame, code) in enumerate(cases, 1):
            answer = await exchange(ws, frame)
            assert answer[:3] == [4, f"m{n}", code], (frame, answer)
            assert isinstance(answer[3], str) and answer[3] and answer[4] == {}
        assert (await exchange(ws, '[2,"ok","Heartbeat",{}]'))[:2] == [3, "ok"]
    finally:
        await ws.close()
    counts = central.backend.counts
    assert counts[("message", "malformed")] == 7
    assert counts[("message", "unexpected_response")] == 1
    assert counts[("message", "bad_message_type")] == 1
    assert counts[("message", "validation")] == 5
    assert counts[("message", "not_implemented")] == 1
    assert counts[("message", "not_supported")] == 1
    assert counts[("message", "internal_error")] == 1


async def test_malformed_frames_201(central: Central) -> None:
    ws = await raw_client(central, "CP201", "ocpp2.0.1")
    try:
        answer = await exchange(ws, "garbage")
        assert answer[:3] == [4, "-1", "RpcFrameworkError"]
        answer = await exchange(ws, '[2,"x1","Heartbeat",{"extra":1}]')
        assert answer[:3] == [4, "x1", "FormatViolation"]
        answer = await exchange(ws, '[5,"x2",{}]')
        assert answer[:3] == [4, "x2", "MessageTypeNotSupported"]
        answer = await exchange(ws, '[2,"x3","Heartbeat"]')
        assert answer[:3] == [4, "x3", "RpcFrameworkError"]
        answer = await exchange(ws, '[2,"x4","FlyToTheMoon",{}]')
        assert answer[:3] == [4, "x4", "NotImplemented"]
        answer = await exchange(
            ws, '[2,"x5","NotifyChargingLimit",{"chargingLimit":{"chargingLimitSource":"EMS"}}]'
        )
        assert answer[:3] == [4, "x5", "NotSupported"]
        session = central.session("CP201")
        before = session.last_message_at
        answer = await exchange(ws, '[2,"x6","Heartbeat",{}]')
        assert answer[:2] == [3, "x6"] and session.last_message_at > before
    finally:
        await ws.close()


# -- connections ---------------------------------------------------------------------------------


async def test_second_connection_replaces_first(central: Central) -> None:
    first = Charger16(central.url, "CP16", PASSWORDS["CP16"])
    await first.connect()
    old = await central.online("CP16")
    second = Charger16(central.url, "CP16", PASSWORDS["CP16"])
    await second.connect()
    try:
        await asyncio.wait_for(first.wait_closed(), 5)
        await wait_for(lambda: central.backend.sessions.get("CP16") not in (None, old), 5)
        new = central.session("CP16")
        assert (await second.heartbeat()) is not None
        assert central.backend.history == [
            ("CP16", "connected", ""),
            ("CP16", "disconnected", "replaced"),
            ("CP16", "connected", ""),
        ]
        assert old.closed and not new.closed
        with pytest.raises(ChargerOffline):
            await first.heartbeat()
    finally:
        await second.disconnect()
    links = [
        (type(e).__name__, getattr(e, "reason", ""))
        for e in central.backend.events
        if isinstance(e, ChargerConnected | ChargerDisconnected)
    ]
    assert links[:3] == [
        ("ChargerConnected", ""),
        ("ChargerDisconnected", "replaced"),
        ("ChargerConnected", ""),
    ]
    assert len(links) == 4  # the second one's own end, reported once


async def test_session_close_and_server_shutdown() -> None:
    central = await start_central()
    a = Charger16(central.url, "CP16", PASSWORDS["CP16"])
    b = Charger201(central.url, "CP201", PASSWORDS["CP201"])
    await a.connect()
    await b.connect()
    session = await central.online("CP16")
    await central.online("CP201")
    await session.close("decommissioned")
    await asyncio.wait_for(a.wait_closed(), 5)
    central.server.close()
    await central.server.wait_closed()
    await asyncio.wait_for(b.wait_closed(), 5)
    reasons = {e.device_id: e.reason for e in central.backend.of(ChargerDisconnected)}
    assert reasons["CP16"] == "decommissioned"
    assert reasons["CP201"].startswith("1001")  # going away
    assert central.backend.sessions == {}


# -- TLS (security profile 2) --------------------------------------------------------------------


async def test_tls_profile_2() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    central = await start_central(server_ctx)
    try:
        assert central.url.startswith("wss://")
        async with Charger201(
            central.url, "CP201", PASSWORDS["CP201"], ssl_context=client_ctx
        ) as cp:
            assert (await cp.boot()).status == "Accepted"
        # A plaintext client is never served (no downgrade), nor is one that does not trust us.
        plain = central.url.replace("wss://", "ws://")
        with pytest.raises(Exception) as failed:  # noqa: PT011  (a TLS server answers garbage to plain HTTP)
            await connect(plain + "CP201", subprotocols=["ocpp2.0.1"], open_timeout=5)  # type: ignore[list-item]
        assert not isinstance(failed.value, TimeoutError)
        with pytest.raises(ssl.SSLCertVerificationError):
            await Charger201(
                central.url, "CP201", PASSWORDS["CP201"], ssl_context=ssl.create_default_context()
            ).connect()
        assert len(central.backend.of(ChargerConnected)) == 1
    finally:
        central.server.close()
        await central.server.wait_closed()
