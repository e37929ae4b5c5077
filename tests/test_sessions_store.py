"""The session store on both databases: batched berth changes, reconciliation, plate pairing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from events import BerthState, BerthStateChanged, PlateRead
from gateway.directory.town import load_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import ParkingSessionRow
from gateway.metrics import Metrics
from gateway.services.parking.sessions import SessionStore
from parking.occupancy import BerthInfo, OccupancyBook, SensorBinding, SiteInfo
from parking.tariff_file import load_sample_tariffs

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
M = timedelta(minutes=1)
TOWN = load_town(None)
BERTHS = [b for b in TOWN.berths if b.site.startswith("st-")][:3]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SessionStore]:
    engine = create_engine(db_url)
    await migrate(engine)
    sessions = sessionmaker_for(engine)
    async with sessions.begin() as s:
        await import_town(s, TOWN, T0)
    yield SessionStore(
        sessions,
        {s.id: s for s in TOWN.sites},
        {b.id: b for b in TOWN.berths},
        load_sample_tariffs(ZoneInfo("Asia/Shanghai")),
        Metrics(),
        lambda: T0 + 10 * 60 * M,
    )
    await engine.dispose()


def change(berth: Any, state: BerthState, at: datetime) -> BerthStateChanged:
    return BerthStateChanged(
        device_id="s", ts=at, site_id=berth.site, berth_id=berth.id, state=state,
        previous=BerthState.UNKNOWN, since=at,
    )  # fmt: skip


async def rows(store: SessionStore, berth_id: str) -> list[ParkingSessionRow]:
    async with store._sessions() as db:
        q = select(ParkingSessionRow).where(ParkingSessionRow.berth_id == berth_id)
        return list((await db.execute(q.order_by(ParkingSessionRow.entry_at))).scalars())


async def test_a_burst_in_one_batch_closes_before_it_reopens(store: SessionStore) -> None:
    b = BERTHS[0]
    assert await store.on_berth_changes([change(b, BerthState.OCCUPIED, T0)]) == ["opened"]
    # One batch: the car leaves, another arrives and leaves, a third arrives.
    burst = [
        change(b, BerthState.FREE, T0 + 30 * M),
        change(b, BerthState.OCCUPIED, T0 + 40 * M),
        change(b, BerthState.OCCUPIED, T0 + 41 * M),  # repeated
        change(b, BerthState.FREE, T0 + 90 * M),
        change(b, BerthState.OCCUPIED, T0 + 95 * M),
        change(b, BerthState.FREE, T0 + 20 * M),  # late, from before the current stay
        change(BERTHS[1], BerthState.OCCUPIED, T0 + 5 * M),
    ]
    outcomes = await store.on_berth_changes(burst)
    assert outcomes == ["closed", "opened", "duplicate", "closed", "opened", "stale", "opened"]
    got = [(r.state, r.entry_at, r.exit_at) for r in await rows(store, b.id)]
    assert got == [
        ("closed", T0, T0 + 30 * M),
        ("closed", T0 + 40 * M, T0 + 90 * M),
        ("open", T0 + 95 * M, None),
    ]
    for r in await rows(store, b.id):
        if r.state == "closed":
            assert r.tariff_version is not None
            assert r.fee_fen == store.price(r, r.exit_at or T0)[0].quote.total_fen  # type: ignore[union-attr]


async def test_reconcile_follows_the_live_occupancy(store: SessionStore) -> None:
    b0, b1 = BERTHS[0], BERTHS[1]
    await store.on_berth_changes([change(b0, BerthState.OCCUPIED, T0)])  # now free (missed)
    book = OccupancyBook(
        [SiteInfo(s.id, s.capacity, s.counting.value, s.controller_id) for s in TOWN.sites],
        [BerthInfo(b.id, b.site) for b in TOWN.berths],
        [
            SensorBinding(x.dev_eui.lower(), x.berth, x.model, x.heartbeat_s or 3600)
            for x in TOWN.sensors
            if x.berth in (b0.id, b1.id)
        ],
        start=T0,
    )
    book.restore_berth(b0.id, BerthState.FREE, T0 + 20 * M, None, None)
    book.restore_berth(b1.id, BerthState.OCCUPIED, T0 + 7 * M, None, None)
    assert await store.reconcile(book) == 2
    assert [(r.state, r.exit_at) for r in await rows(store, b0.id)] == [("closed", T0 + 20 * M)]
    assert [(r.state, r.entry_at) for r in await rows(store, b1.id)] == [("open", T0 + 7 * M)]
    assert await store.reconcile(book) == 0  # nothing left to fix


async def test_plate_reads_on_both_databases(store: SessionStore) -> None:
    def read(direction: str, at: datetime) -> PlateRead:
        return PlateRead(
            device_id=f"cam-{direction}", ts=at, site_id="cp-keyunzhan",
            direction=direction, plate="甘G55555",  # type: ignore[arg-type]
        )  # fmt: skip

    assert (await store.on_plate_read(read("out", T0 + 60 * M))).outcome == "pending_exit"
    assert (await store.on_plate_read(read("in", T0))).outcome == "paired"
    assert (await store.on_plate_read(read("in", T0 + 2 * 60 * M))).outcome == "opened"
    assert (await store.on_plate_read(read("in", T0 + 3 * 60 * M))).outcome == "reopened"
    found = await store.find(plate="甘G55555")
    assert [(v.state, v.entry) for v in found] == [
        ("open", T0 + 3 * 60 * M),
        ("closed", T0 + 2 * 60 * M),
        ("closed", T0),
    ]


async def test_external_provider_records_what_the_backend_collected(store: SessionStore) -> None:
    from gateway.services.parking.payments import PaymentError, PaymentService
    from gateway.services.parking.providers import ExternalProvider

    read = PlateRead(
        device_id="cam-in", ts=T0, site_id="cp-keyunzhan", direction="in", plate="甘G66666"
    )
    sid = (await store.on_plate_read(read)).session_id
    assert sid is not None
    due = (await store.get(sid)).settlement.due_fen  # type: ignore[union-attr]
    pay = PaymentService(store._sessions, store, ExternalProvider(), Metrics(), store._clock)
    with pytest.raises(PaymentError) as refused:
        await pay.pay(session_id=sid, amount_fen=due, method="wechat", key="ext-key-1", actor="t")
    assert refused.value.status == 422 and "provider_ref" in refused.value.message
    record, replayed = await pay.pay(
        session_id=sid, amount_fen=due, method="wechat", key="ext-key-2", actor="t",
        provider_ref="4200001234202611240012345678",
    )  # fmt: skip
    assert not replayed and record.provider == "external"
    assert record.provider_ref == "4200001234202611240012345678"
    refund, _ = await pay.refund(
        payment_id=record.id, amount_fen=due, reason="complaint upheld", key="ext-ref-1", actor="op"
    )
    assert refund.refund_of == record.id
    assert (await store.get(sid)).paid_fen == 0  # type: ignore[union-attr]
