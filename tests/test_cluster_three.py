"""Three real gateways (``citygate run``) on one Mosquitto and one PostgreSQL database, behind
an MQTT 5 shared subscription, as one gateway (issue 16):

* uplinks spread across all three are each applied once, never after a newer frame, and the
  parking sessions they open and close are as one instance would keep them;
* every instance's ``/api/v1/sites`` and berths agree within a second of the database;
* a command to a charger through an instance it is not connected to returns its answer;
* one instance killed (SIGKILL) mid-stream loses nothing acknowledged: every berth ends as
  its last uplink said, on every instance;
* cases recorded while all three deliver are delivered exactly once each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from sqlalchemy import select

from drivers.sensors import bosch, nwave
from events import CaseRaised
from gateway.cases.outbox import record_case
from gateway.demo.broker import free_port
from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from gateway.directory.tokens import Role, create_token
from gateway.directory.town import load_town
from gateway.infra.storage.db import create_engine, sessionmaker_for
from gateway.infra.storage.schema import BerthRow, ParkingSessionRow
from tests.case_system import CaseSystem
from tests.conftest import Broker, wait_for

pytestmark = pytest.mark.slow

CODECS = {"nwave-nps405": nwave, "bosch-tps110": bosch}
ROUNDS = 6  # uplinks per sensor; odd rounds say occupied, even ones free
KILL_AFTER = 3  # rounds published before one instance is killed
CASES = 30
CHARGER = "SDEV001"


def uplink(dev: str, model: str, fcnt: int, occupied: bool, at: datetime) -> bytes:
    port, data = CODECS[model].encode_status(occupied)
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": at.isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "three", "devEui": dev},
            "fCnt": fcnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
        }
    ).encode()


def _log(path: Path) -> Any:
    """The child's stderr, kept for a failing run (the child owns the file)."""
    return path.open("ab")


@dataclass
class Instance:
    n: int
    env: dict[str, str]
    cwd: Path
    api: int
    ocpp: int
    proc: asyncio.subprocess.Process | None = None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api}", timeout=10)

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway.cli", "run"),
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=_log(self.cwd / "stderr.log"),
        )
        await wait_for(self.ready, 60, interval=0.1, what=f"gateway {self.n} ready")

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            await asyncio.wait_for(self.proc.wait(), 20)

    async def verdicts(self) -> Counter[str]:
        text = (await self.http.get("/metrics", headers=self.auth)).text
        out: Counter[str] = Counter()
        for m in re.finditer(r'citygate_uplinks_total\{verdict="(\w+)"\} (\S+)', text):
            out[m.group(1)] += int(float(m.group(2)))
        return out

    auth: dict[str, str] = field(default_factory=dict)


async def view(gw: Instance, sites: list[str], *, berths: bool = True) -> tuple[Any, ...]:
    """(site counts, berth states) as this instance's public API serves them."""
    r = await gw.http.get("/api/v1/sites")
    r.raise_for_status()
    counts = sorted(
        (s["id"], s["free"], s["occupied"], s["unknown"])
        for s in r.json()["sites"]
        if s["id"] in sites
    )
    states: list[tuple[str, str]] = []
    for site in sites if berths else ():
        b = await gw.http.get(f"/api/v1/sites/{site}/berths")
        b.raise_for_status()
        states += [(x["id"], x["state"]) for x in b.json()["berths"]]
    return tuple(counts), tuple(sorted(states))


def differ(views: list[tuple[Any, ...]]) -> list[Any]:
    """The berths (and counts) the instances' views disagree on, briefly."""
    out: list[Any] = []
    for part in (0, 1):
        rows = [dict((x[0], x[1:]) for x in v[part]) for v in views]
        for key in sorted(set().union(*rows)):
            seen = [r.get(key) for r in rows]
            if len(set(seen)) > 1:
                out.append((key, seen))
    return out[:10]


