"""Posted tariffs and quotes (public, read-only: a quote changes nothing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api import problems
from gateway.api.state import AppState, get_state
from gateway.services.parking.quotes import QuoteRequest, current_version, make_quote, version_json

router = APIRouter(prefix="/api/v1", tags=["tariffs (public)"])
StateDep = Annotated[AppState, Depends(get_state)]


@router.get("/tariffs", summary="Every posted tariff version, with plain-language summaries")
async def tariffs(state: StateDep) -> dict[str, Any]:
    book = state.tariffs
    return {
        "current": current_version(book, state.clock()).version,
        "versions": [version_json(v) for v in book.versions],
    }


@router.get("/sites/{site_id}/tariff", summary="The tariff posted at one site's entrance")
async def site_tariff(site_id: str, state: StateDep) -> dict[str, Any]:
    site = state.sites.get(site_id)
    if site is None:
        raise problems.ProblemError(404, f"no site {site_id[:64]!r}", "no_site")
    v = version_json(current_version(state.tariffs, state.clock()))
    v["rates"] = [r for r in v["rates"] if r["site_class"] == site.segment_class]
    v["free_first"] = {k: x for k, x in v["free_first"].items() if k == site_id}
    return {"site_id": site_id, "site_class": site.segment_class, **v}


@router.post(
    "/quotes",
    summary="Itemised fee for a stay (same result as `citygate tariff quote`)",
    description="Exactly one of `vehicle_class` or `plate` (`plate_colour` only with `plate`); "
    "`exit` not before `entry`; the stay within the posted tariff's versions and at most "
    "the configured maximum days. Otherwise a 422 naming the fields.",
)
async def post_quote(body: QuoteRequest, state: StateDep) -> dict[str, Any]:
    site = state.sites.get(body.site_id)
    if site is None:
        raise problems.invalid(
            f"unknown site {body.site_id!r}", "unknown_site", ("body", "site_id")
        )
    try:
        return make_quote(state.tariffs, site, body, state.max_stay_days)
    except ValueError as exc:
        raise problems.invalid(
            str(exc), "unquotable", ("body", "entry"), ("body", "exit")
        ) from None
