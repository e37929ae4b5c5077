"""The town's streets: ``[[streets]]`` in the town file, validated, imported with the rest of
the town (both backends: created, changed, dropped when the file drops them, each audited and
on the change feed) and read back as the one map draws them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from gateway.directory import documents
from gateway.directory.town import TownFileError, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import AuditRow, ChangeRow

T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
BASE = """
[town]
name = "t"

[[sites]]
id = "cp-a"
name = "A"
kind = "car_park"
lat = 38.78
lon = 101.08
capacity = 10
counting = "entry_exit"
segment_class = "A"
"""


def street(id: str, name: str, line: str, kind: str = "main") -> str:
    return f'\n[[streets]]\nid = "{id}"\nname = "{name}"\nkind = "{kind}"\nline = {line}\n'


NORTH = street("rd-n", "北大街", "[[101.08, 38.78], [101.08, 38.79]]")
EAST = street("rd-e", "东大街", "[[101.08, 38.78], [101.09, 38.78]]")


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield sessionmaker_for(engine)
    await engine.dispose()


async def imported(sessions: Any, text: str) -> list[documents.StreetLine]:
    async with sessions.begin() as db:
        await import_town(db, parse_town(text, "t.toml"), T0)
    async with sessions() as db:
        return await documents.town_streets(db)


async def street_changes(sessions: Any) -> list[tuple[str, str]]:
    async with sessions() as db:
        rows = (await db.execute(select(ChangeRow).where(ChangeRow.kind == "street"))).scalars()
        feed = [(r.key, r.op) for r in rows]
        audited = (await db.execute(select(AuditRow).where(AuditRow.kind == "street"))).scalars()
        assert sorted(feed) == sorted((a.key, a.action) for a in audited)  # audited as fed
        return feed


async def test_streets_are_imported_changed_and_dropped_with_the_file(sessions: Any) -> None:
    got = await imported(sessions, BASE + NORTH + EAST)
    assert [(s.id, s.name, s.kind) for s in got] == [
        ("rd-e", "东大街", "main"),
        ("rd-n", "北大街", "main"),
    ]
    assert got[1].line == ((101.08, 38.78), (101.08, 38.79))
    assert await imported(sessions, BASE + NORTH + EAST) == got  # idempotent: nothing new
    assert sorted(await street_changes(sessions)) == [("rd-e", "import"), ("rd-n", "import")]

    longer = street("rd-n", "北大街", "[[101.08, 38.78], [101.08, 38.79], [101.081, 38.80]]")
    got = await imported(sessions, BASE + longer)  # 东大街 is no longer in the file
    assert [s.id for s in got] == ["rd-n"] and len(got[0].line) == 3
    assert sorted(await street_changes(sessions)) == [
        ("rd-e", "delete"), ("rd-e", "import"), ("rd-n", "import"), ("rd-n", "import"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (street("rd-x", "X", "[[101.08, 38.78]]"), "streets"),  # one point is no line
        (street("rd-x", "X", "[[181.0, 38.78], [101.08, 38.79]]"), "streets"),
        (street("rd-x", "X", "[[101.08, 38.78], [101.08, 38.79]]", kind="highway"), "kind"),
        (NORTH + NORTH, "street"),  # the same id twice
    ],
)
def test_a_bad_street_is_refused_and_named(extra: str, expected: str) -> None:
    with pytest.raises(TownFileError, match=expected):
        parse_town(BASE + extra, "t.toml")
