"""Table tests for charging bills (charging/billing.py, charging/tariff_file.py)."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from charging.billing import (
    Bill,
    ChargingSessionData,
    ChargingTariffBook,
    bill,
    energy_by_band,
    parking_waiver,
    summary,
)
from charging.tariff_file import (
    ChargingTariffFileError,
    load_charging_tariffs,
    load_sample_charging_tariffs,
    loads_charging_tariffs,
)

CST = ZoneInfo("Asia/Shanghai")
SAMPLE = load_sample_charging_tariffs(CST)

# A small book with round numbers: valley 22–06, flat 06–18, peak 18–22.
CUSTOM = """
zone = "Asia/Shanghai"
[[version]]
id = "c1"
effective_from = "2026-01-01T00:00:00+08:00"
bands = [
  { name = "valley", start = "22:00", end = "06:00" },
  { name = "flat", start = "06:00", end = "18:00" },
  { name = "peak", start = "18:00", end = "22:00" },
]
parking = [
  { site_id = "w", name = "while", waive_parking_while_charging = true },
  { site_id = "m", waive_parking_minutes = 90 },
]
[[version.rates]]
site_class = "X"
energy_fen_per_kwh = { valley = 30, flat = 60, peak = 100 }
service_fen_per_kwh = 50
idle_grace_minutes = 15
idle_fen = 100
idle_unit_minutes = 10
idle_cap_fen = 500
[[version.rates]]
site_class = "Y"
energy_fen_per_kwh = { valley = 30, flat = 60, peak = 100 }
service_fen_per_kwh = { valley = 10, flat = 20, peak = 40 }
[[version.rates]]
site_ids = ["own"]
energy_fen_per_kwh = { valley = 1, flat = 1, peak = 1 }
service_fen_per_kwh = 0
"""
BOOK: ChargingTariffBook = loads_charging_tariffs(CUSTOM, "custom.toml", zone=CST)


def at(day: str, hm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=CST)


D = "2026-11-28"
N = "2026-11-29"


def check_shape(b: Bill) -> None:
    assert b.total_fen == sum(line.amount_fen for line in b.lines)
    assert b.total_fen == b.energy_fen + b.service_fen + b.idle_fen
    assert b.energy_wh == sum(line.wh for line in b.lines if line.kind == "energy")
    for line in b.lines:
        assert line.start <= line.end
        assert line.amount_fen >= 0
        assert line.wh >= 0


def energy(b: Bill) -> list[tuple[str, str, str | None, int, int]]:
    """(start, end, band, wh, fen) of the energy lines, times as local HH:MM."""
    return [
        (f"{line.start:%H:%M}", f"{line.end:%H:%M}", line.band, line.wh, line.amount_fen)
        for line in b.lines
        if line.kind == "energy"
    ]


# --- the table ----------------------------------------------------------------------------


def test_night_valley_charge_across_midnight_is_one_line() -> None:
    # Sample class A, valley 23:00–07:00: 40 kWh between 23:30 and 06:30.
    session = ChargingSessionData(
        start=at(D, "23:30"),
        stop=at(N, "06:30"),
        meter_start_wh=100_000,
        meter_stop_wh=140_000,
        samples=[(at(N, "02:00"), 120_000), (at(N, "04:00"), 135_000)],
    )
    b = bill(SAMPLE, "cp-zhening", "A", session)
    check_shape(b)
    assert b.tariff_version == "2026-07"
    assert energy(b) == [("23:30", "06:30", "valley", 40_000, 1160)]  # 40 kWh × 29 fen
    service = [line for line in b.lines if line.kind == "service"]
    assert [(s.wh, s.amount_fen, s.band) for s in service] == [(40_000, 2000, None)]
    assert b.idle_fen == 0  # charging ran until the stop
    assert b.total_fen == 3160
    assert b.charging_end == at(N, "06:30")


def test_session_across_a_band_edge() -> None:
    session = ChargingSessionData(
        start=at(D, "17:00"),
        stop=at(D, "19:00"),
        meter_start_wh=0,
        meter_stop_wh=30_000,
        samples=[(at(D, "18:00"), 10_000)],
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert energy(b) == [
        ("17:00", "18:00", "flat", 10_000, 600),
        ("18:00", "19:00", "peak", 20_000, 2000),
    ]
    assert b.service_fen == 1500
    assert b.total_fen == 4100


def test_interpolation_splits_a_reading_interval_at_the_edge() -> None:
    # One interval 17:30–18:30 with 10 kWh: half before 18:00 (flat), half after (peak).
    session = ChargingSessionData(
        start=at(D, "17:30"), stop=at(D, "18:30"), meter_start_wh=7, meter_stop_wh=10_007
    )
    b = bill(BOOK, "s", "Y", session)
    check_shape(b)
    assert energy(b) == [
        ("17:30", "18:00", "flat", 5000, 300),
        ("18:00", "18:30", "peak", 5000, 500),
    ]
    service = [(s.band, s.wh, s.amount_fen) for s in b.lines if s.kind == "service"]
    assert service == [("flat", 5000, 100), ("peak", 5000, 200)]  # per-band service fee
    assert b.total_fen == 1100


def test_only_start_and_stop_readings_across_midnight_are_spread_by_time() -> None:
    # 21:00 → 07:00 next day, 20 kWh, no samples: 2 kWh per hour.
    session = ChargingSessionData(
        start=at(D, "21:00"), stop=at(N, "07:00"), meter_start_wh=1_000, meter_stop_wh=21_000
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert energy(b) == [
        ("21:00", "22:00", "peak", 2000, 200),
        ("22:00", "06:00", "valley", 16_000, 480),
        ("06:00", "07:00", "flat", 2000, 120),
    ]
    assert b.energy_wh == 20_000
    assert b.service_fen == 1000


@pytest.mark.parametrize(
    ("idle_end", "fen", "capped"),
    [
        ("20:10", 0, False),  # left within the 15 min grace
        ("20:15", 0, False),  # exactly at the end of the grace
        ("20:15:01", 100, False),  # one started 10 min unit
        ("20:25", 100, False),
        ("20:40", 300, False),  # 25 min → 3 units
        ("21:05", 500, False),  # 50 min → 5 units = the cap
        ("21:06", 500, True),  # 6 units, capped at 500
        ("23:59", 500, True),
    ],
)
def test_idle_fee_after_grace_with_cap(idle_end: str, fen: int, capped: bool) -> None:
    session = ChargingSessionData(
        start=at(D, "19:00"),
        stop=at(D, "20:30"),  # the transaction ended; the car stayed until idle_end
        meter_start_wh=0,
        meter_stop_wh=10_000,
        charging_end=at(D, "20:00"),
        idle_end=at(D, idle_end),
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert b.idle_fen == fen
    idle = [line for line in b.lines if line.kind == "idle"]
    if fen:
        (line,) = idle
        assert line.start == at(D, "20:15") and line.end == at(D, idle_end)
        assert ("capped at 500 fen" in line.rule) == capped
    else:
        assert idle == []
    # energy stops at the reported charging end: 10 kWh in peak 19:00–20:00
    assert energy(b) == [("19:00", "20:00", "peak", 10_000, 1000)]


def test_charging_end_is_derived_from_the_readings() -> None:
    # Energy rises until 19:00, then stays flat until the stop at 20:00: idle from 19:15.
    session = ChargingSessionData(
        start=at(D, "18:00"),
        stop=at(D, "20:00"),
        meter_start_wh=0,
        meter_stop_wh=5000,
        samples=[(at(D, "18:30"), 2500), (at(D, "19:00"), 5000), (at(D, "19:30"), 5000)],
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert b.charging_end == at(D, "19:00")
    assert b.idle_fen == 500  # 45 min → 5 started 10 min units = the cap, not over it
    assert energy(b) == [("18:00", "19:00", "peak", 5000, 500)]


def test_readings_after_the_reported_charging_end_count_at_that_end() -> None:
    # The charger said SuspendedEV at 19:00, but a later reading is higher: the energy is
    # billed (at 19:00, in its band) and the idle clock still starts at 19:00.
    session = ChargingSessionData(
        start=at(D, "17:00"),
        stop=at(D, "20:00"),
        meter_start_wh=0,
        meter_stop_wh=7000,
        samples=[(at(D, "18:00"), 4000), (at(D, "19:00"), 6000), (at(D, "19:30"), 7000)],
        charging_end=at(D, "19:00"),
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert b.energy_wh == 7000
    assert energy(b) == [
        ("17:00", "18:00", "flat", 4000, 240),
        ("18:00", "19:00", "peak", 3000, 300),
    ]
    assert b.charging_end == at(D, "19:00")
    assert b.idle_fen == 500  # 19:15 → 20:00: 5 units


def test_meter_reset_is_a_new_baseline() -> None:
    # 5000 → 6000, reset to 200, → 1200: 1000 + 1000 Wh; the interval of the drop bills 0.
    session = ChargingSessionData(
        start=at(D, "10:00"),
        stop=at(D, "11:30"),
        meter_start_wh=5000,
        meter_stop_wh=1200,
        samples=[(at(D, "10:30"), 6000), (at(D, "11:00"), 200)],
    )
    b = bill(BOOK, "s", "X", session)
    check_shape(b)
    assert b.energy_wh == 2000
    assert energy(b) == [("10:00", "11:30", "flat", 2000, 120)]


def test_a_spurious_low_reading_is_not_counted_twice() -> None:
    # 5000, 6000, 100 (glitch), 7000: the climb back from 100 would bill 6900 Wh; it is 2000.
    samples = [(at(D, "10:30"), 6000), (at(D, "10:40"), 100), (at(D, "11:00"), 7000)]
    session = ChargingSessionData(
        start=at(D, "10:00"), stop=at(D, "11:00"), meter_start_wh=5000, samples=samples
    )
    assert bill(BOOK, "s", "X", session).energy_wh == 2000


def test_one_more_wh_never_takes_wh_from_a_band() -> None:
    # 17:53–22:07 crosses flat (7 min), peak (240 min), valley (7 min). Splitting by floored
    # cumulative shares would give peak 35 Wh of 36 but 34 Wh of 37 (the Alabama paradox);
    # the largest-divisor rule never takes a Wh away from a band when the energy grows.
    def peak(wh: int) -> int:
        s = ChargingSessionData(
            start=at(D, "17:53"), stop=at(D, "22:07"), meter_start_wh=0, meter_stop_wh=wh
        )
        return sum(line.wh for line in bill(BOOK, "s", "X", s).lines if line.band == "peak")

    shares = [peak(wh) for wh in range(200)]
    assert shares == sorted(shares)
    assert (peak(36), peak(37)) == (34, 35)


def test_back_dated_duplicated_readings_give_the_same_bill() -> None:
    times = [f"{h:02d}:{m:02d}" for h in range(16, 21) for m in (0, 20, 40)]
    in_order = [(at(D, hm), 1000 + 500 * i) for i, hm in enumerate(times)]
    late = [*in_order[::3], *reversed(in_order), in_order[4], in_order[4]]  # queued, re-sent

    def session(samples: list[tuple[dt.datetime, int]]) -> ChargingSessionData:
        return ChargingSessionData(
            start=at(D, "16:00"), stop=at(D, "21:00"), meter_start_wh=1000, samples=samples
        )

    a = bill(BOOK, "s", "X", session(in_order))
    b = bill(BOOK, "s", "X", session(late))
    assert a == b
    assert a.energy_wh == in_order[-1][1] - 1000


def test_readings_outside_the_session_are_ignored() -> None:
    session = ChargingSessionData(
        start=at(D, "10:00"),
        stop=at(D, "11:00"),
        samples=[
            (at(D, "09:00"), 0),
            (at(D, "10:00"), 1000),
            (at(D, "11:00"), 3000),
            (at(D, "12:00"), 9000),
        ],
    )
    assert bill(BOOK, "s", "X", session).energy_wh == 2000


def test_rounding_is_half_up_per_line() -> None:
    # site "own": 1 fen/kWh everywhere; 1499 Wh → 1.499 → 1 fen; 1500 Wh → 1.5 → 2 fen.
    def total(wh: int) -> int:
        s = ChargingSessionData(
            start=at(D, "10:00"), stop=at(D, "11:00"), meter_start_wh=0, meter_stop_wh=wh
        )
        return bill(BOOK, "own", "whatever", s).total_fen

    assert [total(w) for w in (0, 499, 500, 1499, 1500, 2500)] == [0, 0, 1, 1, 2, 3]


def test_a_session_without_energy_costs_nothing() -> None:
    session = ChargingSessionData(
        start=at(D, "10:00"),
        stop=at(D, "14:00"),
        meter_start_wh=5000,
        meter_stop_wh=5000,
        idle_end=at(D, "18:00"),
    )
    b = bill(BOOK, "w", "X", session)
    assert (b.total_fen, b.lines, b.energy_wh) == (0, (), 0)
    assert parking_waiver(BOOK, "w", session) is None
    no_readings = ChargingSessionData(start=at(D, "10:00"), stop=at(D, "14:00"))
    assert bill(BOOK, "s", "X", no_readings).total_fen == 0


def test_version_in_force_at_the_start_prices_the_whole_session() -> None:
    session = ChargingSessionData(
        start=at("2026-06-30", "23:00"),
        stop=at("2026-07-01", "03:00"),
        meter_start_wh=0,
        meter_stop_wh=20_000,
    )
    b = bill(SAMPLE, "cp-zhening", "A", session)
    assert b.tariff_version == "2025-01"
    assert b.service_fen == 1200  # 60 fen/kWh (2026-07 posts 50)
    later = ChargingSessionData(
        start=at("2026-07-01", "00:00"),
        stop=at("2026-07-01", "03:00"),
        meter_start_wh=0,
        meter_stop_wh=20_000,
    )
    assert bill(SAMPLE, "cp-zhening", "A", later).service_fen == 1000


def test_a_listed_site_uses_its_own_rates() -> None:
    session = ChargingSessionData(
        start=at(D, "01:00"), stop=at(D, "05:00"), meter_start_wh=0, meter_stop_wh=30_000
    )
    residential = bill(SAMPLE, "cp-jinxiuyuan", "B", session)
    ordinary = bill(SAMPLE, "cp-renminyiyuan", "B", session)
    assert residential.service_fen == 1200  # 40 fen/kWh flat
    assert ordinary.service_fen == 900  # valley service 30 fen/kWh
    assert residential.energy_fen == ordinary.energy_fen == 870  # 30 kWh × 29


def test_parking_waiver() -> None:
    session = ChargingSessionData(
        start=at(D, "09:00"),
        stop=at(D, "13:00"),
        meter_start_wh=0,
        meter_stop_wh=8000,
        samples=[(at(D, "11:00"), 8000)],
    )
    w = parking_waiver(BOOK, "w", session)
    assert w is not None
    assert (w.start, w.end, w.tariff_version) == (at(D, "09:00"), at(D, "11:00"), "c1")
    m = parking_waiver(BOOK, "m", session)
    assert m is not None and (m.start, m.end) == (at(D, "09:00"), at(D, "10:30"))
    assert parking_waiver(BOOK, "nobody", session) is None
    sample = parking_waiver(SAMPLE, "cp-huochezhan", session)
    assert sample is not None and sample.end == at(D, "11:00")


def test_energy_by_band_partitions_the_span() -> None:
    version = BOOK.versions[0]
    pieces = energy_by_band(
        [(at(D, "17:00"), 100), (at(D, "23:00"), 6100), (at(D, "17:00"), 100)], version
    )
    assert [(p.start.strftime("%H:%M"), p.end.strftime("%H:%M"), p.band, p.wh) for p in pieces] == [
        ("17:00", "18:00", "flat", 1000),
        ("18:00", "22:00", "peak", 4000),
        ("22:00", "23:00", "valley", 1000),
    ]
    readings = [(at(D, "17:00"), 100), (at(D, "23:00"), 6100)]
    inside = energy_by_band(readings, version, start=at(D, "20:00"), end=at(D, "21:00"))
    assert [(p.band, p.wh) for p in inside] == [("peak", 0)]  # no readings inside: no energy
    assert energy_by_band([], version) == ()


# --- bad input ----------------------------------------------------------------------------


def test_bad_sessions_are_refused() -> None:
    naive = dt.datetime(2026, 11, 28, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        ChargingSessionData(start=naive, stop=at(D, "11:00"))
    with pytest.raises(ValueError, match="before start"):
        ChargingSessionData(start=at(D, "11:00"), stop=at(D, "10:00"))
    with pytest.raises(ValueError, match="integer >= 0"):
        ChargingSessionData(start=at(D, "10:00"), stop=at(D, "11:00"), meter_stop_wh=-1)
    with pytest.raises(ValueError, match="integer >= 0"):
        ChargingSessionData(
            start=at(D, "10:00"),
            stop=at(D, "11:00"),
            samples=[(at(D, "10:30"), 1.5)],  # type: ignore[list-item]
        )
    with pytest.raises(ValueError, match="charging_end"):
        ChargingSessionData(start=at(D, "10:00"), stop=at(D, "11:00"), charging_end=at(D, "12:00"))
    with pytest.raises(ValueError, match="idle_end"):
        ChargingSessionData(start=at(D, "10:00"), stop=at(D, "11:00"), idle_end=at(D, "09:00"))
    ok = ChargingSessionData(start=at(D, "10:00"), stop=at(D, "11:00"))
    with pytest.raises(ValueError, match="neither site 's' nor site class 'Z'; classes: X, Y"):
        bill(BOOK, "s", "Z", ok)
    early = ChargingSessionData(start=at("2025-06-01", "10:00"), stop=at("2025-06-01", "11:00"))
    with pytest.raises(ValueError, match="no charging tariff in force"):
        bill(BOOK, "s", "X", early)


BAD_FILES = [
    ('bands = [{ name = "a", start = "00:00", end = "12:00" }]', "12:00 is not covered"),
    (
        'bands = [{ name = "a", start = "00:00", end = "24:00" }, '
        '{ name = "b", start = "23:00", end = "01:00" }]',
        "covered by more than one",
    ),
    ('bands = [{ name = "a", start = "0:00", end = "24:00" }]', "is not a time HH:MM"),
]


@pytest.mark.parametrize(("bands", "message"), BAD_FILES)
def test_bad_windows_are_named(bands: str, message: str) -> None:
    text = f"""
