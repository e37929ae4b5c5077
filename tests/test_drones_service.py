"""The drone service with a test double of the link protocol (tests/drones_fakes.py), on a real
database of both backends: reports become state, positions and alerts; unknown keys are
counted; commands are written through (pending before the link), refused while one of the
same kind is in flight, rejected when the link cannot, and completed here when another
instance recorded their outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from dronelink.model import (
    CommandKind,
    CommandOutcome,
    CommandProgress,
    CommandStatus,
    DockReport,
    DroneFix,
    DroneReport,
)
from dronelink.patrol import AlertKind
from events import DroneAlert, DronePosition
from gateway.config import DronesConfig
from gateway.directory.drones import import_drones
from gateway.directory.town import load_town
from gateway.infra.bus import EventBus
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.metrics import Metrics
from gateway.services.drones.service import CommandBusy, DroneService, UnknownDrone
from gateway.services.drones.store import DroneStore
from gateway.services.drones.views import drones_view
from tests.conftest import wait_for
from tests.drones_fakes import FakeLink, NoResolveLink

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DJI_SN, DOCK_SN = "1581F5FHD2345678", "7CTDM1234567890"
MARKET = (38.7760, 101.0750)  # inside drone-1's patrol area
OUTSIDE = (38.7760, 101.0900)  # ~770 m east of it


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(db_url)
    await migrate(engine)
    made = sessionmaker_for(engine)
    async with made.begin() as db:
        await import_drones(db, load_town(None).drones, T0)
    yield made
    await engine.dispose()


def make(
    sessions: Any, links: dict[str, Any], clock: Clock, **config: Any
) -> tuple[DroneService, Metrics, EventBus]:
    metrics = Metrics()
    bus = EventBus(metrics)
    cfg = DronesConfig(**{"command_timeout_s": 5.0, **config})
    return DroneService(cfg, DroneStore(sessions), bus, metrics, clock, links), metrics, bus


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name + "_total", labels) or 0.0


def dji(at: datetime, lat: float, lon: float, **kw: Any) -> DroneReport:
    return DroneReport("dji", DJI_SN, at, fix=DroneFix(lat, lon, 1650.0, 60.0, 4.0, 90.0), **kw)


async def row_status(service: DroneService, command_id: str) -> str | None:
    row = await service.store.command(command_id)
    return None if row is None else row.status


async def test_reports_become_state_positions_and_the_view(sessions: Any) -> None:
    clock = Clock()
    service, metrics, bus = make(sessions, {}, clock)
    await service.load()
    sub = bus.subscribe("test")
    service.on_report(dji(T0, *MARKET, battery_percent=81.0, flying=True, mode="patrol"))
    service.on_report(dji(T0 + timedelta(seconds=1), *MARKET, battery_percent=81.0))  # repeat
    service.on_dock(DockReport(DOCK_SN, T0, mode="working", drone_in_dock=False))
    await service.flush()
    positions = [e for e in _drain(sub) if isinstance(e, DronePosition)]
    assert len(positions) == 1, "an unchanged repeat is not published again"
    p = positions[0]
    assert (p.device_id, p.lat, p.lon, p.battery_percent) == ("drone-1", *MARKET, 81.0)
    clock.now = T0 + timedelta(seconds=2)
    async with sessions() as db:
        view = await drones_view(db, clock(), 10.0, "drone-1")
    d = view["drones"][0]
    assert view["datum"] == "WGS-84"
    assert d["link"] == "online" and d["flying"] is True and d["mode"] == "patrol"
    assert d["battery_percent"] == 81.0 and d["position"]["lat"] == MARKET[0]
    assert d["position"]["height_m"] == 1650.0 and d["dock"]["mode"] == "working"
    assert d["dock"]["drone_in_dock"] is False and d["alerts"] == []
    assert count(metrics, "citygate_drone_reports", what="report", outcome="ok") == 2
    clock.now = T0 + timedelta(seconds=12)  # silent past presence_timeout_s
    async with sessions() as db:
        assert (await drones_view(db, clock(), 10.0))["drones"][0]["link"] == "lost"

    # restored after a restart, alerts included
    again, _, _ = make(sessions, {}, clock)
    await again.load()
    assert again.live["drone-1"].battery_percent == 81.0
    assert again.live["drone-1"].watch.last_heard == T0 + timedelta(seconds=1)
    # back 6 minutes on: no link_lost for the minutes the gateway itself was down
    clock.now = T0 + timedelta(minutes=6)
    again.listening_since = clock()
    again.sweep(clock() + timedelta(seconds=5))
    assert not again.live["drone-1"].watch.has(AlertKind.LINK_LOST)


def _drain(sub: Any) -> list[Any]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_unknown_keys_and_bad_values_are_counted(sessions: Any) -> None:
    service, metrics, _ = make(sessions, {}, Clock())
    await service.load()
    service.on_report(DroneReport("dji", "NOSUCHSN", T0))
    service.on_report(DroneReport("mavlink", DJI_SN, T0))  # a DJI sn over MAVLink: not it
    service.on_report(DroneReport("mavlink", "7", T0))
    service.on_dock(DockReport("NOSUCHDOCK", T0))
    service.on_report(DroneReport("mavlink", "1", T0, fix=DroneFix(float("nan"), 101.0)))
    service.on_report(DroneReport("mavlink", "1", T0, battery_percent=250.0))
    service.on_report(DroneReport("mavlink", "1", datetime(2026, 12, 2, 8, 0)))  # naive
    assert count(metrics, "citygate_drone_reports", what="report", outcome="unknown_drone") == 3
    assert count(metrics, "citygate_drone_reports", what="dock", outcome="unknown_dock") == 1
    assert count(metrics, "citygate_drone_reports", what="report", outcome="bad_fix") == 1
    assert count(metrics, "citygate_drone_reports", what="report", outcome="bad_battery") == 1
    assert count(metrics, "citygate_drone_reports", what="report", outcome="naive_time") == 1
    live = service.live["drone-2"]
    assert live.fix is None and live.battery_percent is None
    assert "drone-1" not in service.live


async def test_alerts_are_raised_once_logged_counted_published_and_cleared(
    sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    service, metrics, bus = make(sessions, {}, clock, low_battery_percent=30.0)
    await service.load()
    sub = bus.subscribe("test", lambda e: isinstance(e, DroneAlert))
    caplog.set_level(logging.INFO, "gateway.services.drones")
    t = T0
    for _ in range(3):  # out of the area, low battery: once each
        t += timedelta(seconds=1)
        service.on_report(dji(t, *OUTSIDE, battery_percent=20.0))
    clock.now = t + timedelta(seconds=31)
    service.sweep(clock())  # silent for 31 s: link lost
    service.sweep(clock() + timedelta(seconds=5))
    await service.flush()
    async with sessions() as db:
        view = await drones_view(db, clock(), 10.0, "drone-1")
    assert view["drones"][0]["alerts"] == ["left_area", "link_lost", "low_battery"]
    t = clock.now + timedelta(seconds=1)
    service.on_report(dji(t, *MARKET, battery_percent=90.0))  # back, charged, heard
    service.on_report(dji(t + timedelta(seconds=1), *MARKET, battery_percent=90.0))
    alerts = [(e.alert, e.raised) for e in _drain(sub)]
    assert sorted(alerts) == sorted(
        [("left_area", True), ("low_battery", True), ("link_lost", True),
         ("left_area", False), ("low_battery", False), ("link_lost", False)]
    )  # fmt: skip
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "ALERT" in r.message]
    assert len(warnings) == 3 and all("drone-1" in r.message for r in warnings)
    for kind in ("left_area", "low_battery", "link_lost"):
        assert count(metrics, "citygate_drone_alerts", alert=kind, change="raised") == 1
        assert count(metrics, "citygate_drone_alerts", alert=kind, change="cleared") == 1


async def test_a_command_is_recorded_pending_before_the_link_and_its_outcome_after(
    sessions: Any,
) -> None:
    clock = Clock()
    link = FakeLink("mavlink", outcome=CommandOutcome(CommandStatus.OK, 2, 0, "accepted"))
    service, metrics, _ = make(sessions, {"mavlink": link}, clock)
    link.row_status = lambda cid: row_status(service, cid)
    await service.load()
    record = await service.command("drone-2", CommandKind.RETURN_HOME, {}, "operator 王")
    (call,) = link.calls
    assert call.method == "return_home" and call.key == "1" and call.row_status == "pending"
    assert call.command_id == record.id
    assert record.status == "ok" and record.final and record.attempts == 2
    assert record.result_code == 0 and record.detail == "accepted"
    assert record.requested_by == "operator 王" and record.finished_at is not None
    async with sessions() as db:
        view = await drones_view(db, clock(), 10.0, "drone-2")
    assert [c["id"] for c in view["drones"][0]["commands"]] == [record.id]
    assert count(metrics, "citygate_drone_commands", kind="return_home", status="ok") == 1
    with pytest.raises(UnknownDrone):
        await service.command("drone-9", CommandKind.RETURN_HOME, {}, "x")
    with pytest.raises(ValueError, match="no arguments"):
        await service.command("drone-2", CommandKind.RETURN_HOME, {"x": 1}, "x")


async def test_unsupported_is_rejected_with_a_clear_detail(sessions: Any) -> None:
    link = FakeLink("mavlink", speaker_supported=False)
    service, _, _ = make(sessions, {"mavlink": link}, Clock())
    await service.load()
    args = {"text": "请不要在此处摆摊", "volume": 80, "loop": False}
    record = await service.command("drone-2", CommandKind.SPEAKER, args, "op")
    assert record.status == "rejected" and "no loudspeaker" in record.detail
    assert "drone-2 (mavlink) cannot do speaker" in record.detail
    assert record.args == args
    # no link for the kind at all: recorded and rejected, never a crash
    record = await service.command("drone-1", CommandKind.RETURN_HOME, {}, "op")
    assert record.status == "rejected" and "no dji link" in record.detail


async def test_a_link_error_is_a_failed_outcome(sessions: Any) -> None:
    class Broken(FakeLink):
        async def _call(self, method: str, key: str, command_id: str, **a: Any) -> Any:
            raise ConnectionError("socket closed")

    service, _, _ = make(sessions, {"dji": Broken("dji")}, Clock())
    await service.load()
    record = await service.command("drone-1", CommandKind.RETURN_HOME, {}, "op")
    assert record.status == "failed" and "ConnectionError" in record.detail


async def test_a_second_command_of_the_same_kind_is_refused_while_one_flies(
    sessions: Any,
) -> None:
    link = FakeLink("dji", hold=True)
    service, _, _ = make(sessions, {"dji": link}, Clock())
    await service.load()
    first = asyncio.create_task(service.command("drone-1", CommandKind.RETURN_HOME, {}, "a"))
    await wait_for(link.waiting, 5, what="the first command at the link")
    (cid,) = link.waiting()
    with pytest.raises(CommandBusy) as busy:
        await service.command("drone-1", CommandKind.RETURN_HOME, {}, "b")
    assert busy.value.command_id == cid
    # another instance sees the open row: refused there too
    other, _, _ = make(sessions, {"dji": FakeLink("dji")}, Clock())
    await other.load()
    with pytest.raises(CommandBusy):
        await other.command("drone-1", CommandKind.RETURN_HOME, {}, "c")
    # another kind goes (answered at once; the first stays held)
    link.hold = False
    stop = await service.command("drone-1", CommandKind.SPEAKER_STOP, {}, "a")
    assert stop.status == "ok"
    link.release(cid, CommandOutcome(CommandStatus.OK))
    assert (await first).status == "ok"
    again = await service.command("drone-1", CommandKind.RETURN_HOME, {}, "a")
    assert again.status == "ok"


async def test_progress_from_another_instance_completes_the_waiting_command(
    sessions: Any,
) -> None:
    """Instance A sends (its link waits for a reply that went to instance B); B's link reports
    the command's progress by id; A's command completes with B's outcome, and A's link is
    told (resolve) so it stops waiting."""
    link_a = FakeLink("dji", hold=True)
    a, _, _ = make(sessions, {"dji": link_a}, Clock())
    b, metrics_b, _ = make(sessions, {"dji": FakeLink("dji")}, Clock())
    await a.load()
    await b.load()
    waiting = asyncio.create_task(a.command("drone-1", CommandKind.RETURN_HOME, {}, "op"))
    await wait_for(link_a.waiting, 5, what="A's command at its link")
    (cid,) = link_a.waiting()
    b.on_progress(CommandProgress(cid, CommandStatus.IN_PROGRESS, T0, percent=40))
    await wait_for(lambda: _status(a, cid, "in_progress"), 5, what="progress written")
    assert not waiting.done()
    b.on_progress(CommandProgress(cid, CommandStatus.OK, T0, percent=100, result_code=0))
    record = await asyncio.wait_for(waiting, 5)
    assert record.status == "ok" and record.percent == 100
    assert link_a.resolved[cid].status is CommandStatus.OK
    assert count(metrics_b, "citygate_drone_reports", what="progress", outcome="ok") == 2
    # a late progress for a final command changes nothing, and is counted apart from one for
    # a command nobody sent
    b.on_progress(CommandProgress(cid, CommandStatus.FAILED, T0))
    await wait_for(
        lambda: count(metrics_b, "citygate_drone_reports", what="progress", outcome="after_final"),
        5,
    )
    assert (await a.store.command(cid)).status == "ok"  # type: ignore[union-attr]
    b.on_progress(CommandProgress("no-such-command", CommandStatus.OK, T0))
    await wait_for(
        lambda: count(
            metrics_b, "citygate_drone_reports", what="progress", outcome="unknown_command"
        ),
        5,
    )
    assert count(metrics_b, "citygate_drone_reports", what="progress", outcome="after_final") == 1


async def _status(service: DroneService, cid: str, want: str) -> bool:
    return await row_status(service, cid) == want


async def test_a_link_without_resolve_is_completed_from_the_row(sessions: Any) -> None:
    link = NoResolveLink("mavlink", hold=True)
    a, _, _ = make(sessions, {"mavlink": link}, Clock())
    b, _, _ = make(sessions, {}, Clock())
    await a.load()
    waiting = asyncio.create_task(a.command("drone-2", CommandKind.RETURN_HOME, {}, "op"))
    await wait_for(link.waiting, 5)
    (cid,) = link.waiting()
    b.on_progress(CommandProgress(cid, CommandStatus.FAILED, T0, detail="denied", result_code=4))
    record = await asyncio.wait_for(waiting, 5)
    assert record.status == "failed" and record.result_code == 4 and record.detail == "denied"
    await wait_for(lambda: not link.waiting(), 5, what="the link's wait cancelled")


async def test_a_command_without_an_outcome_times_out(sessions: Any) -> None:
    link = FakeLink("dji", hold=True)
    service, _, _ = make(sessions, {"dji": link}, Clock(), command_timeout_s=0.3)
    await service.load()
    record = await service.command("drone-1", CommandKind.RETURN_HOME, {}, "op")
    assert record.status == "timeout" and "no outcome" in record.detail


async def test_a_timeout_is_retried_with_the_same_command_id(sessions: Any) -> None:
    link = FakeLink("dji", outcome=CommandOutcome(CommandStatus.TIMEOUT, 3))
    service, _, _ = make(sessions, {"dji": link}, Clock(), command_retries=1)
    await service.load()
    record = await service.command("drone-1", CommandKind.RETURN_HOME, {}, "op")
    assert record.status == "timeout" and record.attempts == 6
    assert len(link.calls) == 2 and link.calls[0].command_id == link.calls[1].command_id


async def test_an_operator_hanging_up_does_not_cancel_the_command(sessions: Any) -> None:
    link = FakeLink("dji", hold=True)
    service, _, _ = make(sessions, {"dji": link}, Clock())
    await service.load()
    caller = asyncio.create_task(service.command("drone-1", CommandKind.RETURN_HOME, {}, "op"))
    await wait_for(link.waiting, 5)
    (cid,) = link.waiting()
    caller.cancel()
    await asyncio.sleep(0)
    link.release(cid, CommandOutcome(CommandStatus.OK))
    await wait_for(lambda: _status(service, cid, "ok"), 5, what="the outcome recorded anyway")


async def test_stale_open_commands_are_expired(sessions: Any) -> None:
    clock = Clock()
    service, _, _ = make(sessions, {}, clock)
    await service.store.insert_command("c" * 36, "drone-1", "return_home", {}, "op", T0)
    clock.now = T0 + timedelta(hours=1)
    await service._expire()
    row = await service.store.command("c" * 36)
    assert row is not None and row.status == "timeout" and row.finished_at is not None


async def test_the_change_feed_refreshes_a_drone(sessions: Any) -> None:
    from sqlalchemy import update

    from gateway.infra.storage.schema import DroneRow

    service, metrics, _ = make(sessions, {}, Clock())
    await service.load()
    async with sessions.begin() as db:
        await db.execute(update(DroneRow).where(DroneRow.id == "drone-2").values(system_id=7))
    await service.refresh("drone-2")
    service.on_report(DroneReport("mavlink", "7", T0, battery_percent=50.0))
    service.on_report(DroneReport("mavlink", "1", T0, battery_percent=50.0))
    assert service.live["drone-2"].battery_percent == 50.0
    assert count(metrics, "citygate_drone_reports", what="report", outcome="unknown_drone") == 1
    async with sessions.begin() as db:
        await db.execute(
            update(DroneRow).where(DroneRow.id == "drone-2").values(lifecycle="retired")
        )
    await service.refresh("drone-2")
    assert "drone-2" not in service.drones
