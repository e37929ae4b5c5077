"""Posted charging tariffs and itemised charging bills: the pure billing engine.

No I/O and no clock: a tariff book and a finished (or provisionally finished) charging
session go in, an itemised ``Bill`` comes out, so the same inputs always give the same bill
whoever computes it and in whatever order the charger delivered its readings. Money is
integer fen, energy integer Wh. Instants are aware datetimes, read in the tariff's zone only
where a time-of-use window names a wall-clock time.

How a session is billed (docs/charging-bills.md has the full statement and examples):

1. The version in force at the session *start* prices the whole session.
2. Meter readings (``meter_start_wh`` at ``start``, the samples, ``meter_stop_wh`` at
   ``stop``) are cleaned: readings stamped outside ``[start, stop]`` are ignored, identical
   readings collapse, the rest are sorted by instant, then register (two different readings
   at one instant count as a rise). A lower reading is a spurious dip, and dropped, when a
   later reading returns to the level before it; otherwise it is a new register baseline
   (meter reset or replacement): the interval containing the drop bills nothing and energy
   counts again from the new value. Energy is never negative and never counted twice.
   Readings after a reported ``charging_end`` are then placed at ``charging_end``.
3. Energy between two readings is spread linearly over their interval and split at
   time-of-use band boundaries, in integer Wh by the largest-divisor rule (shares sum to the
   rise; more energy never gives a band less). With only start/stop readings this spreads
   the energy proportionally to time.
4. Every line rounds half up to the fen: ``(wh * fen_per_kwh + 500) // 1000``; the total is
   the sum of the lines.
5. Idle fee: after ``grace`` minutes from the end of charging until the connector is freed,
   ``fen`` per started ``unit`` minutes, at most ``cap_fen``. A session that delivered no
   energy pays nothing (nothing was charged; the charger may have been at fault).

Over 400 lines on purpose: the five billing rules above share one walk over the meter samples
and the time-of-use bands; the parking waiver is the same walk read the other way.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from tariffcore import (
    MINUTES_PER_DAY,
    VersionBook,
    check_cover_day,
    check_version,
    check_window,
    hhmm,
    intervals,
    local_at,
    require_aware,
)

WH_PER_KWH = 1000
_UTC = dt.UTC
_DAY = dt.timedelta(days=1)

Reading = tuple[dt.datetime, int]
"""A meter register reading: (aware instant, cumulative energy in Wh)."""

LineKind = Literal["energy", "service", "idle"]


def _aware(value: object, name: str) -> dt.datetime:
    return require_aware(value, name)


def _wh(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0 (Wh), got {value!r}")
    return value


def _fen_of(wh: int, fen_per_kwh: int) -> int:
    """Wh × fen/kWh rounded half up to the fen (both non-negative)."""
    return (wh * fen_per_kwh + WH_PER_KWH // 2) // WH_PER_KWH


@dataclass(frozen=True)
class ToUWindow:
    """One time-of-use window ``[start_min, end_min)`` in local minutes of the day.

    ``start_min > end_min`` crosses midnight (23:00–07:00 is ``1380 → 420``). Several windows
    may share a band ``name`` (a midday and a night valley); rates are posted per name.
    """

    name: str
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a time-of-use window needs a band name")
        check_window("window", self.name, self.start_min, self.end_min)

    def intervals(self) -> tuple[tuple[int, int], ...]:
        """The window's pieces within one local day, as ``[start, end)`` minutes."""
        return intervals(self)


def check_windows_cover_day(windows: Sequence[ToUWindow]) -> None:
    """Raise ValueError unless ``windows`` cover every minute of the day exactly once."""
    check_cover_day(windows, "window")


