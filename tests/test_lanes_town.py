"""Lanes in the town file: validated at the edge, shipped in the sample town, imported into
the database idempotently (both backends), cameras moved between lanes by a re-import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from drivers.gates.bus import parse_bus_url
from gateway.directory.town import Town, TownFileError, check_bus_url, load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import ChangeRow, LaneRow

T0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)

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

[[sites]]
id = "st-b"
name = "B"
kind = "on_street"
lat = 38.78
lon = 101.08
capacity = 0
counting = "berth_sensors"
segment_class = "B"
"""


def lane(
    id: str,
    camera: str,
    unit: int,
    site: str = "cp-a",
    kind: str = "entry",
    bus: str = "tcp://127.0.0.1:1502",
) -> str:
    return (
        f'\n[[lanes]]\nid = "{id}"\nsite = "{site}"\nkind = "{kind}"\ncamera = "{camera}"\n'
        f'gate = {{ bus = "{bus}", unit = {unit}, model = "example-relay4" }}\n'
    )


def test_a_valid_lane_parses_with_its_gate_and_display() -> None:
    town = parse_town(BASE + lane("ln-1", "cam-1", 1) + "display = { lines = 2 }\n")
    (ln,) = town.lanes
    assert (ln.site, ln.kind, ln.camera, ln.gate.unit) == ("cp-a", "entry", "cam-1", 1)
    assert ln.display is not None and ln.display.lines == 2 and ln.display.voice


@pytest.mark.parametrize(
    ("lanes", "expected"),
    [
        (lane("ln-1", "cam-1", 1, site="cp-x"), "lane ln-1: unknown site 'cp-x'"),
        (lane("ln-1", "cam-1", 1, site="st-b"), "lane ln-1: site st-b is not a car park"),
        (lane("ln-1", "cam-1", 1) + lane("ln-1", "cam-2", 2), "duplicate lane id(s): ln-1"),
        (
            lane("ln-1", "cam-1", 1) + lane("ln-2", "cam-1", 2, kind="exit"),
            "camera(s) in more than one lane: cam-1",
        ),
        (
            lane("ln-1", "cam-1", 1) + lane("ln-2", "cam-2", 1),
            "gate controller(s) in more than one lane: tcp://127.0.0.1:1502 unit 1",
        ),
        (lane("ln-1", "cam-1", 0), "lanes.0.gate.unit"),
        (lane("ln-1", "cam-1", 1).replace('"entry"', '"both"'), "lanes.0.kind"),
        (lane("ln-1", "cam-1", 1, bus="udp://1.2.3.4:502"), "scheme must be tcp:// or serial://"),
        (
            lane("ln-1", "cam-1", 1) + 'display = { model = "ledmaster-9000" }\n',
            "unknown display model 'ledmaster-9000'",
        ),
    ],
)
def test_bad_lanes_are_refused_and_named(lanes: str, expected: str) -> None:
    with pytest.raises(TownFileError) as err:
        parse_town(BASE + lanes)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "tcp://127.0.0.1:1502",
        "tcp://gate-server.local:502",
        "serial:///dev/ttyUSB0",
        "serial:///dev/ttyS1?baudrate=19200&parity=E&stopbits=1",
    ],
)
def test_good_bus_urls(url: str) -> None:
    spelt = check_bus_url(url)
    assert parse_bus_url(spelt) == parse_bus_url(url)  # kept in its one spelling, same bus
    assert check_bus_url(spelt) == spelt


def test_one_bus_spelt_two_ways_is_one_spelling() -> None:
    assert check_bus_url("tcp://Gate-Box.local:502/") == check_bus_url("tcp://gate-box.local")
    assert check_bus_url("serial:///dev/ttyS1?stopbits=1&baudrate=9600") == check_bus_url(
        "serial:///dev/ttyS1?parity=n"
    )
    assert check_bus_url("tcp://h:502?timeout_ms=300") != check_bus_url("tcp://h:502")


