"""Two in-process gateways sharing the berths on one PostgreSQL database (issue 16):

* a frame one instance decided makes an older frame sent to the other instance ``stale``;
* the follower mirrors the other's commits into the book (counts and berths), and a site's
  mirrored counts reach the live view but not telemetry (the writer wrote those points);
* every instance hears every NB-IoT frame (its detector needs the whole series), and each
  frame is taken once;
* silence is declared by the leader only: one ``CommsLost`` per sensor across the two, and
  both show the berth unknown.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio

from drivers.sensors import nbiot, nwave
from events import CommsLost, SiteCountsChanged
from gateway.directory.town import load_town
from tests.conftest import Broker, _psql, gateway_settings, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


class Clock:
    """One clock for both instances, moved by the test (silence is a matter of time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


CLOCK = Clock()
TOWN = load_town(None)
SENSORS = [s for s in TOWN.sensors if s.model == "nwave-nps405"][:4]
SITE_OF = {b.id: b.site for b in TOWN.berths}


@pytest.fixture(scope="module")
def shared_db(pg_server_url: str) -> Iterator[str]:
    name = f"cg_shared_{uuid.uuid4().hex[:8]}"
    _psql(f'CREATE DATABASE "{name}"')
    yield pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair(mosquitto: Broker, shared_db: str) -> AsyncIterator[tuple[Any, Any]]:
    url = shared_db
    occupancy = {"shared": "on", "sweep_interval_s": 0.05}
    mqtt = {"shared_group": "pair"}
    async with (
        running_gateway(
            gateway_settings(url, mosquitto, occupancy=occupancy, mqtt=mqtt), CLOCK
        ) as a,
        running_gateway(
            gateway_settings(url, mosquitto, occupancy=occupancy, mqtt=mqtt), CLOCK
        ) as b,
    ):
        for gw in (a, b):
            await wait_for(gw.services.shared_berths.followed.is_set, 10, what="follow")
        yield a, b


def uplink(dev: str, fcnt: int, occupied: bool, at: datetime) -> bytes:
    port, data = nwave.encode_status(occupied)
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": at.isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "pair", "devEui": dev},
            "fCnt": fcnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
        }
    ).encode()


async def send(gw: Any, dev: str, fcnt: int, occupied: bool, at: datetime) -> None:
    """Hand one uplink to *gw* as its MQTT receive loop would, and wait for its commit."""
    acked: list[bool] = []
    gw.services.ingest.handle(
        f"application/pair/device/{dev}/event/up", uplink(dev, fcnt, occupied, at)
    )
    gw.services.persister.hold(lambda: acked.append(True))
    await wait_for(lambda: acked, 10, what="committed")


def state(gw: Any, berth: str) -> str:
    return str(gw.services.live.book.berth(berth).state.value)


async def test_a_frame_decided_on_one_makes_an_older_one_stale_on_the_other(
    pair: tuple[Any, Any],
) -> None:
    a, b = pair
    s = SENSORS[0]
    dev = s.dev_eui.lower()
    t = CLOCK.now
    feed = b.services.bus.subscribe("test-live")
    await send(a, dev, 11, True, t + timedelta(seconds=2))
    await wait_for(lambda: state(b, s.berth) == "occupied", 2, what="B mirrors A's commit")
    # ... and the device's health: B shows it heard when A did, without writing it itself.
    seen_on_b = b.services.live.directory.get(dev)
    assert seen_on_b is not None and seen_on_b.last_seen == t + timedelta(seconds=2)
    assert dev not in {e.id for e in b.services.live.directory.take_dirty()}
    # The live view on B heard of it, marked as mirrored (not a point for B to write).
    got: list[Any] = []
    while not feed.queue.empty():
        got.append(feed.queue.get_nowait())
    mirrored = [
        e for e in got if isinstance(e, SiteCountsChanged) and e.site_id == SITE_OF[s.berth]
    ]
    assert mirrored and all(e.mirrored for e in mirrored), got
    b.services.bus.unsubscribe(feed)
    telemetry = [sub for sub in b.services.bus._subs if sub.name == "telemetry"]
    assert telemetry and telemetry[0].accepts is not None
    assert not any(telemetry[0].accepts(e) for e in mirrored)
    # An older frame, late, at B: stale, and the berth stays as A decided.
    stale = b.services.metrics.uplink_verdicts.labels("stale")
    before = stale.value
    await send(b, dev, 10, False, t + timedelta(seconds=1))
    assert stale.value - before == 1
    assert state(a, s.berth) == state(b, s.berth) == "occupied"
    # A newer one at B: applied, and A follows.
    await send(b, dev, 12, False, t + timedelta(seconds=3))
    await wait_for(lambda: state(a, s.berth) == "free", 2, what="A mirrors B's commit")


async def test_silence_is_declared_once_by_the_leader(pair: tuple[Any, Any]) -> None:
    a, b = pair
    s = SENSORS[1]
    dev = s.dev_eui.lower()
    await send(a, dev, 5, True, CLOCK.now)
    await wait_for(lambda: state(b, s.berth) == "occupied", 2, what="B mirrors it")
    subs = [gw.services.bus.subscribe("test-lost") for gw in (a, b)]
    leaders = [gw.services.shared_berths.leader for gw in (a, b)]
    assert sorted(leaders) == [False, True], leaders
    CLOCK.now += timedelta(days=4)  # every sensor is silent now (daily heartbeats x 2.5)
    await wait_for(
        lambda: state(a, s.berth) == state(b, s.berth) == "unknown", 5, what="both unknown"
    )
    lost: list[list[str]] = [[], []]
    for i, sub in enumerate(subs):
        while not sub.queue.empty():
            e = sub.queue.get_nowait()
            if isinstance(e, CommsLost) and e.device_id == dev:
                lost[i].append(e.device_id)
        (a, b)[i].services.bus.unsubscribe(sub)
    assert sorted(len(x) for x in lost) == [0, 1], lost
    assert lost[leaders.index(True)] == [dev]


async def test_every_instance_hears_an_nbiot_sensor_and_each_frame_is_taken_once(
    pair: tuple[Any, Any], mosquitto: Broker
) -> None:
    a, b = pair
    nb = next(x for x in TOWN.sensors if x.model == "nbiot-geomag")
    dev = nb.dev_eui.lower()
    counters = [gw.services.metrics.uplink_verdicts for gw in (a, b)]
    kinds = ("applied", "duplicate", "stale")

    def now_counts() -> list[list[float]]:
        return [[c.labels(k).value for k in kinds] for c in counters]

    before = now_counts()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="nb-pub") as pub:
        for seq in range(1, 5):  # a car parks above it: agreeing samples debounce
            frame = nbiot.encode_frame(
                device_id=dev, seq=seq, raw=(40, -12, 420), baseline=(20, -10, 200)
            )
            await pub.publish(f"nbiot/{dev}/up", frame, qos=1)

    def taken() -> tuple[float, float]:
        """(applied, not taken again: duplicate or, once a later frame is in, stale)."""
        d = [
            [x - y for x, y in zip(now, was, strict=True)]
            for now, was in zip(now_counts(), before, strict=True)
        ]
        return sum(x[0] for x in d), sum(x[1] + x[2] for x in d)

    await wait_for(lambda: sum(taken()) == 8, 10, what="both instances judged every frame")
    assert taken() == (4, 4)  # each frame applied once, not again on the other
    for gw in (a, b):
        assert gw.services.ingest._detectors[dev].occupied is True
    await wait_for(
        lambda: state(a, nb.berth) == state(b, nb.berth) == "occupied", 2, what="occupied"
    )
