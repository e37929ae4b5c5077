"""The one map ("停车资源一张图"): every site with its live counts over an SVG of the town
(zones and the streets' centre lines from the town file, the on-street parking segments
joined from their berths), chargers for those
who may read them, body cams and drones for those who may see the field; and its live stream
(the site's counts as HTML, swapped in by htmx's SSE extension)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from events import Event, SiteCountsChanged
from gateway.api.sse import counts_stream
from gateway.api.state import AppState
from gateway.directory import documents
from gateway.directory.tokens import TokenInfo
from gateway.directory.town import SiteKind
from gateway.services.bodycams.views import field_view
from gateway.services.charging.views import fleet_view
from gateway.web import geo, ops
from gateway.web.base import StateDep, env, guard, render, visitor
from gateway.web.map_live import FieldFeed
from gateway.web.ops import local
from gateway.web.session import CHARGER_READERS, FIELD_READERS, LANE_READERS, STAFF

router = APIRouter()
KIND_LABELS = {SiteKind.CAR_PARK: "停车场 · car park", SiteKind.ON_STREET: "路内泊位 · on-street"}


def _counts_html(state: AppState, site_id: str) -> Markup:
    """A site's counts as HTML (the template escapes what it puts in), for the page and the
    stream alike."""
    v = state.book.site(site_id)
    level = geo.fill_level(v.free, v.capacity, v.unknown)
    view = {
        "free": v.free,
        "occupied": v.occupied,
        "unknown": v.unknown,
        "capacity": v.capacity,
        "level": level,
    }
    return Markup(env.get_template("counts.html").render(v=view).strip())  # noqa: S704


async def field_marks(state: AppState, frame: geo.Frame) -> dict[str, list[dict[str, Any]]]:
    if state.bodycams is not None:
        await state.bodycams.flush()
    if state.drones is not None:
        await state.drones.flush()
    c = state.bodycams_config
    async with state.sessions() as db:
        view = await field_view(
            db, state.clock(), c.keepalive_interval_s, c.keepalive_count, None,
            state.drones_config.presence_timeout_s,
        )  # fmt: skip
    officers, drones = [], []
    for cam in view["cams"]:
        p = cam.get("position")
        if p:
            x, y = frame.xy(p["lon"], p["lat"])
            officers.append({"id": cam["device_id"], "name": cam.get("officer") or cam["device_id"],
                             "x": x, "y": y, "at": local(p.get("at"), state.zone),
                             "online": bool(cam.get("online")),
                             "inside": frame.contains(p["lon"], p["lat"])})  # fmt: skip
    for d in view.get("drones", []):
        p = d.get("position")
        if p and p.get("lat") is not None:
            x, y = frame.xy(p["lon"], p["lat"])
            drones.append({"id": d["id"], "name": d.get("name") or d["id"], "x": x, "y": y,
                           "at": local(d.get("last_seen"), state.zone),
                           "online": d.get("link") == "online",
                           "inside": frame.contains(p["lon"], p["lat"])})  # fmt: skip
    return {"officers": officers, "drones": drones}


def lane_marks_of(state: AppState, frame: geo.Frame) -> list[dict[str, Any]]:
    """One mark per car park with lanes, beside its circle: how many, each lane's phase (the
    lanes page has the rest); ``busy`` when a lane is not idle (waiting, raising, at fault)."""
    by_site: dict[str, list[Any]] = {}
    for rt in state.lanes.lanes.values():
        by_site.setdefault(rt.config.site_id, []).append(rt)
    marks = []
    for site_id, lanes in sorted(by_site.items()):
        site = state.sites.get(site_id)
        if site is None or not frame.contains(site.lon, site.lat):
            continue
        x, y = frame.xy(site.lon, site.lat)
        lanes.sort(key=lambda rt: rt.config.id)
        marks.append({
            "site": site.name, "first": lanes[0].config.id, "x": x + 22, "y": y - 20,
            "lanes": [(rt.config.id, ops.LANE_KINDS.get(rt.config.kind, rt.config.kind),
                       ops.PHASES.get(rt.state.phase, rt.state.phase)) for rt in lanes],
            "busy": any(rt.state.phase != "idle" for rt in lanes),
        })  # fmt: skip
    return marks


async def frame_of_town(
    state: AppState,
) -> tuple[geo.Frame, list[Any], list[documents.StreetLine]]:
    """The map's frame (sites, zones, streets, chargers: the page and its stream use the same),
    the town's zones and its streets."""
    async with state.sessions() as db:
        zones = await documents.town_zones(db)
        streets = await documents.town_streets(db)
    points: list[geo.Point] = [(s.lon, s.lat) for s in state.sites.values()]
    points += [p for z in zones for p in z.polygon]
    points += [p for st in streets for p in st.line]
    points += [(c.lon, c.lat) for c in state.charging.chargers.values()]
    return geo.frame_of(points), zones, streets


