"""Fault suite: a network partition between the gateway and its database (issue 16).

The gateway reaches PostgreSQL (the tests' server, a throwaway database) only through a TCP
proxy of the test's own (tests/tcp_proxy.py ``TcpProxy``). ``cut()`` resets every connection
through it and refuses new ones (the listener is closed), as a partition that the kernel
reports; ``restore()`` listens again on the same port. Counted as for a database restart:
uplinks sent, PUBACKed (the broker keeps taking them, the gateway holds their
acknowledgements), applied, recognised again, the parking sessions in the database, and how
long ``/readyz`` took to say so and to clear."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, running_gateway, wait_for
from tests.faults import Fleet, TcpProxy, database_outage, street_sensors


@pytest_asyncio.fixture
async def proxied_pg(pg_url: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """(database URL through the proxy, the proxy)."""
    where = urlsplit(pg_url.replace("postgresql+asyncpg", "http", 1))
    assert where.hostname is not None and where.port is not None
    proxy = TcpProxy(where.hostname, where.port)
    await proxy.start()
    try:
        url = pg_url.replace(f"{where.hostname}:{where.port}", f"127.0.0.1:{proxy.port}", 1)
        yield url, proxy
    finally:
        await proxy.close()


@pytest.mark.slow
async def test_partition_from_the_database_loses_no_acknowledged_uplink(
    mosquitto: Broker, proxied_pg: tuple[str, TcpProxy]
) -> None:
    url, proxy = proxied_pg
    settings = gateway_settings(url, mosquitto)
    fleet = Fleet(street_sensors(20), frames=40)
    async with running_gateway(settings) as gw:
        before = proxy.accepted
        fig = await database_outage(
            gw, mosquitto.host, mosquitto.port, fleet, proxy.cut, proxy.restore, "partition"
        )
    assert (
        proxy.cuts == 1 and proxy.reset > 0 and proxy.accepted > before
    )  # the gateway connected again
    print(f"FAULT partition: {proxy.reset} connections reset, {proxy.accepted - before} new")
    assert fig["applied"] == fleet.total


@pytest.mark.slow
async def test_partition_with_shared_berths_loses_and_doubles_nothing(
    mosquitto: Broker, proxied_pg: tuple[str, TcpProxy]
) -> None:
    """The same partition with the berths shared (``[occupancy] shared = on``): decisions whose
    transaction the partition cut are decided again from the rows, the follower's connection
    comes back by itself, and every uplink is applied once."""
    url, proxy = proxied_pg
    settings = gateway_settings(url, mosquitto, occupancy={"shared": "on"})
    fleet = Fleet(street_sensors(20), frames=40)
    async with running_gateway(settings) as gw:
        shared = gw.services.shared_berths
        assert shared is not None
        fig = await database_outage(
            gw, mosquitto.host, mosquitto.port, fleet, proxy.cut, proxy.restore, "shared"
        )
        await wait_for(shared.followed.is_set, 10, what="the follower back")
    assert proxy.cuts == 1 and proxy.reset > 0
    assert fig["applied"] == fleet.total
