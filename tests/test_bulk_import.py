"""Bulk import against the database, on SQLite and PostgreSQL: a good file of each kind is
imported whole with its change feed entries; one bad row and nothing is; dry runs write
nothing and show the diff; changed rows field by field; --retire-missing per kind; secrets
hashed as the directory hashes them and never in the diff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from drivers.sip.digest import ha1
from gateway.directory.bulk.parse import Limits
from gateway.directory.bulk.service import import_file
from gateway.directory.cameras import hash_secret
from gateway.directory.chargers import hash_password
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import BerthRow, BodycamRow, ChangeRow, ChargerRow, DeviceRow
from gateway.wiring import ensure_town

pytestmark = pytest.mark.asyncio(loop_scope="module")
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
LIMITS = Limits(max_bytes=1_000_000, max_rows=20_000)
REALM = "6207250008"
SITE = "cp-dongguan"
BERTHS = [f"{SITE}-imp-{n:02d}" for n in range(8)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sessions(module_db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(module_db_url)
    await migrate(engine)
    made = sessionmaker_for(engine)
    await ensure_town(made, None, NOW)
    async with made.begin() as s:  # free berths for the tests (the sample town's are bound)
        s.add_all(BerthRow(id=b, site_id=SITE, number=b[-2:], lat=38.78, lon=101.08)
                  for b in BERTHS)  # fmt: skip
    yield made
    await engine.dispose()


async def run(sessions: Any, data: str, fmt: str = "csv", **kw: Any) -> dict[str, Any]:
    outcome = await import_file(sessions, data.encode(), fmt, NOW, limits=LIMITS, realm=REALM,
                                **kw)  # type: ignore[arg-type]  # fmt: skip
    return outcome.as_dict()


async def feed_after(sessions: Any, seq: int) -> list[tuple[Any, ...]]:
    """The changes after *seq*: ``(kind, key, op)``, a batch as ``(kind, op, keys)``."""
    async with sessions() as s:
        rows = (await s.execute(select(ChangeRow).where(ChangeRow.seq > seq)
                                .order_by(ChangeRow.seq))).scalars()  # fmt: skip
        return [(r.kind, r.key, r.op) if r.payload is None
                else (r.kind, r.op, tuple(r.payload["keys"])) for r in rows]  # fmt: skip


SENSOR_FEED = [("device", "import", tuple(f"a84041000181000{n}" for n in (1, 2, 3)))]


async def head(sessions: Any) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.coalesce(func.max(ChangeRow.seq), 0))) or 0)


async def count(sessions: Any, model: Any) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


SENSORS = (
    "dev_eui,model,berth_id,heartbeat_s,notes\n"
    f"A840410001810001,nwave-nps405,{BERTHS[0]},600,东门 第一排\n"
    f"a840410001810002,bosch-tps110,{BERTHS[1]},,\n"
    "a840410001810003,nbiot-geomag,,,备用\n"
)


async def test_a_good_sensor_file_is_imported_whole_with_its_feed(sessions: Any) -> None:
    seq = await head(sessions)
    doc = await run(sessions, SENSORS, kind="sensor")
    assert doc["imported"] and doc["errors"] == []
    assert doc["summary"]["sensor"] == {"added": 3, "changed": 0, "retired": 0, "unchanged": 0}
    assert await feed_after(sessions, seq) == SENSOR_FEED  # one change for the three
    async with sessions() as s:
        row = await s.get(DeviceRow, "a840410001810001")
        assert row is not None
        assert (row.berth_id, row.site_id, row.heartbeat_s, row.notes, row.lifecycle) == (
            BERTHS[0], SITE, 600, "东门 第一排", "provisioned"
        )  # fmt: skip
        assert row.protocol == "lorawan" or row.protocol  # the codec's transport
    again = await run(sessions, SENSORS, kind="sensor")  # idempotent
    assert again["summary"]["sensor"]["unchanged"] == 3 and again["imported"]
    assert await feed_after(sessions, seq) == SENSOR_FEED


async def test_one_bad_row_and_nothing_is_imported(sessions: Any) -> None:
    before, seq = await count(sessions, DeviceRow), await head(sessions)
    data = (
        "dev_eui,model,berth_id\n"
        "a840410001820001,nwave-nps405,\n"
        "a840410001820002,nwave-nps405,no-such-berth\n"
        "a840410001820003,nwave-nps405,\n"
    )
    doc = await run(sessions, data, kind="sensor")
    assert not doc["imported"]
    assert doc["errors"] == [
        {"row": "line 3", "field": "berth_id", "message": "no berth 'no-such-berth'"}
    ]
    assert await count(sessions, DeviceRow) == before and await head(sessions) == seq


async def test_a_duplicate_id_and_a_taken_berth_are_rejected(sessions: Any) -> None:
    seq = await head(sessions)
    dup = "dev_eui,model\na840410001830001,nwave-nps405\na840410001830001,nwave-nps405\n"
    doc = await run(sessions, dup, kind="sensor")
    assert [(e["row"], e["field"]) for e in doc["errors"]] == [("line 3", "dev_eui")]
    taken = "dev_eui,model,berth_id\na840410001830002,nwave-nps405,cp-zhening-001\n"
    doc = await run(sessions, taken, kind="sensor")
    assert doc["errors"][0]["field"] == "berth_id" and "bound to" in doc["errors"][0]["message"]
    assert await head(sessions) == seq


async def test_a_dry_run_shows_the_diff_and_writes_nothing(sessions: Any) -> None:
    seq, before = await head(sessions), await count(sessions, DeviceRow)
    data = (
        "dev_eui,model,berth_id,heartbeat_s,notes\n"
        f"a840410001810001,nwave-nps405,{BERTHS[2]},900,东门 第一排\n"  # moves, new heartbeat
        "a840410001840001,nwave-nps405,,,\n"
    )
    doc = await run(sessions, data, kind="sensor", dry_run=True)
    assert doc["dry_run"] and not doc["imported"] and doc["errors"] == []
    assert doc["added"] == {"sensor": ["a840410001840001"]}
    assert doc["changed"] == {
        "sensor": [
            {
                "id": "a840410001810001",
                "fields": {"berth_id": [BERTHS[0], BERTHS[2]], "heartbeat_s": [600, 900]},
            }
        ]
    }
    assert await head(sessions) == seq and await count(sessions, DeviceRow) == before


async def test_changed_rows_swap_berths_in_one_import(sessions: Any) -> None:
    seq = await head(sessions)
    data = (
        "dev_eui,model,berth_id\n"
        f"a840410001810001,nwave-nps405,{BERTHS[1]}\n"
        f"a840410001810002,bosch-tps110,{BERTHS[0]}\n"
    )
    doc = await run(sessions, data, kind="sensor")
    assert doc["imported"], doc["errors"]
    assert doc["summary"]["sensor"]["changed"] == 2
    async with sessions() as s:
        assert (await s.get(DeviceRow, "a840410001810001")).berth_id == BERTHS[1]  # type: ignore[union-attr]
        assert (await s.get(DeviceRow, "a840410001810002")).berth_id == BERTHS[0]  # type: ignore[union-attr]
    assert await feed_after(sessions, seq) == [
        ("device", "import", ("a840410001810001", "a840410001810002"))
    ]


async def test_cameras_get_generated_secrets_once_and_hashed(sessions: Any) -> None:
    data = (
        "id,vendor,site_id,direction,notes,secret\n"
        f"cam-imp-1,hikvision,{SITE},in,入口,\n"
        f"cam-imp-2,dahua,{SITE},,,given-secret-0123456789\n"
    )
    dry = await run(sessions, data, kind="camera", dry_run=True)
    assert dry["errors"] == [] and dry["secrets"] == [] and "given-secret" not in str(dry)
    doc = await run(sessions, data, kind="camera")
    assert doc["imported"]
    (generated,) = doc["secrets"]
    assert generated["id"] == "cam-imp-1" and generated["push_path"].endswith("/hikvision")
    assert "given-secret" not in str(doc)
    async with sessions() as s:
        one = await s.get(DeviceRow, "cam-imp-1")
        two = await s.get(DeviceRow, "cam-imp-2")
        assert one is not None and two is not None
        assert one.secret_hash == hash_secret(generated["secret"]) and one.kind == "camera"
        assert two.secret_hash == hash_secret("given-secret-0123456789")
    rotated = data.replace("given-secret-0123456789", "another-secret-0123456789")
    doc = await run(sessions, rotated, kind="camera")
    assert doc["changed"]["camera"] == [
        {"id": "cam-imp-2", "fields": {"secret": ["(hidden)", "(hidden)"]}}
    ]
    assert "another-secret" not in str(doc)


async def test_chargers_from_toml_through_the_directory_writers(sessions: Any) -> None:
    seq = await head(sessions)
    data = f"""
