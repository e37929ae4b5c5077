"""Helpers of the fault suite (tests/test_faults_*.py, docs/operations.md "Fault suite").

- ``Fleet``: on-street berth sensors whose uplinks can be counted. Sensor *i* sends fCnt
  1..K, odd frames "occupied", even ones "free", each stamped one second after the last, so
  every frame is news and the database must end with exactly K/2 closed parking sessions per
  berth, at known times: a lost uplink is a missing session (or a wrong ``last_fcnt``), an
  uplink applied twice a session too many.
- ``Publisher``: one MQTT client per sensor, QoS 1, that keeps sending across a broker outage
  (a publish that got no PUBACK is sent again, same bytes, on a new connection, as a network
  server does), counting attempts, PUBACKs and connection failures.
- ``fleet_counts``: what the database holds for the fleet (berths and sessions), by SQL.
- ``database_outage``: the scenario of the database faults (restart, partitions): sensors
  publish while the database is away and back, and the counts are checked.
- ``TcpProxy`` (re-exported from tests/tcp_proxy.py): a TCP relay that partitions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.sensors import nwave
from gateway.directory.town import load_town
from gateway.infra.storage.schema import BerthRow, ParkingSessionRow
from tests.tcp_proxy import TcpProxy

__all__ = ["Fleet", "FleetCounts", "Publisher", "Sensor", "TcpProxy", "database_outage"]

TOWN = load_town(None)


@dataclass(frozen=True)
class Sensor:
    dev: str  # dev EUI, lower case
    berth: str
    site: str

    @property
    def topic(self) -> str:
        return f"application/faults/device/{self.dev}/event/up"


def street_sensors(n: int) -> list[Sensor]:
    """*n* nwave sensors of on-street berths of the sample town (any sites)."""
    berths = {b.id: b for b in TOWN.berths}
    sites = {s.id: s for s in TOWN.sites}
    out = [
        Sensor(s.dev_eui.lower(), s.berth, berths[s.berth].site)
        for s in TOWN.sensors
        if s.model == "nwave-nps405" and sites[berths[s.berth].site].kind.value == "on_street"
    ]
    assert len(out) >= n, f"the sample town has {len(out)} on-street nwave sensors"
    return out[:n]


@dataclass
class Fleet:
    sensors: list[Sensor]
    frames: int  # K per sensor, even: every berth ends free
    base: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    )

    def __post_init__(self) -> None:
        assert self.frames % 2 == 0

    @property
    def total(self) -> int:
        return len(self.sensors) * self.frames

    def ts(self, fcnt: int) -> datetime:
        return self.base + timedelta(seconds=fcnt)

    def uplink(self, s: Sensor, fcnt: int) -> bytes:
        """The same bytes every time for (sensor, fCnt): a re-send is a true duplicate."""
        port, data = nwave.encode_status(fcnt % 2 == 1)
        return json.dumps(
            {
                "deduplicationId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{s.dev}/{fcnt}")),
                "time": self.ts(fcnt).isoformat().replace("+00:00", "Z"),
                "deviceInfo": {"tenantId": "t", "applicationId": "faults", "devEui": s.dev},
                "fCnt": fcnt,
                "fPort": port,
                "data": base64.b64encode(data).decode(),
                "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
            }
        ).encode()

    def sessions(self, s: Sensor) -> set[tuple[str, datetime, datetime]]:
        """The closed sessions the berth of *s* must have: one per occupied/free pair."""
        return {(s.berth, self.ts(f), self.ts(f + 1)) for f in range(1, self.frames, 2)}


@dataclass
class Publisher:
    """Sends a fleet's uplinks, one client and one frame in flight per sensor (so each
    sensor's frames arrive in order), ``rate`` frames/s per sensor, across outages."""

    host: str
    port: int
    fleet: Fleet
    rate: float = 50.0
    publish_timeout_s: float = 3.0
    attempts: int = 0  # PUBLISH packets tried (re-sends included)
    acked: set[tuple[str, int]] = field(default_factory=set)  # (dev, fCnt) with a PUBACK
    failures: int = 0  # publishes without PUBACK, connections refused or lost

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for s in self.fleet.sensors:
                tg.create_task(self._sensor(s))

    async def _sensor(self, s: Sensor) -> None:
        fcnt = 1
        interval = 1.0 / self.rate
        while fcnt <= self.fleet.frames:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier=f"pub-{s.dev}-{uuid.uuid4().hex[:4]}"
                ) as client:
                    while fcnt <= self.fleet.frames:
                        started = time.monotonic()
                        self.attempts += 1
                        await client.publish(
                            s.topic,
                            self.fleet.uplink(s, fcnt),
                            qos=1,
                            timeout=self.publish_timeout_s,
                        )
                        self.acked.add((s.dev, fcnt))
                        fcnt += 1
                        # the sensor's pace (a rate, not a wait for some outcome)
                        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
            except aiomqtt.MqttError:
                self.failures += 1
                await asyncio.sleep(0.05)  # reconnect backoff while the broker is away


