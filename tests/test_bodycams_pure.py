"""The pure parts of the body cam platform: what a message does to a cam, queries matched by
SN, when a subscription is refreshed, the state restored at boot, the telemetry line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.manscdp import (
    Alarm,
    CatalogItem,
    CatalogPart,
    DeviceInfo,
    Keepalive,
    MobilePositions,
    Position,
    Power,
)
from drivers.gb28181.presence import PresenceState
from events import BodycamPosition
from gateway.infra.storage.schema import BodycamStateRow
from gateway.services.bodycams.cams import (
    CamLive,
    Dialog,
    cam_from_row,
    due_cams,
    routine_values,
    row_values,
)
from gateway.services.bodycams.messages import PendingQueries, apply_message
from telemetry.mapping import PointMapper

CAM = "62072500081380000001"
OTHER = "62072500081380000002"
T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def live() -> CamLive:
    return CamLive(CAM, PresenceState(T0, T0 + timedelta(hours=1)))


def pos(minute: int, device: str = CAM) -> Position:
    return Position(device, T0 + timedelta(minutes=minute), 101.08, 38.78 + minute / 1000, 4.0)


def test_positions_newest_wins_and_other_ids_are_dropped_not_guessed() -> None:
    cam, q, cat = live(), PendingQueries(), CatalogAssembler()
    out = apply_message(cam, MobilePositions(CAM, 1, (pos(2), pos(1))), T0, 0, q, cat)
    assert [p.time.minute for p in out.positions] == [2]  # the older one came late: not taken
    assert cam.position == pos(2)
    out = apply_message(cam, MobilePositions(CAM, 2, (pos(3, OTHER),)), T0, 0, q, cat)
    assert out.positions == [] and out.dropped == ["position_other_id"]
    assert cam.position == pos(2)


def test_answers_match_their_query_by_sn_once() -> None:
    cam, q, cat = live(), PendingQueries(), CatalogAssembler()
    q.add(CAM, 7, "DeviceInfo", 0.0)
    info = DeviceInfo(CAM, 7, "OK", None, "Hik", "X1", "2.1", 1, Power(battery_percent=55))
    assert apply_message(cam, info, T0, 1, q, cat).answered == "DeviceInfo"
    assert cam.battery_percent == 55 and cam.manufacturer == "Hik"
    assert apply_message(cam, info, T0, 1, q, cat).answered is None  # answered already
    assert q.unmatched == 1
    q.add(CAM, 8, "DeviceStatus", 0.0)
    assert q.expire(40.0, 32.0) == 1 and len(q) == 0


def test_a_catalog_completes_once_across_parts() -> None:
    cam, q, cat = live(), PendingQueries(), CatalogAssembler()
    q.add(CAM, 9, "Catalog", 0.0)
    a = CatalogPart(CAM, 9, 2, (CatalogItem(CAM[:18] + "01"),))
    b = CatalogPart(CAM, 9, 2, (CatalogItem(CAM[:18] + "02"),))
    assert apply_message(cam, a, T0, 1, q, cat).catalog is None
    assert apply_message(cam, a, T0, 1, q, cat).catalog is None  # a retransmitted part
    done = apply_message(cam, b, T0, 2, q, cat)
    assert done.catalog is not None and done.answered == "Catalog" and cam.catalog_items == 2


def test_a_message_naming_another_device_changes_nothing() -> None:
    cam, q, cat = live(), PendingQueries(), CatalogAssembler()
    out = apply_message(cam, Keepalive(1, OTHER, "OK"), T0, 0, q, cat)
    assert out.dropped == ["device_mismatch"]
    alarm = Alarm(CAM, 3, 1, 2, T0, "SOS", None, None, 1)
    assert apply_message(cam, alarm, T0, 0, q, cat).alarm == alarm


def test_refresh_time_follows_the_granted_expiry() -> None:
    d = Dialog("c", "l", "r", 1, expires_at=1000.0, expires_s=600)
    assert d.refresh_at() == 940.0  # 60 s before (a fifth would be 120: capped)
    d = Dialog("c", "l", "r", 1, expires_at=1000.0, expires_s=3)
    assert 997.0 < d.refresh_at() < 1000.0  # a fifth before, and at least 1 s after the grant


def test_state_round_trips_through_its_row_and_is_restored_unconfirmed() -> None:
    from drivers.sip.transport import Peer

    cam = live()
    cam.peer = Peer("TCP", "10.1.2.3", 41234)
    cam.moved(pos(5))
    cam.power(Power(battery_percent=80, storage_total_mb=1000.0, storage_free_mb=400.0))
    row = BodycamStateRow(**row_values(cam, T0))
    back = cam_from_row(row, 60.0, 3)
    assert back.peer == cam.peer and back.position == cam.position
    assert (back.battery_percent, back.storage_free_mb) == (80, 400.0)
    assert not back.presence.confirmed and back.presence.online(T0 + timedelta(minutes=2))
    assert not back.presence.online(T0 + timedelta(minutes=3))  # the stored deadline holds


def test_positions_become_bodycam_position_points() -> None:
    e = BodycamPosition(
        device_id=CAM, ts=T0, lat=38.7851, lon=101.0852, officer_id="of-001", squad="督查中队",
        speed_kmh=4.5, direction_deg=90.0,
    )  # fmt: skip
    (line,) = PointMapper({}).lines(e)
    assert line.startswith(f"bodycam_position,device={CAM},officer=of-001,squad=督查中队 ")
    assert "lat=38.7851,lon=101.0852,speed_kmh=4.5,direction_deg=90.0" in line
    nan = BodycamPosition(device_id=CAM, ts=T0, lat=float("nan"), lon=101.0)
    assert PointMapper({}).lines(nan) == []


def test_due_cams_says_what_due_says_and_routine_rows_are_part_of_the_full_row() -> None:
    cams = []
    for n in range(40):
        c = CamLive(f"{CAM[:-2]}{n:02d}", PresenceState(T0, T0 + timedelta(hours=1)))
        c.dirty = n % 7 == 0
        c.routine_since = None if n % 3 == 0 else T0 - timedelta(seconds=n / 2)
        cams.append(c)
    for routine_s in (-1.0, 0.0, 0.5, 10.0, 15.0, 300.0):
        assert due_cams(cams, T0, routine_s) == [c for c in cams if c.due(T0, routine_s)]
    c = cams[1]
    c.moved(pos(3))
    full, routine = row_values(c, T0), routine_values(c, T0)
    assert routine == {k: full[k] for k in routine} and len(routine) < len(full)
