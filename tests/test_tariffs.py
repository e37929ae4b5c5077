"""Table tests for the posted tariff rules (parking/tariffs.py, parking/tariff_file.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from parking.tariff_file import TariffFileError, load_sample_tariffs, load_tariffs, loads_tariffs
from parking.tariffs import Quote, TariffBook, TariffVersion, quote, settle, summary

CST = ZoneInfo("Asia/Shanghai")
SAMPLE = load_sample_tariffs(CST)


def at(day: str, hm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hm}:00").replace(tzinfo=CST)


def check_shape(q: Quote, entry: dt.datetime, exit_: dt.datetime) -> None:
    assert q.total_fen == sum(line.amount_fen for line in q.lines)
    if entry == exit_:
        assert q.lines == ()
        return
    assert q.lines[0].start == entry
    assert q.lines[-1].end == exit_
    for a, b in zip(q.lines, q.lines[1:], strict=False):
        assert a.end == b.start


# A small book for the readings the sample does not post (threshold, rolling caps).
CUSTOM = """
zone = "Asia/Shanghai"
[[version]]
id = "t1"
effective_from = "2026-01-01T00:00:00+08:00"
holidays = ["2026-10-01"]
free_first = [
  { site_id = "thr", minutes = 60, mode = "threshold" },
  { site_id = "ded", minutes = 60, mode = "deduction" },
]
[[version.rates]]
site_class = "X"
vehicle = ["small", "large", "new_energy"]
cap_fen = 1000
cap_mode = "calendar_day"
bands = [
  { name = "night free", start = "22:00", end = "08:00", rate_fen = 0 },
  { name = "day", start = "08:00", end = "22:00", rate_fen = 100, unit_minutes = 60 },
]
holiday_bands = [
  { name = "holiday free", start = "00:00", end = "24:00", rate_fen = 0 },
]
[[version.rates]]
site_class = "R"
vehicle = "small"
cap_fen = 1000
cap_mode = "rolling_24h"
bands = [
  { name = "night free", start = "22:00", end = "08:00", rate_fen = 0 },
  { name = "day", start = "08:00", end = "22:00", rate_fen = 100, unit_minutes = 60 },
]
[[version.rates]]
site_class = "N"
vehicle = "small"
bands = [
  { name = "evening", start = "20:00", end = "02:00", rate_fen = 10, unit_minutes = 30 },
  { name = "quiet", start = "02:00", end = "20:00", rate_fen = 0 },
]
"""
BOOK: TariffBook = loads_tariffs(CUSTOM, "custom.toml", zone=CST)


@pytest.mark.parametrize(
    ("site", "cls", "vehicle", "entry", "exit_", "total"),
    [
        # night free across midnight, every class
        ("s", "A", "small", at("2026-11-27", "22:00"), at("2026-11-28", "08:00"), 0),
        ("s", "B", "large", at("2026-11-27", "23:10"), at("2026-11-28", "07:59"), 0),
        ("s", "C", "small", at("2026-11-27", "22:00"), at("2026-11-28", "08:00"), 0),
        # round-up: per started 30 min (A) and per started hour (B, C)
        ("s", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "09:01"), 150),
        ("s", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "09:30"), 150),
        ("s", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "09:31"), 300),
        ("s", "B", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:01"), 200),
        ("s", "C", "large", at("2026-11-27", "09:00"), at("2026-11-27", "10:00"), 50),
        # a stay running into the night pays only up to 22:00
        ("s", "A", "small", at("2026-11-27", "21:45"), at("2026-11-28", "07:00"), 150),
        # first hour free (deduction) at 市民大厅 and 浙宁商厦, any time of day
        ("cp-shiminting", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:00"), 0),
        ("cp-zhening", "A", "small", at("2026-11-27", "14:00"), at("2026-11-27", "15:00"), 0),
        ("cp-shiminting", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:30"), 150),
        ("cp-zhening", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:31"), 300),
        ("cp-zhening", "A", "small", at("2026-11-27", "21:30"), at("2026-11-28", "08:29"), 150),
        # the same stays elsewhere in class A pay from the first minute
        ("cp-other", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:00"), 300),
        # calendar-day cap: 08:00–22:00 = 28 units × 150 = 4200, capped at 2500
        ("s", "A", "small", at("2026-11-27", "08:00"), at("2026-11-27", "22:00"), 2500),
        ("s", "A", "small", at("2026-11-27", "08:00"), at("2026-11-28", "22:00"), 5000),
        # rolling 24 h cap (class B): 14 h × 100 = 1400 (under 1500); two windows
        ("s", "B", "small", at("2026-11-27", "08:00"), at("2026-11-27", "22:00"), 1400),
        ("s", "B", "large", at("2026-11-27", "08:00"), at("2026-11-27", "22:00"), 2800),
        # holidays (2026-10-01 is a holiday): class A holiday band, class B free
        ("s", "A", "small", at("2026-10-01", "09:00"), at("2026-10-01", "10:30"), 300),
        ("s", "B", "small", at("2026-10-01", "09:00"), at("2026-10-01", "18:00"), 0),
        ("s", "B", "small", at("2026-10-07", "21:00"), at("2026-10-08", "09:30"), 200),
        # version by entry time: entered before 2026-07-01 keeps 100 fen per 30 min
        ("s", "A", "small", at("2026-06-30", "09:00"), at("2026-06-30", "10:00"), 200),
        ("s", "A", "small", at("2026-07-01", "09:00"), at("2026-07-01", "10:00"), 300),
        ("s", "A", "small", at("2026-06-30", "21:00"), at("2026-07-01", "09:00"), 200 + 200),
        # zero-length stay
        ("s", "A", "small", at("2026-11-27", "09:00"), at("2026-11-27", "09:00"), 0),
    ],
)
def test_sample_posted_rules(
    site: str, cls: str, vehicle: str, entry: dt.datetime, exit_: dt.datetime, total: int
) -> None:
    q = quote(SAMPLE, site, cls, vehicle, entry, exit_)  # type: ignore[arg-type]
    check_shape(q, entry, exit_)
    assert q.total_fen == total, q.lines


def test_version_by_entry_names_version() -> None:
    before = quote(SAMPLE, "s", "A", "small", at("2026-06-30", "21:00"), at("2026-07-01", "09:00"))
    after = quote(SAMPLE, "s", "A", "small", at("2026-07-01", "09:00"), at("2026-07-01", "10:00"))
    assert (before.tariff_version, after.tariff_version) == ("2025-01", "2026-07")


def test_lines_name_every_segment() -> None:
    entry, exit_ = at("2026-11-27", "21:00"), at("2026-11-28", "09:10")
    q = quote(SAMPLE, "cp-shiminting", "A", "small", entry, exit_)
    check_shape(q, entry, exit_)
    assert [(ln.rule, ln.units, ln.amount_fen) for ln in q.lines] == [
        ("first 60 min free", 0, 0),
        ("night free 22:00-08:00", 0, 0),
        ("day 08:00-22:00, 150 fen per started 30 min", 3, 450),
    ]
    assert q.lines[1].start == at("2026-11-27", "22:00")
    assert q.lines[1].end == at("2026-11-28", "08:00")


def test_calendar_cap_is_negative_zero_length_line() -> None:
    entry, exit_ = at("2026-11-27", "08:00"), at("2026-11-27", "23:00")
    q = quote(SAMPLE, "s", "A", "small", entry, exit_)
    check_shape(q, entry, exit_)
    caps = [ln for ln in q.lines if ln.amount_fen < 0]
    assert len(caps) == 1
    assert caps[0].start == caps[0].end == at("2026-11-27", "22:00")
    assert caps[0].amount_fen == 2500 - 4200
    assert "2026-11-27" in caps[0].rule


def test_calendar_cap_resets_at_local_midnight() -> None:
    # 20:00–02:00 band at 10 fen / 30 min: 4 h before midnight, 2 h after, no cap
    entry, exit_ = at("2026-11-27", "20:00"), at("2026-11-28", "02:00")
    q = quote(BOOK, "s", "N", "small", entry, exit_)
    check_shape(q, entry, exit_)
    assert q.total_fen == 12 * 10
    # one line across midnight when no cap splits it
    assert [ln.units for ln in q.lines if ln.amount_fen] == [12]


def test_rolling_vs_calendar_cap() -> None:
    # 20:00 day 1 → 20:00 day 2. Calendar: day 1 has 2 h (200), day 2 has 12 h (capped 1000).
    entry, exit_ = at("2026-11-27", "20:00"), at("2026-11-28", "20:00")
    cal = quote(BOOK, "s", "X", "small", entry, exit_)
    check_shape(cal, entry, exit_)
    assert cal.total_fen == 200 + 1000
    # Rolling: one 24 h window holding 14 h of charges (1400), capped at 1000.
    rol = quote(BOOK, "s", "R", "small", entry, exit_)
    check_shape(rol, entry, exit_)
    assert rol.total_fen == 1000
    # the next rolling window starts at 20:00 on day 2
    longer = quote(BOOK, "s", "R", "small", entry, at("2026-11-28", "21:00"))
    assert longer.total_fen == 1100


def test_threshold_reading() -> None:
    q = quote(BOOK, "thr", "X", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:00"))
    assert q.total_fen == 0
    assert q.lines[0].units == 1 and "waived" in q.lines[0].rule
    q = quote(BOOK, "thr", "X", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:01"))
    assert q.total_fen == 200  # the whole stay is charged once past the threshold
    d = quote(BOOK, "ded", "X", "small", at("2026-11-27", "09:00"), at("2026-11-27", "10:01"))
    assert d.total_fen == 100  # deduction: only the minute after the first hour


def test_holiday_whole_day_free() -> None:
    entry, exit_ = at("2026-09-30", "21:00"), at("2026-10-02", "09:00")
    q = quote(BOOK, "s", "X", "small", entry, exit_)
    check_shape(q, entry, exit_)
    assert q.total_fen == 100 + 100
    assert any(ln.rule.startswith("holiday holiday free") for ln in q.lines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exit": at("2026-11-27", "08:59")}, "before entry"),
        ({"entry": dt.datetime(2026, 11, 27, 9)}, "timezone-aware"),
        ({"exit": dt.datetime(2026, 11, 27, 10)}, "timezone-aware"),
        ({"site_class": "Z"}, "unknown site class 'Z'"),
        ({"vehicle": "bus"}, "unknown vehicle class"),
        ({"entry": at("2020-01-01", "09:00")}, "no tariff in force"),
        ({"exit": at("2027-11-28", "09:01")}, "at most 366 days"),
        ({"exit": at("4026-11-27", "09:00")}, "at most 366 days"),
    ],
)
def test_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "site_id": "s",
        "site_class": "A",
        "vehicle": "small",
        "entry": at("2026-11-27", "09:00"),
        "exit": at("2026-11-27", "10:00"),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        quote(SAMPLE, **args)  # type: ignore[arg-type]


def test_sample_posts_night_free_everywhere() -> None:
    for version in SAMPLE.versions:
        for rates in version.rates.values():
            for bands in (rates.bands, rates.holiday_bands):
                q_bands = [b for b in bands if b.start_min <= 22 * 60 and b.free]
                assert q_bands, version.version
        assert version.free_first["cp-shiminting"].minutes == 60
        assert version.free_first["cp-zhening"].mode == "deduction"


def test_summary_both_languages() -> None:
    latest = SAMPLE.versions[-1]
    zh = summary(latest, "zh")
    en = summary(latest, "en")
    assert "22:00–08:00 免费" in zh and "市民大厅停车场" in zh and "前60分钟免费" in zh
    assert "22:00–08:00 free" in en and "first 60 min of every stay are free" in en
    assert "per calendar day" in en and "per 24 h from entry" in en
    assert "缴费后15分钟内离场不再收费" in zh and "15 min to leave at no extra charge" in en
    no_grace = TariffVersion(
        "g0", latest.effective_from, latest.zone, latest.rates, exit_grace_minutes=0
    )
    assert "无宽限期" in summary(no_grace, "zh") and "No exit grace" in summary(no_grace, "en")


BAD_BASE = """
[[version]]
id = "v1"
effective_from = "2026-01-01T00:00:00+08:00"
[[version.rates]]
site_class = "A"
vehicle = "small"
bands = [
  { name = "night free", start = "22:00", end = "08:00", rate_fen = 0 },
  { name = "day", start = "08:00", end = "22:00", rate_fen = 100 },
]
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "rate_fen = 100",
            "rate_fen = 1.5",
            r'version "v1" rates\[0\] \(A × small\) bands\[1\] "day": rate_fen must be an integer',
        ),
        (
            'start = "08:00"',
            'start = "09:00"',
            r"bands: must cover the day exactly once: 08:00 is not covered",
        ),
        ('start = "08:00"', 'start = "07:00"', r"07:00 is covered by more than one band"),
        ('start = "08:00"', 'start = "25:00"', r'"day": start \'25:00\' is not a time'),
        ('vehicle = "small"', 'vehicle = "bus"', r"rates\[0\]: unknown vehicle class 'bus'"),
        (
            "+08:00",
            "",
            r'version "v1": effective_from must be an ISO 8601 date-time with an offset',
        ),
        ('id = "v1"', 'id = ""', r"version\[0\]: id must be a non-empty string"),
        (
            'vehicle = "small"',
            'vehicle = "small"\ncap_fen = 10\ncap_mode = "weekly"',
            r"\(A × small\): cap_mode must be one of",
        ),
        (
            'id = "v1"',
            'id = "v1"\nexit_grace_minutes = -1',
            r'version "v1": exit_grace_minutes must be >= 0, got -1',
        ),
        (
            'id = "v1"',
            'id = "v1"\nexit_grace_minutes = "15"',
            r'version "v1": exit_grace_minutes must be an integer$',
        ),
        (
            'id = "v1"',
            'id = "v1"\nexit_grace_minutes = 1.5',
            r'version "v1": exit_grace_minutes must be an integer$',
        ),
    ],
)
def test_file_errors_name_the_entry(old: str, new: str, message: str) -> None:
    with pytest.raises(TariffFileError, match=message):
        loads_tariffs(BAD_BASE.replace(old, new, 1), "bad.toml", zone=CST)