[[chargers]]
id = "CP-IMP-1"
site_id = "{SITE}"
current = "DC"
power_kw = 60
connectors = 2

[[chargers]]
id = "CP-IMP-2"
place = "华联超市门口"
lat = 38.79
lon = 101.09
password = "file-given-password-01"
"""
    doc = await run(sessions, data, "toml")
    assert doc["imported"], doc["errors"]
    assert [s["id"] for s in doc["secrets"]] == ["CP-IMP-1"]
    assert "file-given-password-01" not in str(doc)
    async with sessions() as s:
        one = await s.get(ChargerRow, "CP-IMP-1")
        two = await s.get(ChargerRow, "CP-IMP-2")
        assert one is not None and two is not None
        assert one.place and one.lat and one.power_kw == 60 and one.connectors == 2
        assert (one.lifecycle, two.lifecycle) == ("provisioned", "provisioned")  # as one added
        assert one.password_hash == hash_password(doc["secrets"][0]["password"])
        assert two.password_hash == hash_password("file-given-password-01")
    assert await feed_after(sessions, seq) == [
        ("charger", "CP-IMP-1", "add"), ("charger", "CP-IMP-2", "add")
    ]  # fmt: skip
    changed = data.replace("power_kw = 60", "power_kw = 120").replace("lat = 38.79", "lat = 38.8")
    doc = await run(sessions, changed, "toml")
    assert doc["changed"]["charger"] == [
        {"id": "CP-IMP-1", "fields": {"power_kw": [60.0, 120]}},
        {"id": "CP-IMP-2", "fields": {"lat": [38.79, 38.8]}},
    ]
    async with sessions() as s:
        assert (await s.get(ChargerRow, "CP-IMP-1")).power_kw == 120  # type: ignore[union-attr]


async def test_bodycams_with_and_without_a_password(sessions: Any) -> None:
    data = (
        "id,officer_id,password\n"
        "62072500081380000701,of-001,typed-on-the-cam\n"
        "62072500081380000702,of-002,\n"
    )
    doc = await run(sessions, data, kind="bodycam")
    assert doc["imported"], doc["errors"]
    assert [s["id"] for s in doc["secrets"]] == ["62072500081380000702"]
    assert "typed-on-the-cam" not in str(doc)
    async with sessions() as s:
        cam = await s.get(BodycamRow, "62072500081380000701")
        assert cam is not None and cam.ha1 == ha1(cam.id, REALM, "typed-on-the-cam")
        assert cam.lifecycle == "provisioned"  # as one added by hand
    bad = "id,officer_id\n62072500081380000703,of-nobody\n"
    doc = await run(sessions, bad, kind="bodycam", retire_missing=True)
    assert doc["errors"] == [
        {"row": "line 2", "field": "officer_id", "message": "unknown officer 'of-nobody'"}
    ]
    assert any("no retire" in n for n in doc["notes"])


async def test_retire_missing_is_scoped_to_the_kinds_in_the_file(sessions: Any) -> None:
    async with sessions() as s:
        chargers = int(await s.scalar(select(func.count()).select_from(ChargerRow).where(
            ChargerRow.lifecycle != "retired")) or 0)  # fmt: skip
    seq = await head(sessions)
    data = f"id,site_id\nCP-IMP-1,{SITE}\n"
    doc = await run(sessions, data, kind="charger", retire_missing=True, dry_run=True)
    assert len(doc["retired"]["charger"]) == chargers - 1 and await head(sessions) == seq
    assert "CP-IMP-1" not in doc["retired"]["charger"]
    doc = await run(sessions, data, kind="charger", retire_missing=True)
    assert doc["imported"] and "sensor" not in doc["retired"]
    feed = await feed_after(sessions, seq)
    assert len(feed) == chargers - 1 and {op for _, _, op in feed} == {"retired"}
    async with sessions() as s:
        assert (await s.get(ChargerRow, "CP-IMP-2")).lifecycle == "retired"  # type: ignore[union-attr]
        assert (await s.get(DeviceRow, "a840410001810001")).lifecycle != "retired"  # type: ignore[union-attr]
    # sensors: retired as the registry retires them, freeing their berths
    doc = await run(sessions, "dev_eui,model\na840410001810003,nbiot-geomag\n", kind="sensor",
                    retire_missing=True)  # fmt: skip
    assert doc["imported"] and "a840410001810001" in doc["retired"]["sensor"]
    assert "camera" not in doc["retired"]
    async with sessions() as s:
        old = await s.get(DeviceRow, "a840410001810001")
        assert old is not None and old.lifecycle == "retired" and old.berth_id is None
        cam = await s.get(DeviceRow, "cam-imp-1")
        assert cam is not None and cam.lifecycle != "retired"


async def test_toml_sensors_change_different_fields_per_table(sessions: Any) -> None:
    add = (
        "[[sensors]]\ndev_eui = 'a840410001850001'\nmodel = 'nwave-nps405'\n"
        "[[sensors]]\ndev_eui = 'a840410001850002'\nmodel = 'nwave-nps405'\n"
    )
    assert (await run(sessions, add, "toml"))["imported"]
    change = (
        "[[sensors]]\ndev_eui = 'a840410001850001'\nmodel = 'nwave-nps405'\nnotes = '换过电池'\n"
        "[[sensors]]\ndev_eui = 'a840410001850002'\nmodel = 'bosch-tps110'\nheartbeat_s = 60\n"
    )
    doc = await run(sessions, change, "toml")
    assert doc["changed"]["sensor"] == [
        {"id": "a840410001850001", "fields": {"notes": ["", "换过电池"]}},
        {"id": "a840410001850002",
         "fields": {"heartbeat_s": [None, 60], "model": ["nwave-nps405", "bosch-tps110"]}},
    ]  # fmt: skip
    async with sessions() as s:
        one = await s.get(DeviceRow, "a840410001850001")
        two = await s.get(DeviceRow, "a840410001850002")
        assert one is not None and two is not None
        assert (one.notes, one.heartbeat_s) == ("换过电池", None)
        assert (two.model, two.heartbeat_s, two.notes) == ("bosch-tps110", 60, "")


async def test_every_imported_change_is_in_the_audit_log_as_the_importer(sessions: Any) -> None:
    """Provisions and field changes, each with its before and after, as the technician who
    imported them (source ``import``); nothing for unchanged rows, nothing secret."""
    from gateway.directory.audit import Actor
    from gateway.infra.storage.schema import AuditRow

    async def audits_since(n: int) -> list[Any]:
        async with sessions() as s:
            rows = (await s.execute(select(AuditRow).order_by(AuditRow.id))).scalars().all()
        return list(rows)[n:]

    first = "dev_eui,model,berth_id,notes\na840410001819002,nbiot-geomag,,备用\n"
    assert (await run(sessions, first, kind="sensor"))["imported"]
    start = len(await audits_since(0))
    who = Actor.cli("tech-li")
    data = (
        "dev_eui,model,berth_id,notes\n"
        "a840410001819001,nwave-nps405,,新装\n"
        "a840410001819002,nbiot-geomag,,换了电池\n"
    )
    doc = await run(sessions, data, kind="sensor", actor=who)
    assert doc["imported"], doc["errors"]
    got = {(a.kind, a.key, a.action): a for a in await audits_since(start)}
    assert set(got) == {
        ("device", "a840410001819001", "provision"), ("device", "a840410001819002", "update")
    }  # fmt: skip
    new, changed = (
        got[("device", "a840410001819001", "provision")],
        got[("device", "a840410001819002", "update")],
    )
    assert (new.actor, new.source, new.before) == ("cli:tech-li", "import", None)
    assert new.after["notes"] == "新装" and new.after["model"] == "nwave-nps405"
    assert changed.after == {"notes": "换了电池"} and changed.before == {"notes": "备用"}
    again = await run(sessions, data, kind="sensor", actor=who)  # unchanged: nothing logged
    assert again["imported"] and len(await audits_since(start)) == 2


async def test_a_device_written_between_the_diff_and_the_write_is_an_integrity_error(
    sessions: Any,
) -> None:
    """The device rows go in as plain driver rows: a clash still raises SQLAlchemy's
    IntegrityError (which ``import_file`` answers with "run it again"), and nothing stays."""
    from sqlalchemy.exc import IntegrityError

    from gateway.directory.bulk.engine import Outcome, _Plan
    from gateway.directory.bulk.parse import parse

    key = "a840410001898001"
    parsed = parse(f"dev_eui,model\n{key},nwave-nps405\n".encode(), "csv", LIMITS, "sensor")
    seq = await head(sessions)

    async def clash() -> None:
        async with sessions.begin() as s:
            plan = _Plan(Outcome(dry_run=False, retire_missing=False), NOW)
            await plan.devices(s, parsed, retire=False)
            s.add(DeviceRow(id=key, kind="berth_sensor", protocol="lorawan", model="nwave-nps405",
                            address=key, lifecycle="provisioned", notes="the other writer's",
                            created_at=NOW, updated_at=NOW))  # fmt: skip
            await s.flush()  # another writer's row, after the diff saw none
            await plan.write(s, NOW, REALM, None)

    with pytest.raises(IntegrityError):
        await clash()
    async with sessions() as s:
        assert await s.get(DeviceRow, key) is None
    assert await head(sessions) == seq
