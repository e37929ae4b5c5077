"""Public, read-only vacancy API: sites, berths, the city map and a live stream."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.dependencies.utils import get_dependant, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse

from events import Event, SiteCountsChanged
from gateway.api import problems
from gateway.api.models import BerthOut, BerthsOut, SensorOut, SiteOut, SitesOut
from gateway.api.site_json import age_of, site_out
from gateway.api.sse import counts_stream
from gateway.api.state import AppState, app_state, get_state
from gateway.directory.town import Site
from parking.occupancy import SiteState, SiteView

MAX_SITES = 500  # a stream follows at most this many sites: bounds the query and the error
router = APIRouter(prefix="/api/v1", tags=["vacancies (public)"])

StateDep = Annotated[AppState, Depends(get_state)]


def _site_out(state: AppState, view: SiteView, now: datetime) -> SiteOut:
    return site_out(state.sites[view.site_id], view, age_of(view, now))


def _pairs(state: AppState, kind: str | None = None) -> list[tuple[Site, SiteState]]:
    sites = state.sites
    pairs = [(sites[t[0]], t) for t in state.book.site_states()]
    return pairs if kind is None else [p for p in pairs if p[0].kind.value == kind]


def _site_or_404(state: AppState, site_id: str) -> SiteView:
    if site_id not in state.sites:
        raise problems.ProblemError(404, f"no site {site_id[:64]!r}", "no_site")
    return state.book.site(site_id)


KindQuery = Annotated[str | None, Query(pattern="^(car_park|on_street)$")]


def _kind_param(kind: KindQuery = None) -> None:
    """``GET /sites``'s one parameter, declared here for FastAPI to read and validate."""


_KIND_PARAMS = get_dependant(path="/sites", call=_kind_param).query_params
# As FastAPI writes the parameter in the OpenAPI document (tests/test_api_sites_kind.py
# holds the two to the same text).
KIND_OPENAPI = {
    "name": "kind",
    "in": "query",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string", "pattern": "^(car_park|on_street)$"}, {"type": "null"}],
        "title": "Kind",
    },
}


def kind_of(request: Request) -> str | None:
    """``kind`` as FastAPI reads and validates a declared query parameter (the same value,
    the same 422), only when there is a query string: solving a declared parameter costs
    ``GET /sites`` about a sixth of its time, on every request, most of which have none."""
    if not request.scope.get("query_string"):
        return None
    values, errors = request_params_to_args(_KIND_PARAMS, request.query_params)
    if errors:
        raise RequestValidationError(errors)
    kind: str | None = values["kind"]
    return kind


@router.get(
    "/sites",
    response_model=SitesOut,
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
    summary="All sites with live counts",
    openapi_extra={"parameters": [KIND_OPENAPI]},
)
async def list_sites(request: Request) -> Response:
    # SitesOut's bytes, from each site's JSON kept until it changes (gateway.api.site_json)
    state = app_state(request)
    body = state.site_json.sites(_pairs(state, kind_of(request)), state.clock())
    return Response(body, media_type="application/json")


# Before the routes with a path parameter: routing tries them in order, and this path
# is one of the two busiest.
@router.get(
    "/map",
    summary="GeoJSON FeatureCollection of all sites with live counts",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def city_map(request: Request) -> Response:
    state = app_state(request)
    body = state.site_json.map(_pairs(state), state.clock())
    return Response(body, media_type="application/geo+json")


@router.get("/sites/{site_id}", response_model=SiteOut, summary="One site with live counts")
async def get_site(site_id: str, state: StateDep) -> SiteOut:
    return _site_out(state, _site_or_404(state, site_id), state.clock())


@router.get("/sites/{site_id}/berths", response_model=BerthsOut, summary="Berths of a site")
async def list_berths(site_id: str, state: StateDep) -> BerthsOut:
    _site_or_404(state, site_id)
    out = []
    for v in state.book.berths(site_id):
        b = state.berths[v.berth_id]
        sensor = SensorOut(dev_eui=v.dev_eui, model=v.model or "") if v.dev_eui else None
        out.append(
            BerthOut(
                id=v.berth_id,
                number=b.number,
                lat=b.lat,
                lon=b.lon,
                state=v.state.value,
                since=v.since,
                last_seen=v.last_seen,
                comms_lost=v.comms_lost,
                sensor=sensor,
            )
        )
    return BerthsOut(site_id=site_id, berths=out, generated_at=state.clock())


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _counts(e: SiteCountsChanged) -> dict[str, Any]:
    return {
        "site_id": e.site_id,
        "capacity": e.capacity,
        "free": e.free,
        "occupied": e.occupied,
        "unknown": e.unknown,
        "updated_at": e.ts.isoformat(),
    }


@router.get(
    "/vacancies/stream",
    summary="Server-Sent Events: a `snapshot` of every site, then `counts` on every change",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **problems.responses(404, s404="a site id in `site` is unknown (code unknown_site)"),
    },
)
async def vacancy_stream(
    request: Request,
    state: StateDep,
    site: Annotated[
        list[str] | None, Query(description=f"only these site ids (at most {MAX_SITES})")
    ] = None,
) -> StreamingResponse:
    if site and len(site) > MAX_SITES:
        raise problems.invalid(
            f"at most {MAX_SITES} site ids (got {len(site)})", "too_many", ("query", "site")
        )
    wanted = set(site) if site else None
    if wanted and not wanted <= state.sites.keys():
        unknown = sorted(wanted - state.sites.keys())
        shown = ", ".join(s[:64] for s in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise problems.ProblemError(404, f"unknown site(s): {shown}", "unknown_site")

    def accepts(e: Event) -> bool:
        return isinstance(e, SiteCountsChanged) and (wanted is None or e.site_id in wanted)

    sub = state.bus.subscribe("sse", accepts, maxsize=1000)

    def snapshot() -> bytes:
        now = state.clock()
        sites = [
            _site_out(state, v, now).model_dump(mode="json")
            for v in state.book.sites()
            if wanted is None or v.site_id in wanted
        ]
        return _sse("snapshot", {"sites": sites})

    return counts_stream(
        request, state.bus.unsubscribe, sub, state.sse_keepalive_s, snapshot,
        lambda ev: _sse("counts", _counts(ev)),
    )  # fmt: skip
