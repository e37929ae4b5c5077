"""Fault suite: the MQTT broker restarted while sensors send (issue 16).

A private Mosquitto with persistence (tests/conftest.py ``own_mosquitto``) is stopped (SIGTERM:
it saves its sessions and queued QoS 1 messages) and started again on the same port while 20
sensors publish. Counted: uplinks sent, PUBACKed by the broker, received by the gateway,
applied / recognised as duplicates, and the parking sessions they made in the database. Every
uplink the publisher got a PUBACK for must be applied once, none twice, and the gateway must
reconnect by itself."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.conftest import Broker, copy_sqlite, gateway_settings, running_gateway, wait_for
from tests.faults import Fleet, Publisher, fleet_counts, street_sensors, uplink_verdicts


@pytest.mark.slow
async def test_broker_restart_loses_no_acknowledged_uplink_and_applies_none_twice(
    own_mosquitto: Broker, tmp_path: Path, sqlite_template: dict[str, Path]
) -> None:
    fleet = Fleet(street_sensors(20), frames=40)
    db = copy_sqlite(sqlite_template["town"], tmp_path / "cg.db")  # migrated, town imported
    settings = gateway_settings(f"sqlite+aiosqlite:///{db}", own_mosquitto)
    async with running_gateway(settings) as gw:
        transport = gw.services.transport
        pub = Publisher(own_mosquitto.host, own_mosquitto.port, fleet, rate=40)
        sending = asyncio.create_task(pub.run())
        t0 = time.monotonic()
        try:
            await wait_for(lambda: len(pub.acked) >= fleet.total // 3, 20, what="a third sent")
            await asyncio.to_thread(own_mosquitto.stop)
            acked_before = len(pub.acked)
            await wait_for(lambda: not transport.connected.is_set(), 10, what="loss noticed")
            await wait_for(lambda: pub.failures > 0, 10, what="publishers cut off")
            await asyncio.to_thread(own_mosquitto.start)
            back = time.monotonic()
            await wait_for(transport.connected.is_set, 15, interval=0.01, what="reconnected")
            reconnect_s = time.monotonic() - back
            await wait_for(sending.done, 30, what="every uplink PUBACKed")
            sending.result()
            publish_s = time.monotonic() - t0
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        assert len(pub.acked) == fleet.total and acked_before < fleet.total

        async def complete() -> bool:
            return (await fleet_counts(gw.services.sessions, fleet)).complete(fleet)

        try:
            await wait_for(complete, 20, interval=0.1, what="every acknowledged uplink applied")
        finally:
            counts = await fleet_counts(gw.services.sessions, fleet)
            verdicts = uplink_verdicts(gw)
            missing, extra = counts.missing_and_extra(fleet)
            print(
                "FAULT "
                + json.dumps(
                    {
                        "fault": "broker restart",
                        "uplinks": fleet.total,
                        "publishes": pub.attempts,
                        "pubacked": len(pub.acked),
                        "pubacked_before_stop": acked_before,
                        "publisher_failures": pub.failures,
                        "gateway_in": verdicts["in"],
                        "applied": verdicts["applied"],
                        "again_duplicate": verdicts["duplicate"],
                        "again_stale": verdicts["stale"],
                        "sessions": len(counts.sessions),
                        "sessions_missing": missing,
                        "sessions_extra": extra,
                        "reconnect_s": round(reconnect_s, 2),
                        "publish_s": round(publish_s, 2),
                        "applied_after_s": round(time.monotonic() - t0 - publish_s, 2),
                        "gateway_reconnects": transport.reconnects,
                    }
                )
            )
        # Each distinct uplink applied exactly once; whatever came again (re-sent by the
        # publisher, re-delivered by the broker for acknowledgements the restart cut off) was
        # recognised: the same fCnt as ``duplicate``, an older one than the newest applied as
        # ``stale``; neither changes anything.
        assert verdicts["applied"] == fleet.total and verdicts["unbound"] == 0
        assert verdicts["in"] == verdicts["applied"] + verdicts["duplicate"] + verdicts["stale"]
        assert len(counts.sessions) == fleet.total // 2 and (missing, extra) == (0, 0)
        assert transport.reconnects >= 1
