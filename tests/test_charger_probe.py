"""A silent charger is probed (TriggerMessage) before it is declared offline: one that answers
stays online, one that does not goes offline and its outage counts against availability."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from events import now_utc
from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


class ShiftedClock:
    """The wall clock, moved forward at will (silence without waiting for it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return now_utc() + self.offset


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(
    mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory, clock: ShiftedClock
) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("probe") / "cg.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}",
        mosquitto,
        ocpp={"heartbeat_s": 60, "probe_timeout_s": 1, "watch_interval_s": 0.1},
    )
    async with running_gateway(settings, clock) as gateway:
        yield gateway


async def test_probe_before_offline(gw: Any, clock: ShiftedClock) -> None:
    async with gw.services.persister._sessions.begin() as s:
        password = await set_password(s, "SDEV010", gw.services.clock())
    book = gw.services.charging.book
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    async with Charger16(url, "SDEV010", password) as c:
        await c.boot()
        await c.status(1, "Available")  # its one connector (a second would be refused)
        await wait_for(lambda: book.health("SDEV010", clock()).state.value == "available", 5)

        # Silent for longer than 2 heartbeats: probed, and it answers the TriggerMessage.
        clock.offset += timedelta(minutes=3)
        await wait_for(lambda: "Heartbeat" in c.triggered, 5, what="probe answered")
        await wait_for(
            lambda: book.health("SDEV010", clock()).liveness == "online", 5, what="online again"
        )
        # The probe's own answer is counted when the TriggerMessage result comes back, which
        # may be just after the Heartbeat it triggered: a condition, not a race.
        await wait_for(
            lambda: gw.metrics_value("citygate_ocpp_probes_total", result="answered") >= 1,
            10,
            what="probe counted as answered",
        )

        # Silent again, and this time it does not answer: offline, though the socket is up.
        c.silent = True
        clock.offset += timedelta(minutes=3)

        def offline() -> bool:
            return book.health("SDEV010", clock()).liveness == "offline"

        # A condition, not a sleep: 30 s of headroom for a loaded CI machine (it took 1-2 s
        # here; a clean clone running beside a demo once needed more than 10).
        await wait_for(offline, 30, what="declared offline after an unanswered probe")
        h = book.health("SDEV010", clock())
        assert h.state.value == "offline" and "probe" in h.reason
        assert gw.metrics_value("citygate_ocpp_probes_total", result="silent") >= 1
        assert c.online  # the socket never dropped: only the probe told


async def test_never_connected_chargers_are_offline(gw: Any, clock: ShiftedClock) -> None:
    h = gw.services.charging.book.health("SDEV011", datetime.now(UTC))
    assert h.state.value == "offline" and h.reason == "never connected"
