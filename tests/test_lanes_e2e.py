"""Lanes through a running gateway (SQLite and PostgreSQL): reads fed through the
``LaneDecider`` become session steps, exits are priced with the posted tariff, raises are
persisted before they reach the (fake) gate, payments through the API open a waiting lane,
and an operator can always open a lane with a recorded reason.

SEAM: the gate is ``tests.lanes_fakes.FakeGates``; the Modbus controller of the gates part
takes its place in production (``LaneService.gates``), and the camera routes of the cameras
part call ``LaneService.on_read`` with their ``CameraRead``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.schema import LaneDecisionRow
from gateway.metrics import Metrics
from gateway.services.lanes.contract import LaneAnswer, LaneRead
from gateway.services.lanes.decisions import Decision
from gateway.services.lanes.runtime import LaneRuntime
from gateway.services.parking.payments import PaymentService
from gateway.services.parking.providers import FakeProvider
from parking.lanes import yuan
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.lanes_fakes import FakeGates

pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai
NIGHT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 local
MIN = timedelta(minutes=1)
FINAL = {"confirmed", "unconfirmed", "failed", "interrupted"}
_keys = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str, clock: Clock) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, payments={"provider": "fake"})
    async with running_gateway(settings, clock) as gateway:
        gateway.services.lanes.gates = FakeGates(gateway.services.sessions)
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def auth(token: str, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


def gates(gw: Any) -> FakeGates:
    g: FakeGates = gw.services.lanes.gates
    return g


def lane(gw: Any, lane_id: str) -> LaneRuntime:
    rt: LaneRuntime = gw.services.lanes.lanes[lane_id]
    return rt


async def read(gw: Any, clock: Clock, camera: str, plate: str | None, at: datetime) -> LaneAnswer:
    clock.now = at
    answer: LaneAnswer = await gw.services.lanes.on_read(
        LaneRead(camera, plate, at, record_id=f"r{next(_keys)}", confidence=0.97, colour="blue")
    )
    return answer


async def outcome(rt: LaneRuntime) -> Decision:
    """The lane's last decision once the gate answered."""
    await wait_for(lambda: rt.recent and rt.recent[-1].state in FINAL, 5, what="gate outcome")
    return rt.recent[-1]


async def stored(gw: Any, decision_id: str) -> LaneDecisionRow:
    async with gw.services.sessions() as db:
        row = await db.get(LaneDecisionRow, decision_id)
    assert row is not None
    return row


async def session_of(http: httpx.AsyncClient, tokens: dict[str, str], sid: str) -> Any:
    r = await http.get(f"/api/v1/sessions/{sid}", headers=auth(tokens["payments"]))
    assert r.status_code == 200, r.text
    return r.json()


