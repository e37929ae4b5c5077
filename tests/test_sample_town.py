"""The shipped sample town (山丹县) and the town-file validation it relies on."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from gateway.directory.town import (
    SAMPLE_TOWN,
    Counting,
    SiteKind,
    Town,
    TownFileError,
    load_town,
    parse_town,
)

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "scripts" / "make_sample_town.py"
CENTRE = (38.78, 101.08)
MODELS = {"nwave-nps405": 0.40, "bosch-tps110": 0.35, "nbiot-geomag": 0.25}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def inside(lon: float, lat: float, ring: list[tuple[float, float]]) -> bool:
    result = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            result = not result
    return result


@pytest.fixture(scope="module")
def town() -> Town:
    return load_town(None)


def shipped_bytes() -> bytes:
    return resources.files("gateway.data").joinpath(SAMPLE_TOWN).read_bytes()


# --------------------------------------------------------------------------- the shipped file


def test_town_is_marked_as_sample(town: Town) -> None:
    assert town.town.name == "山丹县 (sample data)"
    assert town.town.timezone == "Asia/Shanghai"
    assert town.town.sample is True
    note = town.town.note.lower()
    assert "sample" in note
    assert "not the bureau's survey" in note
    assert "not real" in note


def test_file_starts_with_generated_sample_header() -> None:
    text = shipped_bytes().decode("utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    joined = "\n".join(header)
    assert header, "the file must start with a comment header"
    assert "scripts/make_sample_town.py" in joined
    assert "SAMPLE DATA" in joined.upper()


def test_24_car_parks_with_1382_berths(town: Town) -> None:
    parks = [s for s in town.sites if s.kind is SiteKind.CAR_PARK]
    assert len(parks) == 24
    assert sum(s.capacity for s in parks) == 1382
    assert all(20 <= s.capacity <= 150 for s in parks)
    by_name = {s.name: s for s in parks}
    assert by_name["市民大厅停车场"].id == "cp-shiminting"
    assert by_name["浙宁商厦停车场"].id == "cp-zhening"
    for name in ("同和医院", "县人民医院", "客运站", "火车站", "文化广场", "大佛寺"):
        assert any(name in s.name for s in parks), name
    assert all(s.id.startswith("cp-") for s in parks)


def test_car_park_counting(town: Town) -> None:
    parks = [s for s in town.sites if s.kind is SiteKind.CAR_PARK]
    guided = [s for s in parks if s.counting is Counting.BERTH_SENSORS]
    assert 3 <= len(guided) <= 5
    per_site = Counter(b.site for b in town.berths)
    for s in guided:
        assert per_site[s.id] == s.capacity
        assert s.controller_id is None
    for s in parks:
        if s.counting is Counting.ENTRY_EXIT:
            assert s.controller_id == "ctl-" + s.id.removeprefix("cp-")
            assert per_site[s.id] == 0


def test_on_street_segments(town: Town) -> None:
    segments = [s for s in town.sites if s.kind is SiteKind.ON_STREET]
    assert 8 <= len(segments) <= 12
    names = " ".join(s.name for s in segments)
    for street in ("南大街", "北大街", "东大街", "西大街", "文化街"):
        assert street in names
    for seg in segments:
        assert seg.counting is Counting.BERTH_SENSORS
        assert re.fullmatch(r"st-[a-z]+-\d+", seg.id)
        berths = [b for b in town.berths if b.site == seg.id]
        assert 15 <= len(berths) <= 40
        assert len(berths) == seg.capacity
        # numbered as painted, in order along the kerb, about 6 m apart, on a straight line
        assert [b.number for b in berths] == [f"{i:03d}" for i in range(1, len(berths) + 1)]
        assert all(b.id == f"{seg.id}-{b.number}" for b in berths)
        for a, b in itertools.pairwise(berths):
            assert 5.0 <= distance_m(a.lat, a.lon, b.lat, b.lon) <= 7.0, (a.id, b.id)
        first, last = berths[0], berths[-1]
        span = distance_m(first.lat, first.lon, last.lat, last.lon)
        assert span == pytest.approx(6.0 * (len(berths) - 1), rel=0.02)
    assert any(s.segment_class == "A" for s in segments)
    assert {s.segment_class for s in town.sites} <= {"A", "B", "C"}


def test_every_sensed_berth_has_exactly_one_sensor(town: Town) -> None:
    bound = Counter(s.berth for s in town.sensors)
    sensed_sites = {s.id for s in town.sites if s.counting is Counting.BERTH_SENSORS}
    on_street = {s.id for s in town.sites if s.kind is SiteKind.ON_STREET}
    street_berths = [b for b in town.berths if b.site in on_street]
    assert street_berths
    assert all(bound[b.id] == 1 for b in street_berths)
    assert all(bound[b.id] == 1 for b in town.berths if b.site in sensed_sites)
    assert len(town.sensors) == len(town.berths)


def test_sensor_models_and_dev_euis(town: Town) -> None:
    by_model = Counter(s.model for s in town.sensors)
    assert set(by_model) == set(MODELS)
    for model, share in MODELS.items():
        assert by_model[model] / len(town.sensors) == pytest.approx(share, abs=0.05), model
    assert all(re.fullmatch(r"[0-9a-f]{16}", s.dev_eui) for s in town.sensors)
    prefixes = {m: {s.dev_eui[:6] for s in town.sensors if s.model == m} for m in MODELS}
    assert all(len(p) == 1 for p in prefixes.values()), prefixes
    assert len({next(iter(p)) for p in prefixes.values()}) == 3
    with_heartbeat = [s for s in town.sensors if s.heartbeat_s is not None]
    assert 0 < len(with_heartbeat) < 0.1 * len(town.sensors)


def test_nbiot_dev_euis_carry_a_valid_imei(town: Town) -> None:
    for s in town.sensors:
        if s.model != "nbiot-geomag":
            continue
        assert s.dev_eui[0] == "0"
        digits = [int(c) for c in s.dev_eui[1:]]
        total = sum(
            d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)
        )
        assert total % 10 == 0, s.dev_eui


def test_every_coordinate_is_within_5_km_of_the_town(town: Town) -> None:
    points = [(s.id, s.lat, s.lon) for s in town.sites]
    points += [(b.id, b.lat, b.lon) for b in town.berths]
    points += [(z.id, lat, lon) for z in town.zones for lon, lat in z.polygon]
    points += [(st.id, lat, lon) for st in town.streets for lon, lat in st.line]
    for ident, lat, lon in points:
        assert distance_m(lat, lon, *CENTRE) <= 5_000, ident


def test_zones(town: Town) -> None:
    kinds = {z.kind.value: z for z in town.zones}
    assert set(kinds) == {"paid", "no_parking", "ambulance_lane", "market", "fire_lane"}
    assert "同和医院" in kinds["ambulance_lane"].name
    assert "文化街" in kinds["market"].name
    zones = {z.id: z for z in town.zones}
    referenced = [s for s in town.sites if s.zone is not None]
    assert any(s.id == "cp-shiminting" for s in referenced)
    for s in referenced:
        assert inside(s.lon, s.lat, list(zones[s.zone].polygon)), s.id
    keep_clear = [z for z in town.zones if z.kind.value != "paid"]
    for b in town.berths:
        for z in keep_clear:
            assert not inside(b.lon, b.lat, list(z.polygon)), (b.id, z.id)


def test_streets_outline_the_town_around_its_crossroads(town: Town) -> None:
    streets = {st.name: st for st in town.streets}
    assert {"北大街", "南大街", "东大街", "西大街", "文化街", "新建街", "清泉路"} <= set(streets)
    main = [st for st in town.streets if st.kind.value == "main"]
    assert len(main) == 4
    crossroads = (101.08, 38.78)  # 鼓楼十字: every main street starts there
    assert all(st.line[0] == crossroads for st in main)
    for s in town.sites:  # every street with kerbside berths is drawn ("东大街北侧路内泊位")
        if s.kind.value == "on_street":
            assert any(s.name.startswith(name) for name in streets), s.name


# --------------------------------------------------------------------------- the generator


def run_generator(out: Path, hash_seed: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, str(GENERATOR), "-o", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_generator_is_deterministic_and_matches_shipped_file(tmp_path: Path) -> None:
    outputs = []
    for i, hash_seed in enumerate(("0", "12345")):
        out = tmp_path / f"town{i}.toml"
        result = run_generator(out, hash_seed)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] == shipped_bytes(), "shipped file is stale: run scripts/make_sample_town.py"
    check = run_generator(tmp_path / "town0.toml", "1", "--check")
    assert check.returncode == 0, check.stderr


def test_generator_check_flags_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "stale.toml"
    stale.write_text("# edited by hand\n", encoding="utf-8")
    result = run_generator(stale, "0", "--check")
    assert result.returncode == 1
    assert "stale" in result.stderr
    assert stale.read_text(encoding="utf-8") == "# edited by hand\n"


# --------------------------------------------------------------------------- schema validation

BASE = """
[town]
name = "t"

