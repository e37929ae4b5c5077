"""Storage on both backends: migrations, idempotent town import, tokens, registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.directory.registry import Registry, RegistryError
from gateway.directory.tokens import Role, TokenError, create_token, revoke_token, verify_token
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import (
    create_engine,
    current_revision,
    downgrade,
    migrate,
    sessionmaker_for,
)
from gateway.infra.storage.schema import BerthRow, ChargerRow, DeviceRow, SiteRow

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    await migrate(engine)
    yield sessionmaker_for(engine)
    await engine.dispose()


async def test_migrations_are_idempotent(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        await migrate(engine)
        assert await current_revision(engine) == "0018_gate_cluster"
    finally:
        await engine.dispose()


async def test_migrations_match_the_models_and_downgrade(db_url: str) -> None:
    """The tables the code uses are exactly what the migrations build, on both backends, and
    the latest migration can be undone and redone."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gateway.infra.storage.schema import Base

    def diff(connection: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    engine = create_engine(db_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await downgrade(engine, "0004")
        assert await current_revision(engine) == "0004"
        await migrate(engine)
        assert await current_revision(engine) == "0018_gate_cluster"
    finally:
        await engine.dispose()


async def test_sample_town_import_is_idempotent(sessions) -> None:  # type: ignore[no-untyped-def]
    town = load_town(None)
    async with sessions.begin() as s:
        first = await import_town(s, town, T0)
    assert first.created["sites"] == len(town.sites)
    assert first.created["berths"] == len(town.berths)
    async with sessions.begin() as s:
        second = await import_town(s, town, T0)
    assert second.created == {} and second.updated == {}
    async with sessions() as s:
        cap = (
            await s.execute(select(func.sum(SiteRow.capacity)).where(SiteRow.kind == "car_park"))
        ).scalar_one()
        n_sensors = (
            await s.execute(
                select(func.count()).select_from(DeviceRow).where(DeviceRow.kind == "berth_sensor")
            )
        ).scalar_one()
    assert cap == 1382
    assert n_sensors == len(town.sensors)


async def test_import_updates_and_rebinds(sessions) -> None:  # type: ignore[no-untyped-def]
    text = """
[town]
name = "t"
[[sites]]
id = "st-a"
name = "A 街"
kind = "on_street"
lat = 38.78
lon = 101.08
capacity = 2
counting = "berth_sensors"
segment_class = "A"
[[berths]]
id = "st-a-1"
site = "st-a"
number = "1"
lat = 38.78
lon = 101.08
[[berths]]
id = "st-a-2"
site = "st-a"
number = "2"
lat = 38.78
lon = 101.0801
[[sensors]]
dev_eui = "70B3D59BA0000001"
model = "nwave-nps405"
berth = "st-a-1"
"""
    async with sessions.begin() as s:
        await import_town(s, parse_town(text), T0)
    # The sensor was moved to berth 2 and a new one fitted on berth 1; the site renamed.
    moved = (
        text.replace('berth = "st-a-1"', 'berth = "st-a-2"').replace("A 街", "甲街")
        + """
[[sensors]]
dev_eui = "70b3d59ba0000002"
model = "bosch-tps110"
berth = "st-a-1"
"""
    )
    async with sessions.begin() as s:
        report = await import_town(s, parse_town(moved), T0)
    assert report.updated == {"sites": 1, "devices": 1}
    assert report.created == {"devices": 1}
    async with sessions() as s:
        assert (await s.get(SiteRow, "st-a")).name == "甲街"
        assert (await s.get(DeviceRow, "70b3d59ba0000001")).berth_id == "st-a-2"
        assert (await s.get(DeviceRow, "70b3d59ba0000002")).berth_id == "st-a-1"
        assert (await s.get(BerthRow, "st-a-1")).state == "unknown"


async def test_tokens_hashed_scoped_revocable(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        info, token = await create_token(s, Role.TECHNICIAN, T0, "van 3")
    async with sessions() as s:
        from gateway.infra.storage.schema import ApiTokenRow

        row = await s.get(ApiTokenRow, info.id)
        assert row is not None and token.split("_", 2)[2] not in row.token_hash
        assert (await verify_token(s, token)).role is Role.TECHNICIAN
        with pytest.raises(TokenError, match="mismatch"):
            await verify_token(s, token[:-2] + "xx")
        with pytest.raises(TokenError, match="malformed"):
            await verify_token(s, "Bearer nonsense")
    async with sessions.begin() as s:
        assert await revoke_token(s, info.id, T0)
        assert not await revoke_token(s, "nope", T0)
    async with sessions() as s:
        with pytest.raises(TokenError, match="revoked"):
            await verify_token(s, token)


async def test_registry_provision_bind_retire(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        await import_town(s, load_town(None), T0)
    reg = Registry(sessions)
    town = load_town(None)
    taken = town.sensors[0].berth
    with pytest.raises(RegistryError) as conflict:
        await reg.provision("a1b2c3d4e5f60001", "nwave-nps405", T0, berth_id=taken)
    assert conflict.value.status == 409
    with pytest.raises(RegistryError) as bad_model:
        await reg.provision("a1b2c3d4e5f60001", "acme-9000", T0)
    assert bad_model.value.status == 422
    row, _ = await reg.provision("A1B2C3D4E5F60001", "nwave-nps405", T0)
    assert row.id == "a1b2c3d4e5f60001" and row.lifecycle == "provisioned"
    # Replace the failed sensor on `taken`: retire the old one, bind the new one.
    old = town.sensors[0].dev_eui.lower()
    retired, _ = await reg.update(old, {"lifecycle": "retired"}, T0)
    assert retired.berth_id is None
    bound, _ = await reg.update(row.id, {"berth_id": taken}, T0)
    assert bound.berth_id == taken and bound.site_id is not None
    with pytest.raises(RegistryError) as missing:
        await reg.update("ffffffffffffffff", {"notes": "x"}, T0)
    assert missing.value.status == 404


async def test_a_retired_charger_stays_retired_and_says_what_to_do(sessions) -> None:  # type: ignore[no-untyped-def]
    """Re-adding, re-keying or bringing back a retired charger is refused (409) with what to
    do instead (a new charger, or a replacement next time), and nothing is written; a new
    charger starts provisioned and follows the one lifecycle's operator moves."""
    from gateway.directory.chargers import (
        ChargerError,
        NewCharger,
        add_charger,
        set_password,
        update_charger,
    )

    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    new = NewCharger(id="RET001", site_id=None, place="x", lat=38.78, lon=101.08)
    async with sessions.begin() as s:
        await add_charger(s, new, now)
        assert (await s.get(ChargerRow, "RET001")).lifecycle == "provisioned"  # type: ignore[union-attr]
    with pytest.raises(ChargerError) as early:  # not commissioned yet
        async with sessions.begin() as s:
            await update_charger(s, "RET001", {"lifecycle": "active"}, now)
    assert early.value.status == 409 and "citygate commission RET001" in str(early.value)
    async with sessions.begin() as s:
        await update_charger(s, "RET001", {"lifecycle": "retired"}, now)
    attempts = [
        lambda s: add_charger(s, new, now),
        lambda s: set_password(s, "RET001", now),
        *(
            lambda s, to=to: update_charger(s, "RET001", {"lifecycle": to}, now)
            for to in ("active", "provisioned", "commissioned", "maintenance")
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ChargerError) as caught:
            async with sessions.begin() as s:
                await attempt(s)
        assert caught.value.status == 409, caught.value
        assert "retired is final" in str(caught.value) and "devices replace" in str(caught.value)
    async with sessions() as s:
        assert (await s.get(ChargerRow, "RET001")).lifecycle == "retired"  # type: ignore[union-attr]
    with pytest.raises(ChargerError) as bad:
        async with sessions.begin() as s:
            await update_charger(s, "RET001", {"lifecycle": "reinstated"}, now)
    assert bad.value.status == 422 and "provisioned, commissioned" in str(bad.value)
