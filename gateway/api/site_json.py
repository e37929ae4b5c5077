"""The public site list and city map as JSON bytes, from fragments kept per site.

``GET /api/v1/sites`` and ``GET /api/v1/map`` are what the parking app asks most, from many
clients at once, and between two changes of a site its JSON differs only in ``age_s`` (now
minus ``updated_at``) and the list's ``generated_at``. So each site's JSON is made once per
change of its view (its counts, ``updated_at``, ``stale``) or of its town row, by the same
models and encoders as before (``SiteOut`` through pydantic for the list, ``json.dumps`` for the
map), with ``age_s`` set to a marker; the text is kept as the part before the marker and the
part after it. A request then joins the parts with each site's ``age_s`` of the moment. The
bytes are exactly those the models would write (``tests/test_site_json.py`` holds the two ways
to the same bytes), at a fraction of the cost: building ~30 ``SiteOut`` models per request was
most of the route's time. The parts are kept as UTF-8 (no encoding of the whole body per
request), and each age is written from integer microseconds (``_age_text``: the float's own
text, without a datetime subtraction, a float rounding and a repr per site).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from gateway.api.models import SiteOut
from gateway.directory.town import Site
from parking.occupancy import SiteState, SiteView

__all__ = ["SiteJson", "age_of", "site_out", "state_of"]

_MARK = 987654.125  # an age no site has (exact in binary, so its text is fixed)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def site_out(site: Site, view: SiteView, age_s: float) -> SiteOut:
    """The public model of one site with its live counts."""
    return SiteOut(
        id=site.id,
        name=site.name,
        kind=site.kind.value,
        lat=site.lat,
        lon=site.lon,
        capacity=view.capacity,
        free=view.free,
        occupied=view.occupied,
        unknown=view.unknown,
        updated_at=view.updated_at,
        age_s=age_s,
        stale=view.stale,
        counting=site.counting.value,
        segment_class=site.segment_class,
        zone=site.zone,
        address=site.address,
    )


def age_of(view: SiteView, now: datetime) -> float:
    return _age(view.updated_at, now)


def _age(updated_at: datetime, now: datetime) -> float:
    return round(max(0.0, (now - updated_at).total_seconds()), 3)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _micros(t: datetime) -> int:
    """*t* in whole microseconds from the epoch (an aware one's UTC, a naive one's as it is):
    ``(b - a).total_seconds()`` is ``(_micros(b) - _micros(a)) / 1_000_000`` to the last bit
    (both are the exact count of microseconds divided by a million, correctly rounded), so a
    request subtracts integers instead of datetimes."""
    return (t - (_NAIVE_EPOCH if t.utcoffset() is None else _EPOCH)) // _MICROSECOND


# After the point, for each count of milliseconds in the second: as repr writes it.
_FRACTIONS = tuple(f".{n:03d}".rstrip("0") if n else ".0" for n in range(1000))
_EXACT_BELOW = 10**15  # microseconds (31 years): within it, rounding the float is exact


def _age_text(micros: int) -> bytes:
    """``repr(_age(...))`` for an age of *micros* microseconds, from integers.

    Off a tie (500 microseconds past a millisecond) and below ``_EXACT_BELOW``, the float
    ``micros / 1e6`` is nearer its exact value than that value is to a millisecond's midpoint
    (a relative error of 2**-53 against at least 1e-6 s), so ``round(..., 3)`` gives the
    double nearest the nearest millisecond; and repr writes a decimal of at most 15 digits as
    it is, trailing zeros cut (but one). Ties and the rest take the float's own way."""
    if 0 < micros < _EXACT_BELOW and micros % 1000 != 500:
        seconds, millis = divmod((micros + 500) // 1000, 1000)
        return f"{seconds}{_FRACTIONS[millis]}".encode()
    return repr(round(max(0.0, micros / 1_000_000), 3)).encode()


def state_of(view: SiteView) -> SiteState:
    """A view as the tuple ``OccupancyBook.site_states`` yields."""
    return (view.site_id, view.capacity, view.free, view.occupied, view.unknown,
            view.updated_at, view.stale)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Parts:
    state: SiteState
    site: Site
    before: bytes  # the JSON up to the age's value, UTF-8
    after: bytes  # the JSON after it
    at: int  # its updated_at in microseconds (_micros)
    aware: bool  # whether its updated_at has an offset (a naive one with an aware now: raise)


def _split(text: str, key: str) -> tuple[str, str]:
    before, found, after = text.partition(key + repr(_MARK))
    if not found:
        raise AssertionError(f"no {key} marker in {text[:80]!r}")
    return before + key, after


def _list_parts(site: Site, view: SiteView) -> tuple[str, str]:
    return _split(site_out(site, view, _MARK).model_dump_json(), '"age_s":')


def _map_parts(site: Site, view: SiteView) -> tuple[str, str]:
    s = site_out(site, view, _MARK)
    feature = {
        "type": "Feature",
        "id": s.id,
        "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
        "properties": s.model_dump(mode="json", exclude={"lat", "lon"}),
    }
    return _split(json.dumps(feature, ensure_ascii=False), '"age_s": ')


class _Fragments:
    """Each site's two parts, remade when its view or its town row changed."""

    def __init__(self, make: Callable[[Site, SiteView], tuple[str, str]]) -> None:
        self._make = make
        self._parts: dict[str, _Parts] = {}

    def join(self, pairs: Iterable[tuple[Site, SiteState]], now: datetime, sep: bytes) -> bytes:
        out: list[bytes] = []
        append = out.append
        parts = self._parts
        now_at = _micros(now)
        aware = now.utcoffset() is not None
        ages: dict[int, bytes] = {}  # sites changed at the same moment: one text
        for site, state in pairs:
            p = parts.get(site.id)
            if p is None or p.state != state or p.site is not site:
                p = parts[site.id] = self._remake(site, state)
            if p.aware is not aware:
                _age(state[5], now)  # the TypeError subtracting them raises
            age = ages.get(p.at)
            if age is None:
                age = ages[p.at] = _age_text(now_at - p.at)
            append(p.before + age + p.after)
        if len(parts) > len(out) + 64:  # sites removed from the town: forget their parts
            parts.clear()
        return sep.join(out)

    def _remake(self, site: Site, state: SiteState) -> _Parts:
        before, after = self._make(site, SiteView(*state))
        at = state[5]
        return _Parts(
            state, site, before.encode(), after.encode(), _micros(at), at.utcoffset() is not None
        )


class SiteJson:
    """The two bodies, for one app (its sites and book)."""

    def __init__(self) -> None:
        self._list = _Fragments(_list_parts)
        self._map = _Fragments(_map_parts)

    def sites(self, pairs: Iterable[tuple[Site, SiteState]], now: datetime) -> bytes:
        """``SitesOut(sites=..., generated_at=now)`` as pydantic writes it."""
        joined = self._list.join(pairs, now, b",")
        return b'{"sites":[%s],"generated_at":%s}' % (joined, _DATETIME.dump_json(now))

    def map(self, pairs: Iterable[tuple[Site, SiteState]], now: datetime) -> bytes:
        """The GeoJSON FeatureCollection as ``json.dumps(..., ensure_ascii=False)`` writes it."""
        joined = self._map.join(pairs, now, b", ")
        # An ISO 8601 text holds nothing JSON escapes: json.dumps would only add the quotes.
        stamp = now.isoformat().encode()
        return b'{"type": "FeatureCollection", "features": [%s], "generated_at": "%s"}' % (
            joined,
            stamp,
        )
