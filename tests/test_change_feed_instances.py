"""Two gateway instances on one PostgreSQL database: a change made through either (its API,
or the CLI's functions on the shared database) is live on both within seconds, woken by
LISTEN/NOTIFY; and the follower itself skips what it cannot apply and rides out failures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.exc import OperationalError

from gateway.directory import documents
from gateway.directory.chargers import NewCharger, add_charger
from gateway.infra.changes import Change, ChangeFollower, head_seq, record_change
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.metrics import Metrics
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module")]

ZONE = ZoneInfo("Asia/Shanghai")
LIVE_S = 2.0
TARIFFS = Path(__file__).parent.parent / "parking" / "data" / "sample_tariffs.toml"


@pytest_asyncio.fixture(loop_scope="module")
async def pair(mosquitto: Broker, pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    async with (
        running_gateway(gateway_settings(pg_url, mosquitto)) as a,
        running_gateway(gateway_settings(pg_url, mosquitto)) as b,
    ):
        yield a, b


def client(gw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sensor_of(gw: Any, site: str, berth: str) -> str | None:
    async with client(gw) as http:
        berths = (await http.get(f"/api/v1/sites/{site}/berths")).json()["berths"]
    b = next(b for b in berths if b["id"] == berth)
    return None if b["sensor"] is None else str(b["sensor"]["dev_eui"])


@pytest.mark.slow
async def test_devices_chargers_sites_and_tariffs_reach_both_instances(
    pair: tuple[Any, Any],
) -> None:
    a, b = pair
    tokens = await make_tokens(a)
    tech = auth(tokens["technician"])
    berth, site = "cp-zhening-001", "cp-zhening"
    old = await sensor_of(b, site, berth)
    assert old is not None

    # Devices, through A's API: retire the berth's sensor, provision its replacement.
    async with client(a) as http:
        r = await http.patch(f"/api/v1/devices/{old}", json={"lifecycle": "retired"}, headers=tech)
        assert r.status_code == 200, r.text
    await wait_for(lambda: _is(sensor_of(b, site, berth), None), LIVE_S, what="B unbinds")
    async with client(a) as http:
        new = {"dev_eui": "a84041000181f00d", "model": "nwave-nps405", "berth_id": berth}
        r = await http.post("/api/v1/devices", json=new, headers=tech)
        assert r.status_code == 201, r.text
    await wait_for(lambda: _is(sensor_of(b, site, berth), new["dev_eui"]), LIVE_S, what="B binds")
    assert b.services.live.directory.get(new["dev_eui"]) is not None

    # Chargers, through B's API and through the registry functions the CLI uses.
    async with client(b) as http:
        r = await http.post(
            "/api/v1/chargers", json={"id": "PAIR-1", "site_id": "cp-tonghe"}, headers=tech
        )
        assert r.status_code == 201, r.text
    async with sessionmaker_for(a.services.engine).begin() as db:
        spot = NewCharger("PAIR-2", None, "加油站", 38.78, 101.08)
        await add_charger(db, spot, a.services.clock())
    for gw in (a, b):
        await wait_for(
            lambda gw=gw: {"PAIR-1", "PAIR-2"} <= gw.services.charging.chargers.keys(),
            LIVE_S,
            what="both chargers on both instances",
        )
    async with client(a) as http:
        r = await http.get("/api/v1/chargers/PAIR-1", headers=auth(tokens["inspector"]))
        assert r.status_code == 200 and r.json()["site_id"] == "cp-tonghe"

    # The town: a site's capacity changes in the database (as an import does).
    from sqlalchemy import update

    from gateway.infra.storage.schema import SiteRow

    async with sessionmaker_for(b.services.engine).begin() as db:
        await db.execute(update(SiteRow).where(SiteRow.id == "cp-tonghe").values(capacity=60))
        await record_change(db, "site", "cp-tonghe", "import")
    for gw in (a, b):
        await wait_for(
            lambda gw=gw: gw.services.live.book.site("cp-tonghe").capacity == 60,
            LIVE_S,
            what="new capacity on both",
        )

    # Tariffs: a new version imported once is in force on both.
    dearer = TARIFFS.read_text("utf-8").replace("rate_fen = 100,", "rate_fen = 400,")
    async with sessionmaker_for(a.services.engine).begin() as db:
        doc, is_new = await documents.import_document(
            db, "tariffs", dearer, "x.toml", a.services.clock(), ZONE
        )
    assert is_new and doc.source == "x.toml"
    for gw in (a, b):
        await wait_for(
            lambda gw=gw: (
                gw.services.session_store.tariffs == documents.parse_tariffs(dearer, "x", ZONE)
            ),
            LIVE_S,
            what="new tariffs on both",
        )
    assert (
        a.services.follower.applied_seq
        == b.services.follower.applied_seq
        == await head_seq(sessionmaker_for(a.services.engine))
    )


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


# -- the follower on its own ---------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def sessions(tmp_path: Path) -> AsyncIterator[Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'feed.db'}")
    await migrate(engine)
    yield engine, sessionmaker_for(engine)
    await engine.dispose()


async def test_a_change_that_cannot_be_applied_is_skipped_and_a_dead_database_retried(
    sessions: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine, maker = sessions
    applied: list[int] = []
    down = {"n": 3}  # the first three attempts at change 2 find the database down

    async def apply(change: Change) -> None:
        if change.key == "bad":
            raise ValueError("no such thing")
        if change.seq == 2 and down["n"]:
            down["n"] -= 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        applied.append(change.seq)

    metrics = Metrics()
    follower = ChangeFollower(engine, maker, apply, metrics, after=0)
    async with maker.begin() as db:
        for key in ("a", "b", "bad", "c"):
            await record_change(db, "device", key, "update")
    caplog.set_level(logging.INFO, logger="gateway.infra.changes")
    for _ in range(4):
        await follower.catch_up()
    assert applied == [1, 2, 4]  # 2 retried until it applied, 3 skipped, 4 not wedged
    assert follower.applied_seq == 4 and not follower.failing
    assert metrics.registry.get_sample_value("citygate_changes_applied_seq") == 4
    assert metrics.registry.get_sample_value("citygate_changes_skipped_total", {"kind": "device"})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "db down" in warnings[0].getMessage()  # reported once
    skipped = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(skipped) == 1 and "change 3" in skipped[0].getMessage()
    assert any("recovered" in r.getMessage() for r in caplog.records)
