"""The public site list and map from kept fragments (gateway.api.site_json) are byte for byte
what the models and encoders write, for any sites and counts, and follow every change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.models import SitesOut
from gateway.api.site_json import SiteJson, _age_text, age_of, site_out, state_of
from gateway.directory.town import Counting, Site, SiteKind
from parking.occupancy import SiteView

NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

names = st.text(min_size=1, max_size=30)


@st.composite
def a_site(draw: st.DrawFn, i: int) -> tuple[Site, SiteView]:
    capacity = draw(st.integers(0, 500))
    free = draw(st.integers(0, capacity))
    occupied = draw(st.integers(0, capacity - free))
    site = Site(
        id=f"S{i:03d}",
        name=draw(names),
        kind=draw(st.sampled_from(list(SiteKind))),
        lat=draw(st.floats(-90, 90, allow_nan=False)),
        lon=draw(st.floats(-180, 180, allow_nan=False)),
        capacity=capacity,
        counting=draw(st.sampled_from(list(Counting))),
        segment_class=draw(st.sampled_from(["A", "B", "一类"])),
        zone=draw(st.sampled_from([None, "Z1"])),
        address=draw(st.text(max_size=20)),
        controller_id=None,
    )
    ago = draw(st.floats(0, 10 * 365 * 86400, allow_nan=False))
    updated = NOW - timedelta(seconds=ago) + timedelta(microseconds=draw(st.integers(0, 999_999)))
    view = SiteView(site.id, capacity, free, occupied, capacity - free - occupied, updated,
                    draw(st.booleans()))  # fmt: skip
    return site, view


@st.composite
def towns(draw: st.DrawFn) -> list[tuple[Site, SiteView]]:
    n = draw(st.integers(0, 6))
    return [draw(a_site(i)) for i in range(n)]


def by_models(pairs: list[tuple[Site, SiteView]], now: datetime) -> bytes:
    out = [site_out(s, v, age_of(v, now)) for s, v in pairs]
    return SitesOut(sites=out, generated_at=now).model_dump_json().encode()


def map_by_encoder(pairs: list[tuple[Site, SiteView]], now: datetime) -> bytes:
    features = []
    for site, view in pairs:
        s = site_out(site, view, age_of(view, now))
        features.append(
            {
                "type": "Feature",
                "id": s.id,
                "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                "properties": s.model_dump(mode="json", exclude={"lat", "lon"}),
            }
        )
    doc = {"type": "FeatureCollection", "features": features, "generated_at": now.isoformat()}
    return json.dumps(doc, ensure_ascii=False).encode()


@settings(max_examples=300, deadline=None)
@given(town=towns(), later=st.floats(0, 86400, allow_nan=False))
def test_the_bytes_are_the_models_bytes_at_any_moment(
    town: list[tuple[Site, SiteView]], later: float
) -> None:
    cache = SiteJson()
    states = [(s, state_of(v)) for s, v in town]
    for now in (NOW, NOW + timedelta(seconds=later)):  # the second from kept fragments
        assert cache.sites(states, now) == by_models(town, now)
        assert cache.map(states, now) == map_by_encoder(town, now)
        json.loads(cache.sites(states, now))


def test_a_change_of_counts_or_of_the_town_row_is_served_at_once() -> None:
    site = Site(id="S1", name="东大街", kind=SiteKind.ON_STREET, lat=38.78, lon=101.08,
                capacity=10, counting=Counting.BERTH_SENSORS, segment_class="A")  # fmt: skip
    view = SiteView("S1", 10, 4, 6, 0, NOW, False)
    cache = SiteJson()
    first = json.loads(cache.sites([(site, state_of(view))], NOW))["sites"][0]
    assert (first["free"], first["name"]) == (4, "东大街")
    fuller = SiteView("S1", 10, 3, 7, 0, NOW + timedelta(seconds=1), False)
    fuller_t = state_of(fuller)
    assert json.loads(cache.sites([(site, fuller_t)], NOW))["sites"][0]["free"] == 3
    renamed = site.model_copy(update={"name": "西大街"})  # a new row object, as the feed makes
    got = json.loads(cache.map([(renamed, fuller_t)], NOW))["features"][0]["properties"]
    assert got["name"] == "西大街"
    assert json.loads(cache.sites([(renamed, fuller_t)], NOW))["sites"][0]["name"] == "西大街"


def _float_age_text(micros: int) -> bytes:
    return repr(round(max(0.0, micros / 1_000_000), 3)).encode()


@settings(max_examples=2000, deadline=None)
@given(
    micros=st.one_of(
        st.integers(-(10**7), 10**7),
        st.integers(0, 10**18),
        st.integers(0, 10**15).map(lambda n: n // 1000 * 1000 + 500),  # ties
        st.integers(10**15 - 10**4, 10**15 + 10**4),  # the edge of the integer way
    )
)
def test_an_age_from_integers_is_the_float_age(micros: int) -> None:
    assert _age_text(micros) == _float_age_text(micros)


def test_ages_across_a_tie_and_the_edge() -> None:
    for micros in [*range(-2000, 3001), 2500, 1500, 10**15 - 1, 10**15, 9 * 10**15, 2**53]:
        assert _age_text(micros) == _float_age_text(micros), micros


def test_a_naive_update_time_with_an_aware_now_still_refuses() -> None:
    site = Site(id="S1", name="x", kind=SiteKind.ON_STREET, lat=1.0, lon=2.0, capacity=1,
                counting=Counting.BERTH_SENSORS, segment_class="A")  # fmt: skip
    naive = SiteView("S1", 1, 1, 0, 0, NOW.replace(tzinfo=None), False)
    with pytest.raises(TypeError):
        SiteJson().sites([(site, state_of(naive))], NOW)