def test_file_error_names_source_and_toml_syntax() -> None:
    with pytest.raises(TariffFileError, match=r"^bad.toml: not valid TOML"):
        loads_tariffs("[[version]\n", "bad.toml", zone=CST)
    assert loads_tariffs(BAD_BASE, zone=CST).versions[0].version == "v1"


def test_the_tariff_is_read_in_the_towns_zone() -> None:
    """The zone comes from the gateway (the town's); a file naming another one is refused."""
    assert SAMPLE.versions[0].zone == CST
    with pytest.raises(TariffFileError, match="'Asia/Shanghai' is not the town's zone"):
        loads_tariffs('zone = "Asia/Shanghai"\n' + BAD_BASE, "t.toml", zone=ZoneInfo("UTC"))


def test_exit_grace_from_file() -> None:
    assert loads_tariffs(BAD_BASE, zone=CST).versions[0].exit_grace_minutes == 15  # the default
    explicit = BAD_BASE.replace('id = "v1"', 'id = "v1"\nexit_grace_minutes = 0', 1)
    assert loads_tariffs(explicit, zone=CST).versions[0].exit_grace_minutes == 0
    assert [v.exit_grace_minutes for v in SAMPLE.versions] == [15, 15]
    with pytest.raises(ValueError, match="exit_grace_minutes must be >= 0"):
        TariffVersion("v", at("2026-01-01", "00:00"), CST, {}, exit_grace_minutes=-1)