async def test_three_gateways_are_one(own_mosquitto: Broker, pg_url: str, tmp_path: Path) -> None:
    town = load_town(None)
    sensors = [s for s in town.sensors if s.model in CODECS]
    site_of = {b.id: b.site for b in town.berths}
    sites = sorted({site_of[s.berth] for s in sensors})
    cases = CaseSystem()
    await cases.start()
    gws: list[Instance] = []
    for n in range(3):
        cwd = tmp_path / f"gw{n}"
        cwd.mkdir()
        api, ocpp = free_port(), free_port()
        env = {
            **os.environ,
            "CITYGATE_DATABASE__URL": json.dumps(pg_url),
            "CITYGATE_MQTT__PORT": str(own_mosquitto.port),
            "CITYGATE_MQTT__CLIENT_ID": f'"three-{n}"',  # its persistent session across restarts
            "CITYGATE_MQTT__SHARED_GROUP": '"cg"',
            "CITYGATE_API__PORT": str(api),
            "CITYGATE_API__RATE_LIMIT_PER_S": "0",
            "CITYGATE_OCPP__PORT": str(ocpp),
            "CITYGATE_BODYCAMS__SIP_PORT": "0",
            "CITYGATE_DRONES__MAVLINK_PORT": "0",
            "CITYGATE_TELEMETRY__SPOOL_DIR": json.dumps(str(cwd / "spool")),
            "CITYGATE_CAMERAS__EVIDENCE_DIR": json.dumps(str(cwd / "evidence")),
            "CITYGATE_CASES__URL": json.dumps(cases.url),
            "CITYGATE_CASES__SECRET": cases.secret.decode(),
            "CITYGATE_CASES__MAX_BACKOFF_S": "0.5",
            "CITYGATE_LOG__LEVEL": '"WARNING"',
        }
        gws.append(Instance(n, env, cwd, api, ocpp))
    engine = create_engine(pg_url)
    sessions = sessionmaker_for(engine)
    try:
        await gws[0].start()  # migrates and imports the town; then the others join
        await asyncio.gather(gws[1].start(), gws[2].start())
        now = datetime.now(UTC)
        async with sessions.begin() as db:
            _, admin = await create_token(db, Role.ADMIN, now, "three")
            _, operator = await create_token(db, Role.OPERATOR, now, "three")
            password = await set_password(db, CHARGER, now)
        for gw in gws:
            gw.auth = {"Authorization": f"Bearer {admin}"}

        # -- cases: recorded once, three instances delivering ------------------------------
        keys = []
        async with sessions.begin() as db:
            for i in range(CASES):
                event = CaseRaised(
                    device_id="cam-01",
                    ts=now,
                    category="0505",
                    rule_id="fire-lane",
                    title="消防通道占用",
                    dedup_key=f"0505:three-{i}",
                    dedup_window_s=600,
                    plate="粤B12345",
                )
                row = await record_case(db, event, now)
                assert row is not None
                keys.append(row.id)

        # -- uplinks through the shared subscription ---------------------------------------
        start = datetime.now(UTC)
        published = 0

        async def publish(rounds: range) -> None:
            nonlocal published
            async with aiomqtt.Client(
                "127.0.0.1", own_mosquitto.port, identifier=f"pub-{uuid.uuid4().hex[:6]}"
            ) as pub:
                for r in rounds:
                    for i, s in enumerate(sensors):
                        at = start + timedelta(seconds=r, milliseconds=i)
                        dev = s.dev_eui.lower()
                        await pub.publish(  # QoS 1: returns once the broker has it
                            f"application/three/device/{dev}/event/up",
                            uplink(dev, s.model, r, r % 2 == 1, at),
                            qos=1,
                        )
                        published += 1

        def want(last_round: int) -> dict[str, str]:
            return {s.berth: "occupied" if last_round % 2 == 1 else "free" for s in sensors}

        async def db_states() -> dict[str, tuple[str, int | None]]:
            async with sessions() as db:
                rows = await db.execute(select(BerthRow.id, BerthRow.state, BerthRow.last_fcnt))
                return {r.id: (r.state, r.last_fcnt) for r in rows}

        async def db_final(last_round: int) -> bool:
            got = await db_states()
            return all(got.get(b) == (st, last_round) for b, st in want(last_round).items())

        await publish(range(1, KILL_AFTER + 1))
        await wait_for(lambda: db_final(KILL_AFTER), 30, interval=0.05, what="rounds committed")
        committed = time.monotonic()
        counts = [await view(gw, sites, berths=False) for gw in gws]
        while len(set(counts)) != 1:
            if time.monotonic() - committed > 1.0:
                raise AssertionError(f"/api/v1/sites differ after 1 s: {differ(counts)}")
            await asyncio.sleep(0.02)
            counts = [await view(gw, sites, berths=False) for gw in gws]
        agreed_s = time.monotonic() - committed
        views = [await view(gw, sites) for gw in gws]
        assert len(set(views)) == 1, differ(views)
        states = dict(views[0][1])
        assert all(states[b] == st for b, st in want(KILL_AFTER).items()), views[0]
        verdicts = [await gw.verdicts() for gw in gws]
        total = sum(verdicts, Counter())
        assert total["applied"] + total["stale"] == published, (total, published)
        assert total["duplicate"] == 0, total
        assert all(v["applied"] > 0 for v in verdicts), f"not spread: {verdicts}"

        # -- a charger on instance 0, commanded through instance 1 ---------------------------
        charger = Charger16(f"ws://127.0.0.1:{gws[0].ocpp}/ocpp", CHARGER, password)
        await charger.connect()
        try:
            await charger.boot()
            await charger.status(1, "Available")
            charger.answers["Reset"] = "Rejected"
            op = {"Authorization": f"Bearer {operator}"}

            async def commanded() -> bool:
                r = await gws[1].http.post(
                    f"/api/v1/chargers/{CHARGER}/commands/reset", headers=op, json={"type": "soft"}
                )
                if r.status_code == 409:  # instance 1 has not seen it connect yet
                    return False
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "Rejected"
                return True

            await wait_for(commanded, 10, interval=0.2, what="a command through instance 1")
            assert charger.received[-1] == ("Reset", {"type": "Soft"})
        finally:
            await charger.disconnect()

        # -- kill -9 of one instance mid-stream ----------------------------------------------
        stream = asyncio.create_task(publish(range(KILL_AFTER + 1, ROUNDS + 1)))
        await wait_for(lambda: published >= len(sensors) * KILL_AFTER + 10, 20, what="streaming")
        assert gws[2].proc is not None
        gws[2].proc.kill()
        await gws[2].proc.wait()
        await stream
        killed_at = time.monotonic()
        # The survivors take the stream; what the dead one held unacknowledged is delivered
        # again when its session comes back (as a supervisor restarts it).
        await gws[2].start()
        await wait_for(lambda: db_final(ROUNDS), 30, interval=0.1, what="every last uplink")
        recovered_s = time.monotonic() - killed_at
        assert recovered_s < 30, recovered_s

        async def all_agree() -> bool:
            vs = [await view(gw, sites) for gw in gws]
            return len(set(vs)) == 1 and all(
                dict(vs[0][1])[b] == st for b, st in want(ROUNDS).items()
            )

        await wait_for(all_agree, 2, interval=0.05, what="three instances on the last uplinks")

        # Sessions follow the one order: never two open on a berth (the index), never more
        # stays than occupied rounds, and the last round (free) closed every one.
        async with sessions() as db:
            rows = (await db.execute(select(ParkingSessionRow))).scalars().all()
        per_berth = Counter(r.berth_id for r in rows if r.berth_id)
        assert per_berth and max(per_berth.values()) <= (ROUNDS + 1) // 2, per_berth
        assert not [r for r in rows if r.berth_id in want(ROUNDS) and r.state == "open"]

        # Every case delivered, once each, by whichever instance took it.
        await wait_for(
            lambda: all(cases.receipts(k) for k in keys), 20, what="every case delivered"
        )
        filed = Counter(r.key for r in cases.received if r.key in keys)
        assert set(filed) == set(keys) and max(filed.values()) == 1, filed
        assert all(r.status == 201 for r in cases.received if r.key in keys)
        print(
            f"\nthree gateways: {published} uplinks, agreed {agreed_s * 1000:.0f} ms after "
            f"commit, verdicts {dict(total)}, all final {recovered_s:.1f} s after the kill"
        )
    finally:
        for gw in gws:
            try:
                await gw.stop()
            except Exception:
                if gw.proc is not None and gw.proc.returncode is None:
                    gw.proc.kill()
            await gw.http.aclose()
        await cases.stop()
        await engine.dispose()
