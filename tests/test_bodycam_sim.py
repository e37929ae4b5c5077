"""The simulated body cams against a real UDP peer: a small platform built from drivers/sip
(tests/sip_uas.py) that verifies every REGISTER with ``digest.verify`` and parses every body
with ``parse_manscdp``. What the demo and the bench rely on: digest right with and without
qop (and nonce-count growing on a refresh), a dropped response retransmitted and handled once,
keepalives at their interval, positions inside the town and moving, answers to queries,
positions in the subscription's dialog, re-registration after a platform restart, a clean
stop that unregisters."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.manscdp import CatalogPart, DeviceInfo, DeviceStatus, MobilePositions
from drivers.sip.digest import parse_authorization
from gateway.demo.bodycams import BodyCamOptions, BodyCamSimulator, CamSpec, cam_id
from gateway.demo.patrol import Patrol, bounds_of
from gateway.directory.town import load_town
from tests.conftest import wait_for
from tests.sip_uas import Uas

SITES = [(s.lat, s.lon) for s in load_town(None).sites]
FAST = {"t1": 0.05, "t2": 0.4, "start_spread_s": 0.2}  # Timer F = 3.2 s


def fleet(n: int, password: str = "s3cret") -> list[CamSpec]:  # noqa: S107
    return [CamSpec(cam_id(i), f"{password}-{i}") for i in range(1, n + 1)]


@contextlib.asynccontextmanager
async def running(
    cams: list[CamSpec],
    uas: Uas,
    clock: Callable[[], datetime] | None = None,
    **options: object,
) -> AsyncIterator[BodyCamSimulator]:
    kw: dict[str, object] = {**FAST, **options}
    sim = BodyCamSimulator(
        cams,
        BodyCamOptions(uas.address, **kw),  # type: ignore[arg-type]
        SITES,
        **({"clock": clock} if clock else {}),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sim.run(stop))
    try:
        yield sim
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def platform(cams: list[CamSpec], port: int = 0, **kw: object) -> Uas:
    uas = Uas({c.device_id: c.password for c in cams}, **kw)  # type: ignore[arg-type]
    await uas.start("127.0.0.1", port)
    return uas


@pytest.mark.parametrize("qop", [True, False])
async def test_register_with_digest_verified_by_the_platform(qop: bool) -> None:
    cams = fleet(5)
    uas = await platform(cams, qop=qop)
    async with running(cams, uas) as sim:
        await wait_for(lambda: sim.stats.registered == 5, 5, what="5 registered")
        assert uas.auth_ok == 5 and uas.auth_failed == 0
        assert sim.stats.challenges == 5
        creds = parse_authorization(
            uas.of("REGISTER")[0].request.headers.get("Authorization") or ""
        )
        assert (creds.qop, creds.nc) == (("auth", "00000001") if qop else (None, None))
    uas.close()


async def test_wrong_password_is_refused_and_not_registered() -> None:
    cams = fleet(1)
    uas = await platform([CamSpec(cams[0].device_id, "other")])
    async with running(cams, uas, backoff_cap_s=0.5) as sim:
        # the platform's count moves when it sends the 403, the cam's when the 403 arrives
        await wait_for(lambda: uas.auth_failed >= 2 and sim.stats.refused >= 2, 5,
                       what="two refused attempts, seen by both sides")  # fmt: skip
        assert sim.stats.registered == 0
        assert uas.registrations == {}
    uas.close()


async def test_refresh_before_expiry_reuses_call_id_and_grows_nonce_count() -> None:
    cams = fleet(1)
    uas = await platform(cams)
    async with running(cams, uas, register_expires_s=1) as sim:
        await wait_for(lambda: len(uas.of("REGISTER")) >= 3, 5, what="two refreshes")
        regs = [a.request for a in uas.of("REGISTER")[:3]]
        assert len({r.call_id for r in regs}) == 1
        counts = [parse_authorization(r.headers.get("Authorization") or "").nc for r in regs]
        assert counts == ["00000001", "00000002", "00000003"]  # one nonce, count growing
        assert sim.stats.challenges == 1 and sim.stats.registered == 1
    uas.close()


async def test_dropped_response_is_retransmitted_and_handled_once() -> None:
    cams = fleet(1)
    uas = await platform(cams, drop={"MESSAGE": 1})
    async with running(cams, uas, keepalive_interval_s=0.5, position_interval_s=60) as sim:
        await wait_for(lambda: sim.stats.ok.get("keepalive", 0) >= 2, 5, what="keepalives")
        assert uas.dropped == 1
        assert sim.stats.counters.retransmissions >= 1
        assert uas.server.retransmissions >= 1  # the platform saw the same transaction again
        sns = [a.body.sn for a in uas.of("Keepalive") if a.body is not None]
        assert len(sns) == len(set(sns))  # and handled it once
        assert sim.stats.latencies_ms["keepalive"][0] >= 50  # waited for Timer E (T1)
    uas.close()


async def test_keepalive_cadence() -> None:
    cams = fleet(1)
    uas = await platform(cams)
    async with running(cams, uas, keepalive_interval_s=0.25, position_interval_s=60):
        await wait_for(lambda: len(uas.of("Keepalive")) >= 7, 5, what="7 keepalives")
    times = [a.at for a in uas.of("Keepalive")]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.2 <= g <= 0.35 for g in gaps), gaps
    uas.close()


async def test_positions_inside_the_town_and_moving() -> None:
    cams = fleet(4)
    uas = await platform(cams)
    loop = asyncio.get_running_loop()
    t0, start = loop.time(), datetime(2026, 12, 2, 1, 0, tzinfo=UTC)

    def fast_clock() -> datetime:  # 10 simulated minutes per real second: legs get walked
        return start + timedelta(seconds=(loop.time() - t0) * 600)

    async with running(cams, uas, clock=fast_clock, position_interval_s=0.05, list_form_share=0.5):
        await wait_for(lambda: len(uas.of("MobilePositions")) >= 120, 10, what="positions")
    box = bounds_of(SITES)
    by_cam: dict[str, list[tuple[float, float]]] = {}
    for a in uas.of("MobilePositions"):
        assert isinstance(a.body, MobilePositions)
        for p in a.body.positions:
            assert box.contains(p.latitude, p.longitude), (p.latitude, p.longitude)
            assert p.speed_kmh is not None and p.speed_kmh <= 6.0
            by_cam.setdefault(p.device_id, []).append((p.latitude, p.longitude))
    assert set(by_cam) == {c.device_id for c in cams}
    assert all(len(set(track)) > 5 for track in by_cam.values())  # they walk
    uas.close()


def test_patrol_is_deterministic_and_stays_in_bounds() -> None:
    box = bounds_of(SITES)
    a = Patrol(SITES, random.Random(7), 0.0)
    b = Patrol(SITES, random.Random(7), 0.0)
    for t in range(0, 86_400, 13):
        sa, sb = a.at(float(t)), b.at(float(t))
        assert sa == sb
        assert box.contains(sa.latitude, sa.longitude)
        assert 0 <= sa.direction_deg < 360 and sa.speed_kmh <= 1.5 * 3.6 + 1e-9


async def test_answers_queries_with_catalog_split_and_battery_draining() -> None:
    cams = fleet(1)
    uas = await platform(cams)
    loop = asyncio.get_running_loop()
    t0, start = loop.time(), datetime(2026, 12, 2, 1, 0, tzinfo=UTC)

    def fast_clock() -> datetime:  # an hour per real second: the battery visibly drains
        return start + timedelta(seconds=(loop.time() - t0) * 3600)

    dev = cams[0].device_id
    async with running(cams, uas, clock=fast_clock, position_interval_s=60, battery_drain_per_h=2):
        await wait_for(lambda: dev in uas.registrations, 5, what="registered")
        assert (await uas.query("DeviceInfo", dev, 101)).status == 200
        assert (await uas.query("Catalog", dev, 102)).status == 200
        assert (await uas.query("DeviceStatus", dev, 103)).status == 200
        await wait_for(lambda: uas.of("DeviceStatus"), 5, what="first status")
        await asyncio.sleep(0.5)  # half an hour of the cam's clock
        assert (await uas.query("DeviceStatus", dev, 104)).status == 200
        await wait_for(lambda: len(uas.of("DeviceStatus")) == 2, 5, what="second status")
        await wait_for(lambda: len(uas.of("CatalogPart")) == 2, 5, what="catalog parts")
    info = uas.of("DeviceInfo")[0].body
    assert isinstance(info, DeviceInfo) and info.sn == 101 and info.channels == 2
    first, second = (a.body for a in uas.of("DeviceStatus"))
    assert isinstance(first, DeviceStatus) and isinstance(second, DeviceStatus)
    assert first.online is True and first.power.storage_total_mb == 65536
    assert first.power.battery_percent is not None and second.power.battery_percent is not None
    assert second.power.battery_percent < first.power.battery_percent  # draining
    asm, done = CatalogAssembler(), None
    for a in uas.of("CatalogPart"):
        assert isinstance(a.body, CatalogPart) and a.body.sum_num == 2 and a.body.sn == 102
        done = asm.add(a.body, 0.0) or done
    assert done is not None and len(done.items) == 2
    uas.close()


async def test_subscription_dialog_carries_positions_and_refreshes_in_it() -> None:
    cams = fleet(1)
    uas = await platform(cams)
    dev = cams[0].device_id
    async with running(cams, uas, position_interval_s=60) as sim:
        await wait_for(lambda: dev in uas.registrations, 5, what="registered")
        ok = await uas.subscribe(dev, 7, 1, 30)
        assert ok.status == 200 and ok.to.tag and ok.headers.get("Expires") == "30"
        sub = ok.call_id, ok.from_.tag or "", ok.to.tag
        notifies = lambda: [a for a in uas.of("MobilePositions") if a.request.method == "NOTIFY"]  # noqa: E731
        await wait_for(lambda: len(notifies()) >= 2, 5, what="two NOTIFYs")
        n = notifies()[0].request
        assert (n.call_id, n.from_.tag, n.to.tag) == (sub[0], sub[2], sub[1])
        assert n.headers.get("Event") == "presence"
        assert (n.headers.get("Subscription-State") or "").startswith("active")
        refresh = await uas.subscribe(dev, 8, 1, 30, dialog=sub, cseq=2)
        assert refresh.status == 200 and refresh.to.tag == sub[2]
        stale = await uas.subscribe(dev, 9, 1, 30, dialog=(sub[0], sub[1], "not-ours"), cseq=3)
        assert stale.status == 481
        assert sim.stats.ok.get("position", 0) == 0  # subscribed: no MESSAGE pushes
    uas.close()


async def test_re_registers_after_a_platform_restart() -> None:
    cams = fleet(2)
    uas = await platform(cams)
    port = uas.address[1]
    async with running(
        cams, uas, keepalive_interval_s=0.2, position_interval_s=60, keepalive_failures=2,
        backoff_cap_s=0.5,
    ) as sim:  # fmt: skip
        await wait_for(lambda: sim.stats.registered == 2, 5, what="registered")
        uas.close()  # the platform goes away (its nonces with it)
        await wait_for(lambda: sim.stats.lost == 2, 10, what="both cams notice")
        restarted = await platform(cams, port)
        await wait_for(lambda: len(restarted.registrations) == 2, 10, what="re-registered")
        await wait_for(lambda: restarted.of("Keepalive"), 5, what="keepalives again")
        assert sim.stats.registered == 2
    restarted.close()


async def test_stop_unregisters_and_ends_every_task() -> None:
    cams = fleet(3)
    uas = await platform(cams)
    async with running(cams, uas) as sim:
        await wait_for(lambda: len(uas.registrations) == 3, 5, what="registered")
    assert uas.registrations == {}  # each sent Expires: 0
    assert sim.stats.registered == 0
    assert all(not c.tasks for c in sim.cams)
    uas.close()