@pytest.mark.parametrize(
    "url",
    [
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:70000",
        "tcp://:502",
        "tcp://h:502/x",
        "serial://dev/ttyUSB0",
        "serial:///dev/ttyUSB0?speed=9600",
        "modbus://h:502",
    ],
)
def test_bad_bus_urls(url: str) -> None:
    with pytest.raises(ValueError, match="bus"):
        check_bus_url(url)


def test_the_sample_town_has_entry_and_exit_lanes_at_the_first_free_hour_car_parks() -> None:
    town = load_town(None)
    kinds: dict[str, set[str]] = {}
    for ln in town.lanes:
        kinds.setdefault(ln.site, set()).add(ln.kind)
    assert kinds["cp-shiminting"] == kinds["cp-zhening"] == {"entry", "exit"}
    assert len(kinds) >= 3 and all(k == {"entry", "exit"} for k in kinds.values())
    buses = {ln.gate.bus.split(":", 1)[0] for ln in town.lanes}
    assert buses == {"tcp", "serial"}  # Modbus TCP and RTU on RS-485
    assert len({ln.gate.bus for ln in town.lanes}) >= 2


# --------------------------------------------------------------------------- the import


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield sessionmaker_for(engine)
    await engine.dispose()


async def lanes_in(sessions: Any) -> dict[str, tuple[str, str, int]]:
    async with sessions() as db:
        rows = (await db.execute(select(LaneRow))).scalars()
        return {r.id: (r.camera_id, r.kind, r.gate_unit) for r in rows}


async def imported(sessions: Any, town: Town) -> dict[str, dict[str, int]]:
    async with sessions.begin() as db:
        return (await import_town(db, town, T0)).as_dict()


async def test_the_sample_towns_lanes_import_once(sessions: Any) -> None:
    town = load_town(None)
    first = await imported(sessions, town)
    assert first["created"]["lanes"] == len(town.lanes)
    again = await imported(sessions, town)
    assert again["created"] == {} and again["updated"] == {}
    stored = await lanes_in(sessions)
    assert stored["ln-shiminting-out"] == ("cam-shiminting-out", "exit", 2)
    async with sessions() as db:
        kinds = set((await db.execute(select(ChangeRow.kind))).scalars())
    assert "lane" in kinds


async def test_a_reimport_moves_and_swaps_cameras_and_drops_a_lane_that_lost_its_own(
    sessions: Any,
) -> None:
    await imported(sessions, parse_town(BASE + lane("ln-1", "cam-1", 1) + lane("ln-2", "cam-2", 2)))
    # ln-1 and ln-2 swap cameras; ln-3 is new with cam-3 ...
    swapped = lane("ln-1", "cam-2", 1) + lane("ln-2", "cam-1", 2) + lane("ln-3", "cam-3", 3)
    report = await imported(sessions, parse_town(BASE + swapped))
    assert report["updated"]["lanes"] == 2 and report["created"]["lanes"] == 1
    assert await lanes_in(sessions) == {
        "ln-1": ("cam-2", "entry", 1),
        "ln-2": ("cam-1", "entry", 2),
        "ln-3": ("cam-3", "entry", 3),
    }
    # ... then a file without ln-1 gives its camera to ln-4: ln-1 goes; ln-2 (absent, its
    # camera not claimed) stays, as devices do.
    later = lane("ln-3", "cam-3", 3) + lane("ln-4", "cam-2", 4)
    await imported(sessions, parse_town(BASE + later))
    assert await lanes_in(sessions) == {
        "ln-2": ("cam-1", "entry", 2),
        "ln-3": ("cam-3", "entry", 3),
        "ln-4": ("cam-2", "entry", 4),
    }
    async with sessions() as db:
        ops = (
            await db.execute(select(ChangeRow.key, ChangeRow.op).where(ChangeRow.kind == "lane"))
        ).all()
    assert ("ln-1", "delete") in ops