# Class A small, 2026-11-27 (150 fen per started 30 min, no free first hour at site "s").
ENTRY = at("2026-11-27", "09:00")


@pytest.mark.parametrize(
    ("exit_hm", "paid_fen", "paid_hm", "priced_until_hm", "total", "due", "grace_until_hm"),
    [
        # nothing paid: the whole stay
        ("10:10", 0, None, "10:10", 450, 450, None),
        # paid the quote at 10:00 (2 units = 300), left within the 15 min grace: nothing more
        ("10:10", 300, "10:00", "10:00", 300, 0, "10:15"),
        ("10:15", 300, "10:00", "10:00", 300, 0, "10:15"),  # the grace's last instant
        # left after the grace: the whole stay, less what was paid
        ("10:16", 300, "10:00", "10:16", 450, 150, "10:15"),
        # paid too little within the grace: the rest of the quote up to the payment
        ("10:05", 100, "10:00", "10:00", 300, 200, "10:15"),
        # paid more than the quote: nothing due (refunds are the caller's)
        ("10:05", 1000, "10:00", "10:00", 300, 0, "10:15"),
        # a payment recorded after the exit never prices time not parked
        ("10:10", 300, "10:20", "10:10", 450, 150, "10:35"),
        # a payment recorded before the entry, leaving within its grace: priced up to entry
        ("09:10", 0, "08:58", "09:00", 0, 0, "09:13"),
    ],
)
def test_settle_exit_grace(
    exit_hm: str,
    paid_fen: int,
    paid_hm: str | None,
    priced_until_hm: str,
    total: int,
    due: int,
    grace_until_hm: str | None,
) -> None:
    exit_ = at("2026-11-27", exit_hm)
    paid_at = None if paid_hm is None else at("2026-11-27", paid_hm)
    s = settle(SAMPLE, "s", "A", "small", ENTRY, exit_, paid_fen, paid_at)
    assert s.priced_until == at("2026-11-27", priced_until_hm)
    assert s.quote == quote(SAMPLE, "s", "A", "small", ENTRY, s.priced_until)
    assert (s.quote.total_fen, s.paid_fen, s.due_fen) == (total, paid_fen, due)
    if grace_until_hm is None:
        assert s.grace_until is None
    else:
        assert s.grace_until == at("2026-11-27", grace_until_hm)
        assert s.grace_until.tzinfo == CST
    assert s.priced_until.tzinfo == CST