@dataclass
class FleetCounts:
    last_fcnt: dict[str, int | None]  # by berth
    state: dict[str, str]  # by berth
    sessions: list[tuple[str, datetime, datetime | None]]  # (berth, entry, exit) as stored

    def missing_and_extra(self, fleet: Fleet) -> tuple[int, int]:
        """Sessions the fleet should have made and that are not there; rows beyond those
        (a session twice, or one that should not exist)."""
        want: set[tuple[str, datetime, datetime | None]] = set()
        for s in fleet.sensors:
            want |= set(fleet.sessions(s))
        got = Counter(self.sessions)
        missing = len(want - set(got))
        extra = sum(n for k, n in got.items() if k not in want) + sum(
            n - 1 for k, n in got.items() if k in want
        )
        return missing, extra

    def complete(self, fleet: Fleet) -> bool:
        """Every berth at its last frame, free, with all its sessions and no more."""
        return (
            all(self.last_fcnt.get(s.berth) == fleet.frames for s in fleet.sensors)
            and all(self.state.get(s.berth) == "free" for s in fleet.sensors)
            and self.missing_and_extra(fleet) == (0, 0)
        )


async def fleet_counts(sessions: async_sessionmaker[AsyncSession], fleet: Fleet) -> FleetCounts:
    berths = [s.berth for s in fleet.sensors]
    async with sessions() as db:
        rows = (
            await db.execute(
                select(BerthRow.id, BerthRow.last_fcnt, BerthRow.state).where(
                    BerthRow.id.in_(berths)
                )
            )
        ).all()
        stays = (
            await db.execute(
                select(
                    ParkingSessionRow.berth_id,
                    ParkingSessionRow.entry_at,
                    ParkingSessionRow.exit_at,
                ).where(ParkingSessionRow.berth_id.in_(berths))
            )
        ).all()
    return FleetCounts(
        last_fcnt={r.id: r.last_fcnt for r in rows},
        state={r.id: r.state for r in rows},
        sessions=[(str(r.berth_id), _utc(r.entry_at), _utc(r.exit_at)) for r in stays],
    )


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def uplink_verdicts(gw: Any) -> dict[str, int]:
    """``citygate_uplinks_total`` of the chirpstack source by verdict, and messages in."""
    out = {
        v: int(gw.metrics_value("citygate_uplinks_total", verdict=v))
        for v in ("applied", "duplicate", "stale", "unbound")
    }
    out["in"] = int(gw.metrics_value("citygate_messages_in_total", source="chirpstack"))
    return out


