"""Charger events are never dropped: with the database away the recorder keeps what it could
not write, and once it holds its limit it stops taking more, so the queue fills and the
chargers' sessions stop reading frames (TCP back-pressure) instead of losing a
``StopTransaction``. When the database is back everything said meanwhile is written, in order.
Real gateway, real websockets, the ``ocpp`` library's charge points, both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from ocpp.exceptions import InternalError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from gateway.infra.storage.schema import ChargingSessionRow
from gateway.services.charging import backend, recorder
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for


class Outage:
    """The charging sessions table out of reach. On SQLite it is renamed away: writes fail
    (the recorder keeps them and retries). On PostgreSQL another transaction holds it locked:
    writes wait (the recorder falls behind). Either way the chargers must be slowed down."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.conn: AsyncConnection | None = None

    async def begin(self) -> None:
        if self.engine.dialect.name == "sqlite":
            async with self.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE charging_sessions RENAME TO cs_away"))
            return
        self.conn = await self.engine.connect()
        await self.conn.begin()
        await self.conn.execute(text("LOCK TABLE charging_sessions IN ACCESS EXCLUSIVE MODE"))

    async def end(self) -> None:
        if self.conn is None:
            async with self.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE cs_away RENAME TO charging_sessions"))
            return
        await self.conn.rollback()
        await self.conn.close()


@pytest_asyncio.fixture
async def gw(mosquitto: Broker, db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    # Small limits, so a handful of frames reach them.
    monkeypatch.setattr(recorder, "_RETRY_MAX", 3)
    monkeypatch.setattr(backend, "HIGH_WATER", 4)
    monkeypatch.setattr(recorder, "LOW_WATER", 1)
    settings = gateway_settings(db_url, mosquitto, ocpp={"heartbeat_s": 60})
    async with running_gateway(settings) as gateway:
        yield gateway


async def test_a_database_outage_slows_chargers_and_loses_no_transaction(gw: Any) -> None:
    async with gw.services.sessions.begin() as s:
        pw_a = await set_password(s, "SDEV002", gw.services.clock())
        pw_b = await set_password(s, "SDEV003", gw.services.clock())
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    rt = gw.services.charging
    async with Charger16(url, "SDEV002", pw_a) as a, Charger16(url, "SDEV003", pw_b) as b:
        for c in (a, b):
            await c.boot()
            await c.status(1, "Available")
        await rt.flushed()
        tx = await a.start_transaction(1, "APP-1", meter_start=1000, timestamp=datetime.now(UTC))
        await rt.flushed()
        outage = Outage(gw.services.engine)
        await outage.begin()
        rejected_before = gw.metrics_value(
            "citygate_ocpp_rejected_total", what="recorder", reason="write_failed"
        )
        try:
            stop = asyncio.create_task(
                a.stop_transaction(tx, meter_stop=3500, timestamp=datetime.now(UTC))
            )
            statuses = [
                asyncio.create_task(b.status(1, s))
                for s in ("Preparing", "Available", "Preparing", "Available") * 3
            ]
            # The recorder's limit is reached, the queue fills: sessions stop reading frames.
            await wait_for(lambda: not rt._room.is_set(), 10, what="back-pressure on")
            assert not all(t.done() for t in statuses)
        finally:
            await outage.end()
        await asyncio.wait_for(stop, 30)
        await asyncio.wait_for(asyncio.gather(*statuses), 30)
        await rt.flushed()
    assert rt._room.is_set()
    assert (
        gw.metrics_value("citygate_ocpp_rejected_total", what="recorder", reason="write_failed")
        == rejected_before
    )
    async with gw.services.sessions() as s:
        (row,) = (await s.scalars(select(ChargingSessionRow))).all()
    assert (row.state, row.meter_start_wh, row.meter_stop_wh) == ("closed", 1000, 3500)


@pytest_asyncio.fixture
async def gw_quick(mosquitto: Broker, db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(
        db_url, mosquitto, ocpp={"heartbeat_s": 60, "durable_reply_timeout_s": 0.5}
    )
    async with running_gateway(settings) as gateway:
        yield gateway


async def test_a_stop_is_acknowledged_only_once_it_is_recorded(gw_quick: Any) -> None:
    """A StopTransaction that cannot be recorded in time gets a CallError (the charger keeps
    it and sends it again, as OCPP 1.6 §4.10 says); the repeat is answered once the first one
    is committed, and the session is closed once."""
    gw = gw_quick
    async with gw.services.sessions.begin() as s:
        pw = await set_password(s, "SDEV002", gw.services.clock())
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    rt = gw.services.charging
    async with Charger16(url, "SDEV002", pw) as a:
        await a.boot()
        await a.status(1, "Available")
        tx = await a.start_transaction(1, "APP-1", meter_start=1000, timestamp=datetime.now(UTC))
        await rt.flushed()
        outage = Outage(gw.services.engine)
        await outage.begin()
        stop_at = datetime.now(UTC)
        try:
            with pytest.raises(InternalError):
                await a.stop_transaction(tx, meter_stop=4200, timestamp=stop_at)
            assert (
                gw.metrics_value(
                    "citygate_ocpp_rejected_total", what="recorder", reason="reply_not_durable"
                )
                >= 1
            )
        finally:
            await outage.end()
        # The recorder retries with backoff; the charger sends its repeat after the first stop
        # is committed (a repeat sent earlier may be refused again, and sent again: §4.10).
        await asyncio.wait_for(rt.flushed(), 30)
        answer = await asyncio.wait_for(
            a.stop_transaction(tx, meter_stop=4200, timestamp=stop_at), 30
        )
        assert answer is not None
    async with gw.services.sessions() as s:
        (row,) = (await s.scalars(select(ChargingSessionRow))).all()
    assert (row.state, row.meter_stop_wh) == ("closed", 4200)
