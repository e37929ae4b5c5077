"""Fault suite: a silent partition between the gateway and its database (issue 16).

Unlike tests/test_faults_partition.py (connections reset, new ones refused), packets are lost:
the TCP proxy in front of PostgreSQL (tests/tcp_proxy.py ``TcpProxy.freeze``) stops relaying in
both directions and accepts new connections without ever reaching the server, so a commit
neither answers nor fails. The gateway must say so (``/readyz`` 503 once a commit has waited
``STUCK_AFTER_S``; it used to stay 200 with every acknowledgement held), lose nothing the
broker acknowledged, and carry on by itself when the partition heals (``thaw``: what was held
is relayed, as TCP rides out a short partition). Counted as for a database restart."""

from __future__ import annotations

import pytest

from gateway.services.parking.persist import STUCK_AFTER_S
from tests.conftest import Broker, gateway_settings, running_gateway
from tests.faults import Fleet, TcpProxy, database_outage, street_sensors
from tests.test_faults_partition import proxied_pg  # noqa: F401


@pytest.mark.slow
async def test_silent_partition_is_reported_and_loses_no_acknowledged_uplink(
    mosquitto: Broker,
    proxied_pg: tuple[str, TcpProxy],  # noqa: F811 - the fixture imported above
) -> None:
    url, proxy = proxied_pg
    settings = gateway_settings(url, mosquitto)
    fleet = Fleet(street_sensors(20), frames=40)
    async with running_gateway(settings) as gw:
        fig = await database_outage(
            gw, mosquitto.host, mosquitto.port, fleet, proxy.freeze, proxy.thaw, "silent partition"
        )
    assert fig["unready_after_s"] >= STUCK_AFTER_S * 0.9  # not before a commit is overdue
    assert proxy.reset == 0  # nothing was reset: the same connections carried on