# -- the database away while uplinks flow ----------------------------------------------------
async def readiness(http: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) of ``/readyz``; (0, {}) when the API does not answer."""
    try:
        r = await http.get("/readyz")
    except Exception:  # the API itself away: not what these tests expect, but say so
        return 0, {}
    body: dict[str, Any] = r.json()
    return r.status_code, body


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    from tests.conftest import wait_for

    return await wait_for(predicate, timeout, interval=0.02, what=what)


async def database_outage(
    gw: Any,
    broker_host: str,
    broker_port: int,
    fleet: Fleet,
    down: Callable[[], Awaitable[None]],
    up: Callable[[], Awaitable[None]],
    fault: str,
) -> dict[str, Any]:
    """Sensors publish; after a third is PUBACKed ``down()`` takes the database away; once
    ``/readyz`` says so and another third is PUBACKed (the broker takes them, the gateway
    holds their acknowledgements) ``up()`` brings it back. Asserts, once every uplink is
    PUBACKed: each applied exactly once (berths at their last frame, every parking session
    there once), whatever came again recognised, the gateway ready again by itself. Returns
    the figures (also printed as one ``FAULT {...}`` line)."""
    import httpx

    persister = gw.services.persister
    pub = Publisher(broker_host, broker_port, fleet, rate=40)
    fig: dict[str, Any] = {"fault": fault, "uplinks": fleet.total}
    sending = asyncio.create_task(pub.run())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        try:
            await wait_until(lambda: len(pub.acked) >= fleet.total // 3, 20, "a third sent")
            assert (await readiness(http))[0] == 200
            await down()
            t_down = time.monotonic()
            at_down = len(pub.acked)

            async def unready() -> dict[str, Any] | None:
                status, body = await readiness(http)
                return body if status == 503 else None

            body = await wait_until(unready, 15, "/readyz 503 while the database is away")
            fig["unready_after_s"] = round(time.monotonic() - t_down, 2)
            assert body["checks"]["database"] is False, body
            await wait_until(
                lambda: len(pub.acked) >= 2 * fleet.total // 3, 20, "uplinks during the outage"
            )
            fig["acks_held_in_outage"] = held = persister.acks_held
            assert held > 0, "acknowledgements are held while the database is away"
            assert (await readiness(http))[0] == 503, "not ready until the database is back"
            fig["pubacked_in_outage"] = len(pub.acked) - at_down
            fig["outage_s"] = round(time.monotonic() - t_down, 2)
            await up()
            t_up = time.monotonic()

            async def ready() -> bool:
                return (await readiness(http))[0] == 200

            await wait_until(ready, 30, "/readyz 200 again by itself")
            fig["ready_again_s"] = round(time.monotonic() - t_up, 2)
            cluster = gw.services.charger_cluster  # PostgreSQL: the chargers' locks connection
            if cluster is not None:
                await wait_until(lambda: cluster.leader, 15, "charger cluster leader again")
                fig["charger_leader_again_s"] = round(time.monotonic() - t_up, 2)
            await wait_until(sending.done, 30, "every uplink PUBACKed")
            sending.result()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

        async def complete() -> bool:
            return (await fleet_counts(gw.services.sessions, fleet)).complete(fleet)

        try:
            await wait_until(complete, 20, "every acknowledged uplink in the database")
            await wait_until(lambda: persister.acks_held == 0, 10, "every PUBACK sent")
        finally:
            counts = await fleet_counts(gw.services.sessions, fleet)
            verdicts = uplink_verdicts(gw)
            missing, extra = counts.missing_and_extra(fleet)
            fig |= {
                "pubacked": len(pub.acked),
                "gateway_in": verdicts["in"],
                "applied": verdicts["applied"],
                "again_duplicate": verdicts["duplicate"],
                "again_stale": verdicts["stale"],
                "sessions": len(counts.sessions),
                "sessions_missing": missing,
                "sessions_extra": extra,
                "failed_commits": int(
                    gw.metrics_value("citygate_persist_failed_total", kind="state")
                ),
            }
            print("FAULT " + json.dumps(fig))
        assert len(pub.acked) == fleet.total
        assert verdicts["applied"] == fleet.total and verdicts["unbound"] == 0
        assert verdicts["in"] == verdicts["applied"] + verdicts["duplicate"] + verdicts["stale"]
        assert len(counts.sessions) == fleet.total // 2 and (missing, extra) == (0, 0)
        assert (await readiness(http))[0] == 200
    return fig
