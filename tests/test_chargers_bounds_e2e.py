"""One bad OCPP value never loses another charger's data, through a running gateway: two
simulated chargers (the ocpp library's ChargePoint over real websockets), one sending absurd
values (a year-1 timestamp, meterStart -2^31, connectorId 2^31) while the other reports a fault
in the same recorder window. The bad values get the CallError, the good charger's fault is in
its history, no phantom connector appears, and no endpoint answers 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16 import call as call16
from sqlalchemy.exc import OperationalError

from events import ConnectorStatusChanged
from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from gateway.infra.storage.schema import ChargingSampleRow, ChargingSessionRow
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

YEAR_ONE = "0001-01-01T00:00:00Z"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, ocpp={"heartbeat_s": 60})
    async with running_gateway(settings) as gateway:
        yield gateway


async def get(http: httpx.AsyncClient, path: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await http.get(path, headers=headers)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


async def test_bad_values_are_refused_and_cost_no_other_chargers_data(gw: Any) -> None:
    tokens = await make_tokens(gw)
    inspector = tokens["inspector"]
    async with gw.services.persister._sessions.begin() as s:
        pw_bad = await set_password(s, "SDEV002", gw.services.clock())
        pw_good = await set_password(s, "SDEV003", gw.services.clock())
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    now = datetime.now(UTC)
    rt = gw.services.charging
    async with (
        Charger16(url, "SDEV002", pw_bad) as bad,
        Charger16(url, "SDEV003", pw_good) as good,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http,
    ):
        for c, n in ((bad, 2), (good, 1)):
            await c.boot()
            for connector in range(1, n + 1):
                await c.status(connector, "Available")

        def status(connector: int, ts: str) -> Any:
            return lambda q: call16.StatusNotification(
                connector_id=connector, error_code="NoError", status="Available", timestamp=ts
            )

        with pytest.raises(PropertyConstraintViolationError):
            await bad.send(status(1, YEAR_ONE))
        with pytest.raises(PropertyConstraintViolationError):
            await bad.send(status(2147483648, now.isoformat()))
        with pytest.raises(PropertyConstraintViolationError):
            await bad.send(
                lambda q: call16.StartTransaction(
                    connector_id=1, id_tag="APP-1", meter_start=-2147483648, timestamp=YEAR_ONE
                )
            )
        # A bad event that got past the edge (a bug of ours; a third charger) and the good
        # charger's fault land in the same recorder batch: its row does not fit the database
        # (OverflowError on SQLite, out of int32 range on PostgreSQL), the fault is kept.
        rt.publish(
            ConnectorStatusChanged(
                device_id="SDEV004",
                ts=now,
                connector_id=2**63,
                status="Faulted",
                error_code="OtherError",
            )
        )
        await good.fault(1, "GroundFailure", vendor_error_code="E-0x1F")
        # The bad charger, corrected, charges and is billed.
        tx = await bad.start_transaction(1, "APP-1", meter_start=1000, timestamp=now)
        await bad.stop_transaction(tx, meter_stop=3000, timestamp=datetime.now(UTC))
        await rt.flushed()

        async def fault_in_history() -> Any:
            body = await get(http, "/api/v1/chargers/SDEV003/events", inspector)
            faults = [e for e in body["events"] if e.get("error_code") == "GroundFailure"]
            return faults or None

        await wait_for(fault_in_history, 10, what="the good charger's fault in its history")
        for cid in ("SDEV002", "SDEV003"):
            body = await get(http, f"/api/v1/chargers/{cid}", inspector)
            assert sorted(c["id"] for c in body["connectors"]) == (
                [1, 2] if cid == "SDEV002" else [1]
            )
            await get(http, f"/api/v1/chargers/{cid}/events", inspector)
        await get(http, "/api/v1/chargers", inspector)
        sessions = await get(http, "/api/v1/chargers/SDEV002/sessions", inspector)
        (session,) = sessions["sessions"]
        assert (session["state"], session["meter_start_wh"]) == ("closed", 1000)
        public = await get(http, f"/api/v1/charging/sessions/{session['id']}")
        assert public["meter_stop_wh"] == 3000 and public["bill"] is not None
        # A session stored before the edge refused such values renders, unbilled: never a 500.
        async with gw.services.persister._sessions.begin() as s:
            s.add(
                ChargingSessionRow(
                    id="stored-bad", charger_id="SDEV002", connector_id=2, transaction_id="999",
                    id_tag="APP-2", state="open", started_at=now, meter_start_wh=-2147483648.0,
                    updated_at=now,
                )
            )  # fmt: skip
            await s.flush()
            s.add(ChargingSampleRow(session_id="stored-bad", ts=now, energy_wh=-2147483648.0))
        stored = await get(http, "/api/v1/charging/sessions/stored-bad")
        assert stored["meter_start_wh"] == -2147483648 and stored["bill"] is None
        await get(http, "/api/v1/chargers/SDEV002/sessions", inspector)
    counted = {
        reason: gw.metrics_value("citygate_ocpp_rejected_total", what="message", reason=reason)
        for reason in ("timestamp_out_of_range", "connector_out_of_range", "meter_out_of_range")
    }
    assert counted["timestamp_out_of_range"] >= 1 and counted["connector_out_of_range"] >= 1
    assert counted["meter_out_of_range"] >= 1
    # The bad row was counted (lost on its own), not the batch it came in.
    assert gw.metrics_value("citygate_ocpp_rejected_total", what="recorder", reason="row_failed")


async def test_a_batch_lost_to_a_database_outage_is_written_with_the_next(
    gw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away for one write (injected: an OperationalError from the connection)
    costs nothing: the batch is kept and written with the next one, not dropped."""
    rt = gw.services.charging
    real = rt._write_units
    failures: list[int] = []

    def faulted(units: list[Any]) -> bool:
        return any(
            isinstance(u.event, ConnectorStatusChanged) and u.event.error_code == "OverVoltage"
            for u in units
        )

    async def flaky(units: list[Any]) -> None:
        if not failures and faulted(units):  # the batch that carries the fault
            failures.append(len(units))
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database away"))
        await real(units)

    monkeypatch.setattr(rt, "_write_units", flaky)
    tokens = await make_tokens(gw)
    async with gw.services.persister._sessions.begin() as s:
        pw = await set_password(s, "SDEV006", gw.services.clock())
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    async with (
        Charger16(url, "SDEV006", pw) as c,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http,
    ):
        await c.boot()
        await c.fault(2, "OverVoltage")
        await wait_for(lambda: failures, 10, what="the injected outage")
        await c.heartbeat()  # the next batch
        await rt.flushed()

        async def fault_in_history() -> Any:
            body = await get(http, "/api/v1/chargers/SDEV006/events", tokens["inspector"])
            return [e for e in body["events"] if e.get("error_code") == "OverVoltage"] or None

        await wait_for(fault_in_history, 10, what="the fault written after the outage")