[[sites]]
id = "st-a-1"
name = "A"
kind = "on_street"
lat = 38.78
lon = 101.08
capacity = {capacity}
counting = "berth_sensors"
segment_class = "A"

[[berths]]
id = "st-a-1-001"
site = "st-a-1"
number = "001"
lat = 38.78
lon = 101.08

[[berths]]
id = "{second_berth}"
site = "st-a-1"
number = "002"
lat = 38.78005
lon = 101.08

[[sensors]]
dev_eui = "70b3d59ba0000001"
model = "nwave-nps405"
berth = "{sensor_berth}"
"""


def town_text(**over: object) -> str:
    values: dict[str, object] = {
        "capacity": 2,
        "second_berth": "st-a-1-002",
        "sensor_berth": "st-a-1-001",
    }
    values.update(over)
    return BASE.format(**values)


def test_minimal_town_is_valid() -> None:
    town = parse_town(town_text())
    assert len(town.berths) == 2


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"second_berth": "st-a-1-001"}, "duplicate berth id(s): st-a-1-001"),
        ({"sensor_berth": "st-a-1-099"}, "sensor 70b3d59ba0000001: unknown berth 'st-a-1-099'"),
        ({"capacity": 3}, "site st-a-1: capacity 3 but 2 berths listed"),
    ],
    ids=["duplicate-id", "unknown-berth", "capacity-mismatch"],
)
def test_invalid_town_names_the_entry(over: dict[str, object], expected: str) -> None:
    with pytest.raises(TownFileError) as info:
        parse_town(town_text(**over), "bad.toml")
    message = str(info.value)
    assert message.startswith("bad.toml: invalid town")
    assert expected in message


def test_duplicate_site_and_sensor_ids_are_rejected() -> None:
    text = town_text() + (
        '\n[[sites]]\nid = "st-a-1"\nname = "again"\nkind = "car_park"\nlat = 38.78\n'
        'lon = 101.08\ncapacity = 10\ncounting = "entry_exit"\nsegment_class = "B"\n'
        '\n[[sensors]]\ndev_eui = "70B3D59BA0000001"\nmodel = "bosch-tps110"\n'
        'berth = "st-a-1-002"\n'
    )
    with pytest.raises(TownFileError) as info:
        parse_town(text)
    assert "duplicate site id(s): st-a-1" in str(info.value)
    assert "duplicate sensor dev_eui id(s): 70b3d59ba0000001" in str(info.value)


def test_not_toml_is_a_town_file_error() -> None:
    with pytest.raises(TownFileError, match=r"x\.toml: not valid TOML"):
        parse_town("[town\nname=", "x.toml")


def test_deeply_nested_toml_and_non_utf8_files_are_town_file_errors(tmp_path: Path) -> None:
    """Found by ``make fuzz`` (file.town): tomllib recurses per nested array, so a deep one
    was a RecursionError out of the loader, and a file that is not UTF-8 a
    UnicodeDecodeError; both are now the typed refusal, naming the file."""
    with pytest.raises(TownFileError, match=r"deep\.toml: not valid TOML: nested too deeply"):
        parse_town("a = " + "[" * 5000, "deep.toml")
    with pytest.raises(TownFileError, match="nested too deeply"):
        parse_town("a = " + "{b = " * 5000, "deep.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[town]\nname = "\xe9"\n')
    with pytest.raises(TownFileError, match=r"latin1\.toml: not UTF-8 text \(byte 15\)"):
        load_town(path)