[[version]]
id = "v"
effective_from = "2026-01-01T00:00:00+08:00"
{bands}
[[version.rates]]
site_class = "X"
energy_fen_per_kwh = {{ a = 1 }}
service_fen_per_kwh = 1
"""
    with pytest.raises(ChargingTariffFileError, match=message):
        loads_charging_tariffs(text, "bad.toml", zone=CST)


HEAD = """
[[version]]
id = "v"
effective_from = "2026-01-01T00:00:00+08:00"
bands = [{ name = "day", start = "06:00", end = "22:00" },
         { name = "night", start = "22:00", end = "06:00" }]
"""


@pytest.mark.parametrize(
    ("rest", "message"),
    [
        (
            '[[version.rates]]\nsite_class = "X"\nenergy_fen_per_kwh = { day = 1 }\n'
            "service_fen_per_kwh = 1",
            r"missing \['night'\]",
        ),
        (
            '[[version.rates]]\nsite_class = "X"\nenergy_fen_per_kwh = { day = 1, night = 0.5 }\n'
            "service_fen_per_kwh = 1",
            r'energy_fen_per_kwh "night" must be an integer \(money is integer fen\)',
        ),
        (
            '[[version.rates]]\nsite_class = "X"\nsite_ids = ["a"]\n'
            "energy_fen_per_kwh = { day = 1, night = 1 }\nservice_fen_per_kwh = 1",
            "exactly one of site_class",
        ),
        (
            '[[version.rates]]\nsite_class = ["X", "X"]\n'
            "energy_fen_per_kwh = { day = 1, night = 1 }\nservice_fen_per_kwh = 1",
            "class 'X' is already priced",
        ),
        (
            '[[version.rates]]\nsite_class = "X"\nenergy_fen_per_kwh = { day = 1, night = 1 }\n'
            "service_fen_per_kwh = 1\nidle_fen = 100",
            "idle_unit_minutes must be an integer",
        ),
        (
            'parking = [{ site_id = "p", waive_parking_while_charging = true, '
            "waive_parking_minutes = 60 }]\n"
            '[[version.rates]]\nsite_class = "X"\nenergy_fen_per_kwh = { day = 1, night = 1 }\n'
            "service_fen_per_kwh = 1",
            'parking "p": give exactly one of',
        ),
        ("", "rates: must be an array"),
    ],
)
def test_bad_rates_are_named(rest: str, message: str) -> None:
    with pytest.raises(ChargingTariffFileError, match=message) as info:
        loads_charging_tariffs(HEAD + rest, "bad.toml", zone=CST)
    assert str(info.value).startswith('bad.toml: version "v"')


def test_file_level_errors() -> None:
    with pytest.raises(ChargingTariffFileError, match="not valid TOML"):
        loads_charging_tariffs("[[version]", "bad.toml", zone=CST)
    with pytest.raises(ChargingTariffFileError, match="unknown time zone"):
        loads_charging_tariffs('zone = "Mars/Olympus"\n' + HEAD, "bad.toml", zone=CST)
    with pytest.raises(ChargingTariffFileError, match="effective_from must be an ISO 8601"):
        loads_charging_tariffs(HEAD.replace("+08:00", ""), "bad.toml", zone=CST)


def test_the_tariff_is_read_in_the_towns_zone() -> None:
    """The zone comes from the gateway (the town's); a file naming another one is refused."""
    urumqi = ZoneInfo("Asia/Urumqi")
    assert 'zone = "Asia/Shanghai"\n' in CUSTOM
    unnamed = CUSTOM.replace('zone = "Asia/Shanghai"\n', "")
    book = loads_charging_tariffs(unnamed, "t.toml", zone=urumqi)
    assert {v.zone for v in book.versions} == {urumqi}
    with pytest.raises(ChargingTariffFileError, match="is not the town's zone 'Asia/Urumqi'"):
        loads_charging_tariffs(CUSTOM, "t.toml", zone=urumqi)


def test_sample_loads_from_a_path_and_summarises(tmp_path: Path) -> None:
    text = resources.files("charging").joinpath("data", "sample_charging_tariffs.toml")
    path = tmp_path / "t.toml"
    path.write_text(text.read_text("utf-8"), encoding="utf-8")
    assert load_charging_tariffs(path, CST) == SAMPLE
    assert [v.version for v in SAMPLE.versions] == ["2025-01", "2026-07"]
    zh = summary(SAMPLE.versions[1], "zh")
    en = summary(SAMPLE.versions[1], "en")
    assert "低谷 11:00–15:00、23:00–07:00" in zh
    assert "服务费 0.50元/千瓦时" in zh
    assert "每次最高25.00元" in zh
    assert "市民大厅停车场：充电期间免收停车费。" in zh
    assert "火车站停车场：充电车辆自充电开始起120分钟内免收停车费。" in zh
    assert "Classes B, C:" in en
    assert "valley 11:00–15:00, 23:00–07:00" in en
    assert "at most CNY 25.00 per session" in en
    with pytest.raises(ValueError, match="lang"):
        summary(SAMPLE.versions[0], "fr")  # type: ignore[arg-type]


def test_documented_examples() -> None:
    """The examples of docs/charging-bills.md."""
    edge = ChargingSessionData(
        start=at(D, "16:00"),
        stop=at(D, "19:20"),
        meter_start_wh=500_000,
        meter_stop_wh=530_000,
        samples=[(at(D, "18:00"), 520_000), (at(D, "19:00"), 530_000)],
        idle_end=at(D, "20:10"),
    )
    b = bill(SAMPLE, "cp-renminyiyuan", "B", edge)
    assert [(line.kind, line.band, line.wh, line.amount_fen) for line in b.lines] == [
        ("energy", "flat", 20_000, 1120),
        ("energy", "peak", 10_000, 860),
        ("service", "flat", 20_000, 1000),
        ("service", "peak", 10_000, 700),
        ("idle", None, 0, 300),
    ]
    assert b.total_fen == 3980
    night = ChargingSessionData(
        start=at(D, "21:00"), stop=at(N, "07:30"), meter_start_wh=812_000, meter_stop_wh=856_000
    )
    b = bill(SAMPLE, "cp-jinxiuyuan", "B", night)
    assert [(line.band, line.wh, line.amount_fen) for line in b.lines] == [
        ("peak", 4190, 360),
        ("flat", 4190, 235),
        ("valley", 33_525, 972),
        ("peak", 2095, 180),
        (None, 44_000, 1760),
    ]
    assert b.total_fen == 3507
    reset = ChargingSessionData(
        start=at(D, "10:00"),
        stop=at(D, "11:30"),
        meter_start_wh=95_000,
        meter_stop_wh=9000,
        samples=[(at(D, "10:40"), 102_000), (at(D, "11:00"), 2000)],
    )
    b = bill(SAMPLE, "cp-zhening", "A", reset)
    assert [(line.band, line.wh, line.amount_fen) for line in b.lines] == [
        ("flat", 7000, 392),
        ("valley", 7000, 203),
        (None, 14_000, 700),
    ]
    assert b.total_fen == 1295
    w = parking_waiver(SAMPLE, "cp-zhening", reset)
    assert w is not None and (w.start, w.end) == (at(D, "10:00"), at(D, "11:30"))


def test_deeply_nested_toml_and_non_utf8_files_are_tariff_file_errors(tmp_path: Path) -> None:
    """Found by ``make fuzz`` (file.charging_tariffs): RecursionError, UnicodeDecodeError and
    OSError escaped the loader; each is now a ChargingTariffFileError naming the file."""
    with pytest.raises(ChargingTariffFileError, match=r"^deep\.toml: .*nested too deeply"):
        loads_charging_tariffs("a = " + "{b = " * 5000, "deep.toml", zone=CST)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"\xff\xfe[[version]]\n")
    with pytest.raises(ChargingTariffFileError, match=r"^latin1\.toml: not UTF-8 text \(byte 0\)"):
        load_charging_tariffs(path, CST)
    with pytest.raises(ChargingTariffFileError, match=r"^absent\.toml: cannot read"):
        load_charging_tariffs(tmp_path / "absent.toml", CST)
