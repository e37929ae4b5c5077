"""The posted tariffs, each site's as a resident reads it at the entrance (zh and en, from
``parking.tariffs.summary``), and a quote form (arrive, leave: the itemised price, by the same
``make_quote`` as ``POST /api/v1/quotes``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.api.state import AppState
from gateway.directory.tokens import TokenInfo
from gateway.services.parking.quotes import QuoteRequest, current_version, make_quote
from gateway.web.base import StateDep, guard, posted, render
from gateway.web.session import STAFF
from parking.tariffs import summary

router = APIRouter()
VEHICLES = (
    ("small", "小型车 · small"),
    ("large", "大型车 · large"),
    ("new_energy", "新能源车 · new energy"),
)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _tariff_context(state: AppState) -> dict[str, Any]:
    """Each site's posted text, zh and en; sites whose texts are the same share one card (the
    page lists every site, and reads like the signs at their entrances)."""
    v = current_version(state.tariffs, state.clock())
    sites = []
    cards: dict[tuple[str, str], dict[str, Any]] = {}
    for s in sorted(state.sites.values(), key=lambda s: (s.segment_class, s.kind.value, s.id)):
        zh = summary(v, "zh", s.segment_class, s.id)
        en = summary(v, "en", s.segment_class, s.id)
        sites.append({"id": s.id, "name": s.name})
        card = cards.setdefault(
            (zh, en),
            {"site_class": s.segment_class, "zh": zh.splitlines(), "en": en.splitlines(),
             "sites": []},
        )  # fmt: skip
        card["sites"].append({"id": s.id, "name": s.name})
    return {
        "version": v.version,
        "sites": sites,
        "cards": list(cards.values()),
        "vehicles": VEHICLES,
        "zone": str(state.zone),
    }


def _local_default(state: AppState, hours: int) -> str:
    now = state.clock().astimezone(state.zone).replace(second=0, microsecond=0)
    return (now.replace(minute=0) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


@router.get("/tariffs")
async def tariffs_page(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, STAFF)
    if not isinstance(who, TokenInfo):
        return who
    form = {
        "site_id": "",
        "vehicle_class": "small",
        "entry": _local_default(state, 1),
        "exit": _local_default(state, 3),
    }
    return render(
        request, "tariffs.html", who=who, page="tariffs", form=form, result=None,
        **_tariff_context(state),
    )  # fmt: skip


def _local_instant(text: str, state: AppState) -> datetime:
    """A ``datetime-local`` value, read in the town's zone (ValueError when it is not one)."""
    if len(text) > 32:
        raise ValueError("too long")
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        raise ValueError("a local time has no offset")
    return value.replace(tzinfo=state.zone)


def _quote_result(state: AppState, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    site = state.sites.get(form.get("site_id", ""))
    if site is None:
        return 422, {"error": "请选择停车点。 · Choose a site."}
    try:
        entry = _local_instant(form.get("entry", ""), state)
        exit_ = _local_instant(form.get("exit", ""), state)
    except ValueError:
        return 422, {"error": "请填写入场和离场时间。 · Give the arrival and leaving times."}
    try:
        req = QuoteRequest(
            site_id=site.id, vehicle_class=form.get("vehicle_class"), entry=entry, exit=exit_
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        text = str(first.get("msg", "not valid"))[:200]
        return 422, {"error": f"无法估算 · Cannot quote: {where} {text}".strip()}
    try:
        q = make_quote(state.tariffs, site, req, state.max_stay_days)
    except ValueError as exc:
        return 422, {"error": f"无法估算 · Cannot quote: {str(exc)[:200]}"}
    zone = state.zone

    def local(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(zone).strftime("%m-%d %H:%M")

    vehicle = dict(VEHICLES)[q["vehicle_class"]]
    return 200, {
        "error": None,
        "site": site.name,
        "vehicle": vehicle,
        "total": _yuan(q["total_fen"]),
        "version": q["tariff_version"],
        "lines": [
            {
                "start": local(ln["start"]),
                "end": local(ln["end"]),
                "rule": ln["rule"],
                "units": ln["units"],
                "amount": _yuan(ln["amount_fen"]),
            }
            for ln in q["lines"]
        ],
    }


@router.post("/tariffs/quote")
async def quote_form(request: Request, state: StateDep) -> Response:
    """A quote for the form's stay: the result fragment for htmx, the whole page without it."""
    got = await posted(request, state, STAFF)
    if not isinstance(got, tuple):
        return got
    who, form = got
    status, result = _quote_result(state, form)
    if request.headers.get("hx-request") == "true":
        return render(request, "quote.html", status, result=result)
    shown = {k: form.get(k, "") for k in ("site_id", "vehicle_class", "entry", "exit")}
    return render(
        request, "tariffs.html", status, who=who, page="tariffs", form=shown, result=result,
        **_tariff_context(state),
    )  # fmt: skip