async def test_entry_opens_a_session_and_raises_once_for_a_second_read(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    rt = lane(gw, "ln-shiminting-in")
    answer = await read(gw, clock, "cam-shiminting-in", "甘G·11111", T0)
    assert answer.open and answer.display == ["甘G11111", "欢迎光临"] and answer.voice == "欢迎光临"
    d = await outcome(rt)
    assert d.state == "confirmed" and d.plate == "甘G11111" and d.session_id
    assert gates(gw).of("ln-shiminting-in") == [d.id]
    assert gates(gw).persisted[-1] == "pending"  # committed before the gate was commanded
    assert (await stored(gw, d.id)).state == "confirmed"
    assert rt.state.phase == "idle" and rt.state.raised_ok
    s = await session_of(http, tokens, d.session_id)
    assert (s["state"], s["site_id"], s["plate"]) == ("open", "cp-shiminting", "甘G11111")
    # The camera fires again for the same car: recorded, no second raise.
    again = await read(gw, clock, "cam-shiminting-in", "甘G11111", T0 + 5 * timedelta(seconds=1))
    assert not again.open
    assert gates(gw).of("ln-shiminting-in") == [d.id]


async def test_exit_owed_waits_and_a_payment_through_the_api_opens_it_at_once(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    lanes = gw.services.lanes
    lanes.set_recheck(3600)  # only the payment hook can open it now
    try:
        await read(gw, clock, "cam-shiminting-in", "甘G22222", T0)
        out = T0 + 90 * MIN
        answer = await read(gw, clock, "cam-shiminting-out", "甘G22222", out)
        rt = lane(gw, "ln-shiminting-out")
        assert not answer.open and rt.state.phase == "waiting_payment"
        s = await session_of(http, tokens, rt.state.session_id or "")
        # 90 minutes at 市民大厅: the first hour free, 30 minutes owed (the session's due).
        assert s["state"] == "closed" and s["due_fen"] == rt.state.due_fen > 0
        assert answer.display == ["甘G22222", f"请缴费 {yuan(s['due_fen'])} 元"]
        before = len(gates(gw).of("ln-shiminting-out"))
        # The same car read again while it waits: the amount again, no raise.
        again = await read(gw, clock, "cam-shiminting-out", "甘G22222", out + 10 * MIN / 60)
        assert not again.open and again.display == answer.display
        rechecks = lanes.rechecks
        r = await http.post(
            "/api/v1/payments",
            json={"session_id": s["id"], "amount_fen": s["due_fen"], "method": "wechat"},
            headers=auth(tokens["payments"], f"lane-pay-{s['id']}"),
        )
        assert r.status_code == 201, r.text
        d = await outcome(rt)
        assert lanes.rechecks == rechecks  # opened by the hook, not the periodic recheck
        assert (d.state, d.verdict, d.session_id) == ("confirmed", "exit_paid", s["id"])
        assert len(gates(gw).of("ln-shiminting-out")) == before + 1
        assert rt.state.phase == "idle"
    finally:
        lanes.set_recheck(1.0)


async def test_a_payment_recorded_by_another_instance_opens_the_lane_by_recheck(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    lanes = gw.services.lanes
    await read(gw, clock, "cam-zhening-in", "甘G33333", T0)
    answer = await read(gw, clock, "cam-zhening-out", "甘G33333", T0 + 2 * 60 * MIN)
    rt = lane(gw, "ln-zhening-out")
    assert not answer.open and rt.state.phase == "waiting_payment"
    sid, due = rt.state.session_id or "", rt.state.due_fen
    # Another instance's PaymentService: same database, no hook into this lane service.
    other = PaymentService(
        gw.services.sessions, gw.services.session_store, FakeProvider(), Metrics(), clock
    )
    lanes.set_recheck(0.05)
    try:
        await other.pay(session_id=sid, amount_fen=due, method="app", key=f"k-{sid}", actor="x")
        d = await outcome(rt)
        assert (d.state, d.verdict) == ("confirmed", "exit_paid")
    finally:
        lanes.set_recheck(1.0)


async def test_exit_at_night_is_free(gw: Any, clock: Clock) -> None:
    await read(gw, clock, "cam-tonghe-in", "甘G44441", NIGHT)
    answer = await read(gw, clock, "cam-tonghe-out", "甘G44441", NIGHT + 40 * MIN)
    assert answer.open and answer.display == ["甘G44441", "一路顺风"]
    d = await outcome(lane(gw, "ln-tonghe-out"))
    assert (d.verdict, d.state) == ("exit_free", "confirmed")


async def test_exit_within_the_first_free_hour_at_shiminting_is_free_not_elsewhere(
    gw: Any, clock: Clock
) -> None:
    day = T0 + 4 * 60 * MIN  # 13:00 local
    await read(gw, clock, "cam-shiminting-in", "甘G55551", day)
    answer = await read(gw, clock, "cam-shiminting-out", "甘G55551", day + 50 * MIN)
    assert answer.open
    assert (await outcome(lane(gw, "ln-shiminting-out"))).verdict == "exit_free"
    # The same 50 minutes at 同和医院 (same class, no first free hour) are owed.
    await read(gw, clock, "cam-tonghe-in", "甘G55552", day)
    owed = await read(gw, clock, "cam-tonghe-out", "甘G55552", day + 50 * MIN)
    rt = lane(gw, "ln-tonghe-out")
    assert not owed.open and rt.state.phase == "waiting_payment" and rt.state.due_fen > 0


async def test_unknown_plate_at_exit_waits_for_an_operator_who_opens_with_a_reason(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    answer = await read(gw, clock, "cam-huochezhan-out-1", "甘G99999", T0 + 6 * 60 * MIN)
    rt = lane(gw, "ln-huochezhan-out-1")
    assert not answer.open and rt.state.phase == "waiting_operator"
    assert answer.display == ["甘G99999", "无入场记录", "请联系管理员"]
    assert not gates(gw).of("ln-huochezhan-out-1")
    url = "/api/v1/lanes/ln-huochezhan-out-1/open"
    reason = {"reason": "no entry record: ticket shown at the booth"}
    assert (await http.post(url, json=reason)).status_code == 401
    assert (await http.post(url, json=reason, headers=auth(tokens["inspector"]))).status_code == 403
    bad = await http.post(url, json={}, headers=auth(tokens["operator"]))
    assert bad.status_code == 422
    long = await http.post(url, json={"reason": "x" * 201}, headers=auth(tokens["operator"]))
    assert long.status_code == 422
    blank = await http.post(url, json={"reason": "     "}, headers=auth(tokens["operator"]))
    assert blank.status_code == 422 and blank.json()["code"] == "invalid"
    missing = await http.post(
        "/api/v1/lanes/ln-nowhere/open", json=reason, headers=auth(tokens["operator"])
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "no_such_lane"
    assert not gates(gw).of("ln-huochezhan-out-1")

    r = await http.post(url, json=reason, headers=auth(tokens["operator"]))
    assert r.status_code == 202, r.text
    body = r.json()
    operator_id = tokens["operator"].split("_")[1]
    assert body["decision"]["operator"] == operator_id
    assert reason["reason"] in body["decision"]["reason"]
    d = await outcome(rt)
    assert d.state == "confirmed" and gates(gw).of("ln-huochezhan-out-1") == [d.id]
    row = await stored(gw, d.id)
    assert (row.operator, row.state, row.verdict) == (operator_id, "confirmed", "operator_open")
    view = await http.get("/api/v1/lanes/ln-huochezhan-out-1", headers=auth(tokens["technician"]))
    assert view.status_code == 200
    assert view.json()["decisions"][0]["id"] == d.id and view.json()["phase"] == "idle"
    listing = await http.get("/api/v1/lanes", headers=auth(tokens["inspector"]))
    assert {x["id"] for x in listing.json()["lanes"]} >= {"ln-shiminting-in", "ln-zhening-out"}
    assert (await http.get("/api/v1/lanes", headers=auth(tokens["payments"]))).status_code == 403


async def test_a_gate_failure_is_a_fault_and_the_operator_can_open(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    gates(gw).script["ln-zhening-in"] = ["failed"]
    rt = lane(gw, "ln-zhening-in")
    answer = await read(gw, clock, "cam-zhening-in", "甘G66666", T0 + 7 * 60 * MIN)
    assert answer.open  # decided; the gate then failed
    d = await outcome(rt)
    assert d.state == "failed" and "fake gate" in d.detail
    assert rt.state.phase == "fault" and rt.display == ("道闸故障", "请联系管理员")
    r = await http.post(
        "/api/v1/lanes/ln-zhening-in/open",
        json={"reason": "barrier checked by hand"},
        headers=auth(tokens["operator"]),
    )
    assert r.status_code == 202
    d2 = await outcome(rt)
    assert d2.id != d.id and d2.state == "confirmed" and rt.state.phase == "idle"


async def test_a_lane_added_by_a_town_import_is_live(gw: Any, clock: Clock) -> None:
    town = load_town(None)
    extra = parse_town(
        '[town]\nname = "x"\n'
        + "".join(
            f'[[sites]]\nid = "{s.id}"\nname = "{s.name}"\nkind = "{s.kind.value}"\n'
            f"lat = {s.lat}\nlon = {s.lon}\ncapacity = {s.capacity}\n"
            f'counting = "entry_exit"\nsegment_class = "{s.segment_class}"\n'
            for s in town.sites
            if s.id == "cp-keyunzhan"
        )
        + '[[lanes]]\nid = "ln-keyunzhan-in"\nsite = "cp-keyunzhan"\nkind = "entry"\n'
        'camera = "cam-keyunzhan-in"\n'
        'gate = { bus = "tcp://127.0.0.1:1504", unit = 1, model = "example-relay4" }\n'
    )
    town = town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})
    async with gw.services.sessions.begin() as db:
        report = await import_town(db, town, clock())
    assert report.created == {"lanes": 1}
    # No kick: the change feed (LISTEN or poll) brings it.
    await wait_for(lambda: "ln-keyunzhan-in" in gw.services.lanes.lanes, 5, what="lane live")
    answer = await read(gw, clock, "cam-keyunzhan-in", "甘G77777", T0 + 8 * 60 * MIN)
    assert answer.open
    assert (await outcome(lane(gw, "ln-keyunzhan-in"))).state == "confirmed"


async def test_an_unknown_camera_and_an_unreadable_plate_never_raise(gw: Any, clock: Clock) -> None:
    nobody = await read(gw, clock, "cam-nowhere", "甘G88888", T0 + 9 * 60 * MIN)
    assert not nobody.open and "in no lane" in nobody.reason
    unread = await read(gw, clock, "cam-huochezhan-in-2", None, T0 + 9 * 60 * MIN)
    assert not unread.open and unread.display == ["车牌未识别", "请联系管理员"]
    assert lane(gw, "ln-huochezhan-in-2").state.phase == "waiting_operator"
    late = await gw.services.lanes.on_read(
        LaneRead("cam-huochezhan-in-1", "甘G88889", T0, offline=True)
    )
    assert not late.open and "late read" in late.reason
    assert not gates(gw).of("ln-huochezhan-in-2") and not gates(gw).of("ln-huochezhan-in-1")


async def test_decisions_are_all_in_the_database(gw: Any) -> None:
    async with gw.services.sessions() as db:
        states = set((await db.execute(select(LaneDecisionRow.state))).scalars())
    assert states <= {"confirmed", "failed"} and "confirmed" in states


async def test_cameras_swapped_by_an_import_follow_their_lanes(gw: Any, clock: Clock) -> None:
    town = load_town(None)
    swap = {
        "ln-huochezhan-in-1": "cam-huochezhan-in-2",
        "ln-huochezhan-in-2": "cam-huochezhan-in-1",
    }
    lanes = [
        ln.model_copy(update={"camera": swap[ln.id]}) if ln.id in swap else ln for ln in town.lanes
    ]
    async with gw.services.sessions.begin() as db:
        report = await import_town(db, town.model_copy(update={"lanes": lanes}), clock())
    assert report.updated == {"lanes": 2}

    def swapped() -> bool:
        return all(lane(gw, lid).config.camera_id == cam for lid, cam in swap.items())

    await wait_for(swapped, 5, what="the swap applied")
    at = T0 + 10 * 60 * MIN
    answer = await read(gw, clock, "cam-huochezhan-in-2", "甘G80001", at)
    assert answer.open
    assert (await outcome(lane(gw, "ln-huochezhan-in-1"))).plate == "甘G80001"
    answer = await read(gw, clock, "cam-huochezhan-in-1", "甘G80002", at)
    assert answer.open
    assert (await outcome(lane(gw, "ln-huochezhan-in-2"))).plate == "甘G80002"


class _DatabaseAway:
    def plate_of(self, read: Any) -> str | None:
        return str(read.plate)

    async def of_read(self, *args: Any) -> Any:
        raise OperationalError("SELECT 1", {}, OSError("database is away"))


async def test_a_read_the_books_cannot_take_waits_for_an_operator(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    lanes = gw.services.lanes
    facts, lanes._facts = lanes._facts, _DatabaseAway()
    try:
        answer = await read(gw, clock, "cam-tonghe-out", "甘G81818", T0 + 11 * 60 * MIN)
    finally:
        lanes._facts = facts
    rt = lane(gw, "ln-tonghe-out")
    assert not answer.open and rt.state.phase == "waiting_operator"
    assert "not_recorded" in answer.reason
    r = await http.post(
        "/api/v1/lanes/ln-tonghe-out/open",
        json={"reason": "books unavailable, driver paid cash"},
        headers=auth(tokens["operator"]),
    )
    assert r.status_code == 202
    assert (await outcome(rt)).state == "confirmed"


async def test_paid_in_the_app_before_the_exit_leaves_free_within_the_grace_only(
    gw: Any, clock: Clock, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    day = T0 + 12 * 60 * MIN  # 21:00 local, before the night band
    for plate, leaves_after in (("甘G90001", 10 * MIN), ("甘G90002", 30 * MIN)):
        await read(gw, clock, "cam-tonghe-in", plate, day - 2 * 60 * MIN)
        clock.now = day
        found = await http.get(
            "/api/v1/sessions", params={"plate": plate}, headers=auth(tokens["payments"])
        )
        s = found.json()["sessions"][0]
        assert s["state"] == "open" and s["due_fen"] > 0
        r = await http.post(
            "/api/v1/payments",
            json={"session_id": s["id"], "amount_fen": s["due_fen"]},
            headers=auth(tokens["payments"], f"app-pay-{s['id']}"),
        )
        assert r.status_code == 201, r.text
        answer = await read(gw, clock, "cam-tonghe-out", plate, day + leaves_after)
        rt = lane(gw, "ln-tonghe-out")
        if leaves_after <= 15 * MIN:  # the posted exit grace
            assert answer.open and (await outcome(rt)).verdict == "exit_free"
        else:
            assert not answer.open and rt.state.phase == "waiting_payment"
            assert rt.state.due_fen > 0