GRACE_VERSIONS = """
[[version]]
id = "g0"
effective_from = "2026-01-01T00:00:00+08:00"
exit_grace_minutes = 0
[[version.rates]]
site_class = "A"
vehicle = "small"
bands = [{ name = "all day", start = "00:00", end = "24:00", rate_fen = 100, unit_minutes = 60 }]
[[version]]
id = "g30"
effective_from = "2026-06-01T10:00:00+08:00"
exit_grace_minutes = 30
[[version.rates]]
site_class = "A"
vehicle = "small"
bands = [{ name = "all day", start = "00:00", end = "24:00", rate_fen = 100, unit_minutes = 60 }]
"""


def test_settle_grace_comes_from_the_version_at_entry() -> None:
    book = loads_tariffs(GRACE_VERSIONS, "grace.toml", zone=CST)
    paid_at = at("2026-06-01", "11:00")
    # entered under g0 (no grace): leaving a minute after paying re-prices the stay
    before = settle(
        book, "s", "A", "small", at("2026-06-01", "09:30"), at("2026-06-01", "11:01"), 200, paid_at
    )
    assert before.quote.tariff_version == "g0"
    assert before.grace_until == paid_at
    assert (before.priced_until, before.quote.total_fen, before.due_fen) == (
        at("2026-06-01", "11:01"),
        200,
        0,
    )
    before = settle(
        book, "s", "A", "small", at("2026-06-01", "09:30"), at("2026-06-01", "11:31"), 200, paid_at
    )
    assert (before.quote.total_fen, before.due_fen) == (300, 100)
    # entered under g30: 30 minutes to leave
    after = settle(
        book, "s", "A", "small", at("2026-06-01", "10:00"), at("2026-06-01", "11:30"), 100, paid_at
    )
    assert after.quote.tariff_version == "g30"
    assert after.grace_until == at("2026-06-01", "11:30")
    assert (after.priced_until, after.quote.total_fen, after.due_fen) == (paid_at, 100, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paid_fen": -1}, "paid_fen must be an integer >= 0"),
        ({"paid_fen": 1.5}, "paid_fen must be an integer >= 0"),
        ({"paid_fen": True}, "paid_fen must be an integer >= 0"),
        ({"paid_at": dt.datetime(2026, 11, 27, 10)}, "paid_at must be a timezone-aware"),
        ({"exit": at("2026-11-27", "08:00")}, "before entry"),
        ({"entry": at("2020-01-01", "09:00")}, "no tariff in force"),
    ],
)
def test_settle_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "site_id": "s",
        "site_class": "A",
        "vehicle": "small",
        "entry": ENTRY,
        "exit": at("2026-11-27", "10:00"),
        "paid_fen": 0,
        "paid_at": at("2026-11-27", "09:50"),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        settle(SAMPLE, **args)  # type: ignore[arg-type]