@router.get("/map")
async def map_page(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, STAFF)
    if not isinstance(who, TokenInfo):
        return who
    chargers = state.charging.chargers
    frame, zones, town_streets = await frame_of_town(state)
    roads = [
        {"name": st.name, "kind": st.kind, "d": geo.path_d(frame, st.line)}
        for st in sorted(town_streets, key=lambda st: st.kind != "minor")  # main ones on top
    ]
    by_site: dict[str, list[geo.Point]] = {}
    for b in state.berths.values():
        by_site.setdefault(b.site, []).append((b.lon, b.lat))
    streets = [  # the on-street parking segments, along their kerbs
        {"name": s.name, "d": geo.path_d(frame, geo.street_line(by_site[s.id]))}
        for s in state.sites.values()
        if s.kind is SiteKind.ON_STREET and len(by_site.get(s.id, ())) >= 2
    ]
    sites = []
    for s in sorted(state.sites.values(), key=lambda s: (s.kind.value, s.id)):
        v = state.book.site(s.id)
        x, y = frame.xy(s.lon, s.lat)
        sites.append(
            {
                "id": s.id,
                "name": s.name,
                "kind": s.kind.value,
                "kind_label": KIND_LABELS[s.kind],
                "address": s.address,
                "x": x,
                "y": y,
                "free": v.free,
                "level": geo.fill_level(v.free, v.capacity, v.unknown),
                "counts": _counts_html(state, s.id),
            }
        )
    now = state.clock()
    charger_marks: list[dict[str, Any]] | None = None
    if who.role in CHARGER_READERS:
        charger_marks = []
        for line in fleet_view(state.charging, now)["chargers"]:
            info = chargers.get(line["id"])
            if info is None or not frame.contains(info.lon, info.lat):
                continue
            x, y = frame.xy(info.lon, info.lat)
            charger_marks.append({"id": line["id"], "place": line["place"] or "",
                                  "state": line["state"], "x": x, "y": y,
                                  "available": line["state"] == "available"})  # fmt: skip
    field = await field_marks(state, frame) if who.role in FIELD_READERS else None
    lane_marks = lane_marks_of(state, frame) if who.role in LANE_READERS else None
    return render(
        request,
        "map.html",
        who=who,
        page="map",
        frame=frame,
        zones=[
            {"name": z.name, "kind": z.kind, "d": geo.path_d(frame, z.polygon, closed=True)}
            for z in zones
        ],
        roads=roads,
        streets=streets,
        sites=sites,
        chargers=charger_marks,
        chargers_available=sum(1 for c in charger_marks or [] if c["available"]),
        field=field,
        lanes=lane_marks,
        lanes_busy=sum(1 for m in lane_marks or [] if m["busy"]),
        as_of=now.astimezone(state.zone).strftime("%H:%M:%S"),
    )


def _sse(site_id: str, html: str) -> bytes:
    return f"event: site-{site_id}\ndata: {html.replace(chr(10), ' ')}\n\n".encode()


@router.get("/map/stream")
async def map_stream(request: Request, state: StateDep) -> Response:
    """Server-Sent Events for the map: an event ``site-<id>`` whose data is the site's counts
    as HTML (htmx's SSE extension swaps it in), every site on connect and after a client fell
    behind, then each change; for those who may see the field, an event ``field`` per
    officer or drone marker that moved or went on/offline (``gateway.web.map_live``)."""
    who = await visitor(request, state)
    if who is None or who.role not in STAFF:
        return Response("login required", 401 if who is None else 403, media_type="text/plain")

    feed = None
    if who.role in FIELD_READERS:  # the markers as the page draws them: field readers only
        frame, _, _ = await frame_of_town(state)
        feed = FieldFeed(state, frame, await field_marks(state, frame))

    def accepts(e: Event) -> bool:
        return isinstance(e, SiteCountsChanged) or (feed is not None and feed.accepts(e))

    sub = state.bus.subscribe("web-map", accepts, maxsize=1000)

    def everything() -> bytes:
        return b"".join(_sse(s, _counts_html(state, s)) for s in state.sites)

    def changed(ev: SiteCountsChanged) -> bytes:
        if ev.site_id not in state.sites:
            return b""
        return _sse(ev.site_id, _counts_html(state, ev.site_id))

    return counts_stream(
        request, state.bus.unsubscribe, sub, state.sse_keepalive_s, everything, changed, feed
    )