@dataclass(frozen=True)
class IdleFee:
    """``fen`` per started ``unit_minutes`` once ``grace_minutes`` have passed after charging
    stopped, while the car still occupies the connector; at most ``cap_fen`` (None: no cap)."""

    fen: int
    unit_minutes: int
    grace_minutes: int
    cap_fen: int | None = None

    def __post_init__(self) -> None:
        if self.fen < 0:
            raise ValueError("idle fen must be >= 0")
        if self.unit_minutes <= 0:
            raise ValueError("idle unit_minutes must be > 0")
        if self.grace_minutes < 0:
            raise ValueError("idle grace_minutes must be >= 0")
        if self.cap_fen is not None and self.cap_fen < 0:
            raise ValueError("idle cap_fen must be >= 0")

    def amount(self, idle: dt.timedelta) -> tuple[int, int, bool]:
        """(started units, fen, capped) for ``idle`` time after the grace."""
        if idle <= dt.timedelta(0):
            return 0, 0, False
        units = -(-idle // dt.timedelta(minutes=self.unit_minutes))
        fen = units * self.fen
        if self.cap_fen is not None and fen > self.cap_fen:
            return units, self.cap_fen, True
        return units, fen, False


@dataclass(frozen=True)
class ChargingRates:
    """What a session pays at one site class (or listed site): energy per band, service fee
    (one flat rate, or per band), idle fee. Rates are fen per kWh."""

    energy_fen_per_kwh: Mapping[str, int]
    service_fen_per_kwh: int | Mapping[str, int]
    idle: IdleFee | None = None
    label: str = ""

    def __post_init__(self) -> None:
        rates = dict(self.energy_fen_per_kwh)
        if isinstance(self.service_fen_per_kwh, int):
            rates["service"] = self.service_fen_per_kwh
        else:
            rates.update({f"service {k}": v for k, v in self.service_fen_per_kwh.items()})
        for name, rate in rates.items():
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
                raise ValueError(f"rate {name!r} must be an integer >= 0 fen/kWh")

    def service_rate(self, band: str) -> int:
        service = self.service_fen_per_kwh
        return service if isinstance(service, int) else service[band]


@dataclass(frozen=True)
class ParkingWaiverRule:
    """What the parking side waives for a charging car at one site: the charging time
    (``while_charging``) or ``minutes`` from the session start — exactly one of them."""

    while_charging: bool = False
    minutes: int | None = None

    def __post_init__(self) -> None:
        if self.while_charging == (self.minutes is not None):
            raise ValueError("a parking waiver is either while_charging or minutes, not both")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("waive_parking_minutes must be > 0")


@dataclass(frozen=True)
class ChargingTariffVersion:
    """One posted charging tariff, in force from ``effective_from`` until the next version.

    ``windows`` (the time-of-use bands) are shared by every site of the version; rates come
    per site class, and a site listed in ``site_rates`` uses its own rates instead.
    """

    version: str
    effective_from: dt.datetime
    zone: ZoneInfo
    windows: tuple[ToUWindow, ...]
    class_rates: Mapping[str, ChargingRates]
    site_rates: Mapping[str, ChargingRates] = field(default_factory=dict)
    parking: Mapping[str, ParkingWaiverRule] = field(default_factory=dict)
    site_names: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        check_version(self)
        check_windows_cover_day(self.windows)
        if not self.class_rates and not self.site_rates:
            raise ValueError(f"version {self.version!r}: needs at least one rates entry")
        names = set(self.band_names)
        for key, rates in (*self.class_rates.items(), *self.site_rates.items()):
            posted = {"energy": set(rates.energy_fen_per_kwh)}
            if not isinstance(rates.service_fen_per_kwh, int):
                posted["service"] = set(rates.service_fen_per_kwh)
            for what, got in posted.items():
                if got != names:
                    raise ValueError(
                        f"version {self.version!r} rates {key!r}: {what} rates must name "
                        f"exactly the bands {sorted(names)}, got {sorted(got)}"
                    )

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band names in order of their first window in the day."""
        seen: dict[str, None] = {}
        for window in sorted(self.windows, key=lambda w: w.start_min):
            seen.setdefault(window.name, None)
        return tuple(seen)

    @property
    def site_classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.class_rates))

    def rates_for(self, site_id: str, site_class: str) -> ChargingRates:
        """The listed site's own rates, else its class's; ValueError naming what is known."""
        rates = self.site_rates.get(site_id)
        if rates is None:
            rates = self.class_rates.get(site_class)
        if rates is None:
            raise ValueError(
                f"charging tariff {self.version!r} prices neither site {site_id!r} nor site "
                f"class {site_class!r}; classes: {', '.join(self.site_classes) or '-'}"
            )
        return rates

    @functools.cached_property
    def _minute_bands(self) -> tuple[str, ...]:
        table = [""] * MINUTES_PER_DAY
        for window in self.windows:
            for a, b in window.intervals():
                table[a:b] = [window.name] * (b - a)
        return tuple(table)

    @functools.cached_property
    def _window_starts(self) -> tuple[int, ...]:
        return tuple(sorted({w.start_min for w in self.windows}))

    def band_at(self, instant: dt.datetime) -> str:
        """The band name in force at ``instant`` (aware)."""
        local = _aware(instant, "instant").astimezone(self.zone)
        return self._minute_bands[local.hour * 60 + local.minute]


class ChargingTariffBook(VersionBook[ChargingTariffVersion]):
    """All versions of the posted charging tariff, ordered by ``effective_from``."""

    kind = "charging tariff"


@dataclass(frozen=True)
class BandEnergy:
    """Energy ``wh`` consumed in ``[start, end)`` within one band (times in the tariff zone)."""

    start: dt.datetime
    end: dt.datetime
    band: str
    wh: int


@dataclass(frozen=True)
class ChargingSessionData:
    """What the charger told us about one transaction.

    ``start``/``stop``: the transaction's start and end. ``samples``: register readings
    ``(instant, Wh)`` in any order, duplicates allowed. ``meter_start_wh``/``meter_stop_wh``:
    the register at ``start``/``stop`` when known. ``charging_end``: when the charger reported
    that charging stopped (SuspendedEV, Finishing), within ``[start, stop]``; None: derived
    from the readings. ``idle_end``: when the connector was freed (the car left); None: ``stop``.
    """

    start: dt.datetime
    stop: dt.datetime
    samples: Sequence[Reading] = ()
    meter_start_wh: int | None = None
    meter_stop_wh: int | None = None
    charging_end: dt.datetime | None = None
    idle_end: dt.datetime | None = None

    def __post_init__(self) -> None:
        start = _aware(self.start, "start")
        stop = _aware(self.stop, "stop")
        if stop < start:
            raise ValueError(
                f"stop {self.stop.isoformat()} is before start {self.start.isoformat()}"
            )
        samples = tuple(self.samples)
        for i, sample in enumerate(samples):
            if not isinstance(sample, tuple) or len(sample) != 2:
                raise ValueError(f"samples[{i}] must be a pair (instant, register_wh)")
            _aware(sample[0], f"samples[{i}] instant")
            _wh(sample[1], f"samples[{i}] register")
        object.__setattr__(self, "samples", samples)
        for name in ("meter_start_wh", "meter_stop_wh"):
            value = getattr(self, name)
            if value is not None:
                _wh(value, name)
        if self.charging_end is not None:
            end = _aware(self.charging_end, "charging_end")
            if not start <= end <= stop:
                raise ValueError("charging_end must lie within [start, stop]")
        if self.idle_end is not None and _aware(self.idle_end, "idle_end") < start:
            raise ValueError("idle_end must not be before start")


@dataclass(frozen=True)
class BillLine:
    """One item of a bill: ``wh`` billed in ``[start, end)`` (0 for idle), its ``amount_fen``.

    ``kind`` is energy, service or idle; ``band`` the time-of-use band (None for a flat service
    fee and the idle fee). Times in the tariff's zone.
    """

    start: dt.datetime
    end: dt.datetime
    kind: LineKind
    band: str | None
    rule: str
    wh: int
    amount_fen: int


@dataclass(frozen=True)
class Bill:
    """An itemised charging bill: ``total_fen == sum(line.amount_fen for line in lines)``.

    ``energy_wh`` is the billed energy; ``charging_end`` the instant charging stopped as used
    for the idle fee (``start`` when no energy was delivered); ``idle_end`` when the connector
    was freed. Subtotals by kind are given for display.
    """

    site_id: str
    tariff_version: str
    start: dt.datetime
    charging_end: dt.datetime
    idle_end: dt.datetime
    energy_wh: int
    energy_fen: int
    service_fen: int
    idle_fen: int
    total_fen: int
    lines: tuple[BillLine, ...]


@dataclass(frozen=True)
class ParkingWaiver:
    """The interval ``[start, end)`` the parking side waives for a charging car (tariff zone)."""

    site_id: str
    tariff_version: str
    start: dt.datetime
    end: dt.datetime
    rule: str


def _clean(
    readings: Iterable[tuple[dt.datetime, int]], until: dt.datetime | None = None
) -> list[Reading]:
    """De-duplicated, sorted (UTC instant, then register), spurious dips removed.

    A reading lower than the last kept one is dropped when a later reading returns to at
    least that level (a glitch: counting the climb back would bill energy twice); otherwise
    it is kept as a new register baseline (meter reset or replacement). ``until``: readings
    after it are then placed at it (the order, and so every rise and drop, is kept).
    """
    unique = sorted(set(readings))
    suffix_max = [-1] * (len(unique) + 1)
    for i in range(len(unique) - 1, -1, -1):
        suffix_max[i] = max(unique[i][1], suffix_max[i + 1])
    kept: list[Reading] = []
    for i, (instant, wh) in enumerate(unique):
        if kept and wh < kept[-1][1] and suffix_max[i + 1] >= kept[-1][1]:
            continue
        kept.append((instant, wh))
    if until is not None:
        kept = [(min(instant, until), wh) for instant, wh in kept]
    return kept


def _increments(clean: Sequence[Reading]) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """(from, to, Wh) of every rise between consecutive clean readings; a drop rises 0."""
    return [(t0, t1, v1 - v0) for (t0, v0), (t1, v1) in itertools.pairwise(clean) if v1 > v0]


def _band_pieces(
    version: ChargingTariffVersion, lo: dt.datetime, hi: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """``[lo, hi]`` (UTC) cut at window starts into (start, end, band) pieces, adjacent
    pieces of the same band merged; a single zero-length piece when ``lo == hi``."""
    zone = version.zone
    cuts: set[dt.datetime] = set()
    day = lo.astimezone(zone).date() - _DAY
    last = hi.astimezone(zone).date() + _DAY
    while day <= last:
        for minute in version._window_starts:
            instant = local_at(day, minute, zone)
            if lo < instant < hi:
                cuts.add(instant)
        day += _DAY
    points = [lo, *sorted(cuts), hi]
    pieces: list[tuple[dt.datetime, dt.datetime, str]] = []
    for a, b in itertools.pairwise(points):
        band = version.band_at(a)
        if pieces and pieces[-1][2] == band:
            pieces[-1] = (pieces[-1][0], b, band)
        else:
            pieces.append((a, b, band))
    return pieces


def _apportion(rise: int, weights: Sequence[int]) -> list[int]:
    """Split ``rise`` Wh in proportion to positive integer ``weights`` (largest divisors).

    Each share starts at its floor quota; the few Wh left go one at a time to the largest
    ``weight / (share + 1)`` (ties: the earlier piece). This is D'Hondt's rule: the shares
    sum to ``rise`` and none ever shrinks when ``rise`` grows (no Alabama paradox), so more
    energy never makes a band line, or the bill, cheaper.
    """
    total = sum(weights)
    shares = [rise * w // total for w in weights]
    for _ in range(rise - sum(shares)):
        best = 0
        for i in range(1, len(weights)):
            # weights[i] / (shares[i] + 1) > weights[best] / (shares[best] + 1), exactly
            if weights[i] * (shares[best] + 1) > weights[best] * (shares[i] + 1):
                best = i
        shares[best] += 1
    return shares


def _split(
    version: ChargingTariffVersion, clean: Sequence[Reading], lo: dt.datetime, hi: dt.datetime
) -> tuple[BandEnergy, ...]:
    """Energy of ``clean`` readings (every rise within ``[lo, hi]``) per band piece of
    ``[lo, hi]``.

    A rise between two readings is spread linearly over their interval: each band piece it
    crosses gets a share in proportion to the time overlap (``_apportion``), so the pieces of
    a rise sum to it exactly. A rise at one instant (two readings with the same time) was
    delivered up to that instant: it goes to the piece ending at (or containing) it.
    """
    pieces = _band_pieces(version, lo, hi)
    starts = [a for a, _, _ in pieces]
    wh = [0] * len(pieces)
    us = dt.timedelta(microseconds=1)
    for t0, t1, rise in _increments(clean):
        if t0 == t1:  # delivered up to t0: the piece ending at (or containing) it
            wh[max(0, bisect.bisect_left(starts, t0) - 1)] += rise
            continue
        first = bisect.bisect_right(starts, t0) - 1
        last = max(first, bisect.bisect_left(starts, t1) - 1)
        if first == last:
            wh[first] += rise
            continue
        overlaps = [
            (min(pieces[k][1], t1) - max(pieces[k][0], t0)) // us for k in range(first, last + 1)
        ]
        for k, share in enumerate(_apportion(rise, overlaps), start=first):
            wh[k] += share
    zone = version.zone
    return tuple(
        BandEnergy(a.astimezone(zone), b.astimezone(zone), band, w)
        for (a, b, band), w in zip(pieces, wh, strict=True)
    )


def energy_by_band(
    samples: Iterable[tuple[dt.datetime, int]],
    version: ChargingTariffVersion,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> tuple[BandEnergy, ...]:
    """Split the energy of register readings across ``version``'s time-of-use bands.

    The pieces partition ``[start, end]`` (default: first and last reading) in time order,
    zero-Wh pieces included; readings outside it are ignored. Readings are cleaned as
    ``bill`` does (sorted, de-duplicated, dips and resets handled), so any order of the same
    readings gives the same result. No readings and no bounds: ``()``.
    """
    readings: list[Reading] = []
    for i, (instant, wh) in enumerate(samples):
        readings.append((_aware(instant, f"samples[{i}] instant"), _wh(wh, f"samples[{i}]")))
    lo = _aware(start, "start") if start is not None else None
    hi = _aware(end, "end") if end is not None else None
    if lo is None:
        lo = min((t for t, _ in readings), default=hi)
    if hi is None:
        hi = max((t for t, _ in readings), default=lo)
    if lo is None or hi is None:
        return ()
    if hi < lo:
        raise ValueError("end is before start")
    clean = _clean((t, w) for t, w in readings if lo <= t <= hi)
    return _split(version, clean, lo, hi)


@dataclass(frozen=True)
class _Metered:
    clean: list[Reading]  # UTC, within [start, charging_end] wherever energy rises
    charging_end: dt.datetime  # UTC
    energy_wh: int


def _meter(session: ChargingSessionData) -> _Metered:
    """The session's readings cleaned, and when charging ended (see the module docstring)."""
    start, stop = session.start.astimezone(_UTC), session.stop.astimezone(_UTC)
    end = session.charging_end
    given_end = end.astimezone(_UTC) if end is not None else None
    flow_end = given_end if given_end is not None else stop
    raw: list[Reading] = [(t.astimezone(_UTC), wh) for t, wh in session.samples]
    if session.meter_start_wh is not None:
        raw.append((start, session.meter_start_wh))
    if session.meter_stop_wh is not None:
        raw.append((stop, session.meter_stop_wh))
    # Readings after the reported end of charging are taken at that end: their energy is
    # still billed (never lost), but no energy flows into the idle time.
    clean = _clean(((t, wh) for t, wh in raw if start <= t <= stop), until=flow_end)
    rises = _increments(clean)
    energy = sum(rise for _, _, rise in rises)
    if given_end is not None:
        charging_end = given_end
    elif rises:
        charging_end = rises[-1][1]
    else:
        charging_end = start
    return _Metered(clean, charging_end, energy)


def bill(
    tariffs: ChargingTariffBook, site_id: str, site_class: str, session: ChargingSessionData
) -> Bill:
    """The itemised bill of ``session`` at ``site_id`` under the version in force at its start.

    Lines: energy per band piece with energy (time order), then the service fee (one line
    for a flat rate, or one per energy line), then the idle fee. Raises ValueError for a
    start before the first version and for a site/class the version does not price.
    """
    version = tariffs.version_at(session.start)
    rates = version.rates_for(site_id, site_class)
    zone = version.zone
    start = session.start.astimezone(_UTC)
    metered = _meter(session)
    # Energy lines run from the start to the end of charging (all rises lie within it).
    pieces = [p for p in _split(version, metered.clean, start, metered.charging_end) if p.wh]
    energy_lines = [
        BillLine(
            p.start,
            p.end,
            "energy",
            p.band,
            f"energy {p.band} {rates.energy_fen_per_kwh[p.band]} fen/kWh",
            p.wh,
            _fen_of(p.wh, rates.energy_fen_per_kwh[p.band]),
        )
        for p in pieces
    ]
    service = rates.service_fen_per_kwh
    service_lines: list[BillLine] = []
    if isinstance(service, int):
        if metered.energy_wh:
            service_lines.append(
                BillLine(
                    start.astimezone(zone),
                    metered.charging_end.astimezone(zone),
                    "service",
                    None,
                    f"service fee {service} fen/kWh",
                    metered.energy_wh,
                    _fen_of(metered.energy_wh, service),
                )
            )
    else:
        service_lines = [
            BillLine(
                p.start,
                p.end,
                "service",
                p.band,
                f"service fee {p.band} {service[p.band]} fen/kWh",
                p.wh,
                _fen_of(p.wh, service[p.band]),
            )
            for p in pieces
        ]
    idle_end = (session.idle_end or session.stop).astimezone(_UTC)
    idle_lines: list[BillLine] = []
    if rates.idle is not None and rates.idle.fen and metered.energy_wh:
        idle = rates.idle
        idle_from = metered.charging_end + dt.timedelta(minutes=idle.grace_minutes)
        units, amount, capped = idle.amount(idle_end - idle_from)
        if units:
            rule = (
                f"idle fee {idle.fen} fen per started {idle.unit_minutes} min after "
                f"{idle.grace_minutes} min grace: {units} × {idle.fen} fen"
            )
            if capped:
                rule += f", capped at {idle.cap_fen} fen"
            idle_lines.append(
                BillLine(
                    start=idle_from.astimezone(zone),
                    end=idle_end.astimezone(zone),
                    kind="idle",
                    band=None,
                    rule=rule,
                    wh=0,
                    amount_fen=amount,
                )
            )
    lines = (*energy_lines, *service_lines, *idle_lines)
    energy_fen = sum(line.amount_fen for line in energy_lines)
    service_fen = sum(line.amount_fen for line in service_lines)
    idle_fen = sum(line.amount_fen for line in idle_lines)
    return Bill(
        site_id=site_id,
        tariff_version=version.version,
        start=start.astimezone(zone),
        charging_end=metered.charging_end.astimezone(zone),
        idle_end=idle_end.astimezone(zone),
        energy_wh=metered.energy_wh,
        energy_fen=energy_fen,
        service_fen=service_fen,
        idle_fen=idle_fen,
        total_fen=energy_fen + service_fen + idle_fen,
        lines=lines,
    )


def parking_waiver(
    tariffs: ChargingTariffBook, site_id: str, session: ChargingSessionData
) -> ParkingWaiver | None:
    """The parking interval to waive for ``session`` at ``site_id``, or None.

    Under the version in force at the session start: ``while_charging`` waives
    ``[start, charging_end)`` (charging end as in ``bill``), ``minutes`` waives
    ``[start, start + minutes)``. A site without a rule, or a session that delivered no
    energy, gets None. The parking side intersects the waiver with the stay.
    """
    version = tariffs.version_at(session.start)
    rule = version.parking.get(site_id)
    if rule is None:
        return None
    metered = _meter(session)
    if not metered.energy_wh:
        return None
    start = session.start.astimezone(_UTC)
    if rule.while_charging:
        end, text = metered.charging_end, "parking waived while charging"
    else:
        assert rule.minutes is not None
        end = start + dt.timedelta(minutes=rule.minutes)
        text = f"parking waived for {rule.minutes} min from the start of charging"
    if end <= start:
        return None
    zone = version.zone
    return ParkingWaiver(
        site_id, version.version, start.astimezone(zone), end.astimezone(zone), text
    )


_BAND_NAMES_ZH = {
    "sharp": "尖峰",
    "peak": "高峰",
    "flat": "平段",
    "valley": "低谷",
    "deep valley": "深谷",
}


def _band_label(name: str, lang: Literal["zh", "en"]) -> str:
    return _BAND_NAMES_ZH.get(name, name) if lang == "zh" else name


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _per_kwh(fen: int, lang: Literal["zh", "en"]) -> str:
    return f"{_yuan(fen)}元/千瓦时" if lang == "zh" else f"CNY {_yuan(fen)}/kWh"


def _rates_text(
    version: ChargingTariffVersion, rates: ChargingRates, lang: Literal["zh", "en"]
) -> str:
    zh = lang == "zh"
    sep = "、" if zh else ", "
    energy = sep.join(
        f"{_band_label(b, lang)} {_per_kwh(rates.energy_fen_per_kwh[b], lang)}"
        for b in version.band_names
    )
    service = rates.service_fen_per_kwh
    if isinstance(service, int):
        service_text = _per_kwh(service, lang)
    else:
        service_text = sep.join(
            f"{_band_label(b, lang)} {_per_kwh(service[b], lang)}" for b in version.band_names
        )
    if zh:
        parts = [f"电费 {energy}", f"服务费 {service_text}"]
    else:
        parts = [f"energy {energy}", f"service fee {service_text}"]
    idle = rates.idle
    if idle is None or not idle.fen:
        parts.append("不收占位费" if zh else "no idle fee")
    else:
        unit, grace = idle.unit_minutes, idle.grace_minutes
        if zh:
            text = (
                f"充电结束{grace}分钟后仍占用充电车位的，每{unit}分钟收取占位费"
                f"{_yuan(idle.fen)}元（不足{unit}分钟按{unit}分钟计）"
            )
            if idle.cap_fen is not None:
                text += f"，每次最高{_yuan(idle.cap_fen)}元"
        else:
            text = (
                f"idle fee CNY {_yuan(idle.fen)} per started {unit} min while the car stays "
                f"connected more than {grace} min after charging stops"
            )
            if idle.cap_fen is not None:
                text += f", at most CNY {_yuan(idle.cap_fen)} per session"
        parts.append(text)
    return ("；" if zh else "; ").join(parts) + ("。" if zh else ".")


def summary(version: ChargingTariffVersion, lang: Literal["zh", "en"]) -> str:
    """A plain-language summary of one posted charging tariff version, in Chinese or English."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}")
    zh = lang == "zh"
    sep = "、" if zh else ", "
    colon = "：" if zh else ": "
    since = version.effective_from.astimezone(version.zone).strftime("%Y-%m-%d %H:%M")
    out = [
        f"充电收费标准 {version.version}，自 {since} 起执行（按充电开始时间适用于整次充电）。"
        if zh
        else f"Charging tariff {version.version}, in force from {since} "
        "(the tariff at the start of a session prices all of it)."
    ]
    if version.note:
        out.append(version.note)
    windows: list[str] = []
    for band in version.band_names:
        spans = sorted((w for w in version.windows if w.name == band), key=lambda w: w.start_min)
        text = sep.join(f"{hhmm(w.start_min)}–{hhmm(w.end_min)}" for w in spans)
        windows.append(f"{_band_label(band, lang)} {text}")
    if zh:
        out.append("分时时段（当地时间）：" + "；".join(windows) + "。")
    else:
        out.append("Time-of-use bands (local time): " + "; ".join(windows) + ".")

    def grouped(
        items: Iterable[tuple[str, ChargingRates]],
    ) -> list[tuple[ChargingRates, list[str]]]:
        groups: list[tuple[ChargingRates, list[str]]] = []  # keys sharing one rates entry
        for key, rates in items:
            for posted, keys in groups:
                if posted == rates:
                    keys.append(key)
                    break
            else:
                groups.append((rates, [key]))
        return groups

    for rates, classes in grouped((c, version.class_rates[c]) for c in version.site_classes):
        if zh:
            head = "、".join(classes) + "类"
        else:
            head = ("Class " if len(classes) == 1 else "Classes ") + ", ".join(classes)
        if rates.label:
            head += f"（{rates.label}）" if zh else f" ({rates.label})"
        out.append(head + colon + _rates_text(version, rates, lang))
    listed = sorted(version.site_rates.items())
    for rates, names in grouped((version.site_names.get(s, s), r) for s, r in listed):
        head = sep.join(names)
        if rates.label:
            head = f"{rates.label}（{head}）" if zh else f"{rates.label} ({head})"
        out.append(head + colon + _rates_text(version, rates, lang))
    for site_id, rule in sorted(version.parking.items()):
        name = version.site_names.get(site_id, site_id)
        if rule.while_charging:
            out.append(
                f"{name}：充电期间免收停车费。" if zh else f"{name}: no parking fee while charging."
            )
        elif zh:
            out.append(f"{name}：充电车辆自充电开始起{rule.minutes}分钟内免收停车费。")
        else:
            out.append(
                f"{name}: charging cars park free for {rule.minutes} min from the start "
                "of charging."
            )
    out.append(
        "电费和服务费按各时段电量（精确到瓦时）乘以单价，逐项四舍五入到分；未输出电能的充电不收费。"
        if zh
        else "Energy and service fees are each band's energy (to the Wh) times its rate, each "
        "item rounded half up to the fen; a session that delivered no energy costs nothing."
    )
    return "\n".join(out)