def test_rolling_cap_windows_count_from_entry_with_free_first() -> None:
    # Rolling windows start at entry, not at the end of the free first hour: the 08:00 band
    # of day 2 starts 30 min into the second window.
    entry, exit_ = at("2026-11-27", "07:30"), at("2026-11-28", "09:00")
    q = quote(BOOK, "ded", "R", "small", entry, exit_)
    check_shape(q, entry, exit_)
    assert [(ln.rule, ln.units, ln.amount_fen) for ln in q.lines] == [
        ("first 60 min free", 0, 0),
        ("day 08:00-22:00, 100 fen per started 60 min", 14, 1400),
        ("daily cap 1000 fen (24 h from 2026-11-27T07:30:00+08:00)", 0, -400),
        ("night free 22:00-08:00", 0, 0),
        ("day 08:00-22:00, 100 fen per started 60 min", 1, 100),
    ]
    assert q.lines[2].start == q.lines[2].end == at("2026-11-27", "22:00")


def test_stays_across_a_dst_fold_in_one_zone() -> None:
    # Both ends in the same ZoneInfo: Python compares those by wall clock, so 02:00 after the
    # clocks go back (fold=1) would look earlier than 02:59:59 before; the engine uses instants.
    berlin = ZoneInfo("Europe/Berlin")
    text = 'zone = "Europe/Berlin"\n' + BAD_BASE.replace("+08:00", "+01:00")
    book = loads_tariffs(text, zone=berlin)
    entry = dt.datetime(2026, 10, 25, 2, 59, 59, tzinfo=berlin)  # +02:00
    exit_ = dt.datetime(2026, 10, 25, 2, 0, 0, fold=1, tzinfo=berlin)  # +01:00, 1 s later
    q = quote(book, "s", "A", "small", entry, exit_)
    assert [(ln.start.isoformat(), ln.end.isoformat(), ln.amount_fen) for ln in q.lines] == [
        ("2026-10-25T02:59:59+02:00", "2026-10-25T02:00:00+01:00", 0)
    ]
    # the exit grace is 15 real minutes, not 15 wall-clock minutes, across the change
    paid_at = dt.datetime(2026, 10, 25, 2, 50, tzinfo=berlin)  # +02:00
    s = settle(book, "s", "A", "small", entry - dt.timedelta(hours=1), exit_, 0, paid_at)
    assert s.grace_until is not None
    assert s.grace_until.isoformat() == "2026-10-25T02:05:00+01:00"
    assert s.priced_until == paid_at  # left 10 real minutes after paying


def test_deeply_nested_toml_and_non_utf8_files_are_tariff_file_errors(tmp_path: Path) -> None:
    """Found by ``make fuzz`` (file.tariffs): a deeply nested array was a RecursionError out
    of ``read_toml``, a file that is not UTF-8 a UnicodeDecodeError and a missing one an
    OSError out of ``load_tariffs``; all three are now a TariffFileError naming the file."""
    with pytest.raises(TariffFileError, match=r"^deep\.toml: not valid TOML: .*nested too deeply"):
        loads_tariffs("a = " + "[" * 5000, "deep.toml", zone=CST)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'note = "\xe9"\n')
    with pytest.raises(TariffFileError, match=r"^latin1\.toml: not UTF-8 text"):
        load_tariffs(path, CST)
    with pytest.raises(TariffFileError, match=r"^absent\.toml: cannot read"):
        load_tariffs(tmp_path / "absent.toml", CST)
