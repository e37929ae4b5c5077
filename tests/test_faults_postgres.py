"""Fault suite: PostgreSQL restarted while sensors send (issue 16).

The gateway runs on a private PostgreSQL cluster of this test's own (tests/pg_private.py; the
machine's server on 5432 is shared and never restarted), stopped while 20 sensors publish,
and started again: ``pg_ctl stop -m fast`` (every connection terminated, a clean shutdown) and
``-m immediate`` (the server dies at once, as in a crash; recovery replays its WAL). Counted:
uplinks sent and PUBACKed by the broker (they keep flowing: the gateway holds their acknowledgements
meanwhile), received, applied, recognised again, the parking sessions in the database, and how
long ``/readyz`` took to say so and to clear. The gateway must recover by itself."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Broker, gateway_settings, running_gateway
from tests.faults import Fleet, database_outage, street_sensors
from tests.pg_private import PrivatePg, private_pg_fixture  # noqa: F401


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart_loses_no_acknowledged_uplink(
    mosquitto: Broker, private_pg: PrivatePg, mode: str
) -> None:
    url = await asyncio.to_thread(private_pg.create_database, "citygate")
    settings = gateway_settings(url, mosquitto)
    fleet = Fleet(street_sensors(20), frames=40)
    async with running_gateway(settings) as gw:

        async def down() -> None:
            await asyncio.to_thread(private_pg.stop, mode)

        async def up() -> None:
            await asyncio.to_thread(private_pg.start)

        await database_outage(
            gw, mosquitto.host, mosquitto.port, fleet, down, up, f"pg restart ({mode})"
        )
