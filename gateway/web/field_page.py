"""The field page: the officers by squad with their body cams (online, battery, storage, last
seen, position) and the patrol drones (state, battery, link, last commands and outcomes), from
the same views as ``GET /api/v1/field`` and ``GET /api/v1/drones/{id}``; and, for operators,
the drone loudspeaker and return home by the same ``DroneService.command`` as
``POST /api/v1/drones/{id}/speaker`` and ``/return-home`` (recorded before it is sent; the
page shows its outcome)."""

from __future__ import annotations

import logging
from itertools import groupby
from typing import Any
from urllib.parse import quote as urlquote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from dronelink.model import CommandKind
from gateway.api.state import AppState
from gateway.directory.tokens import TokenInfo
from gateway.services.bodycams.views import field_view
from gateway.services.drones.service import CommandBusy, NotRecorded, UnknownDrone
from gateway.services.drones.views import drones_view
from gateway.web import ops
from gateway.web.base import StateDep, error_page, guard, posted, render
from gateway.web.session import COMMANDERS, FIELD_READERS

log = logging.getLogger(__name__)
router = APIRouter()
COMMANDS_SHOWN = 5
LINKS = {"online": "在线 · online", "lost": "失联 · lost", "unknown": "未知 · unknown"}
KINDS = {
    "speaker": "喊话 · speaker",
    "speaker_stop": "停止喊话 · speaker stop",
    "return_home": "返航 · return home",
}
STATUSES = {
    "pending": "已记录 · recorded",
    "sent": "已发送 · sent",
    "in_progress": "执行中 · in progress",
    "ok": "成功 · ok",
    "failed": "失败 · failed",
    "rejected": "被拒绝 · rejected",
    "timeout": "超时 · timeout",
    "canceled": "已取消 · canceled",
}


def _where(p: dict[str, Any] | None) -> str:
    if not p or p.get("lat") is None or p.get("lon") is None:
        return "—"
    return f"{p['lat']:.5f}, {p['lon']:.5f}"


def _officer(cam: dict[str, Any], state: AppState) -> dict[str, Any]:
    p = cam.get("position")
    return {
        "device_id": cam["device_id"],
        "name": cam.get("officer") or "—",
        "role": cam.get("role") or "",
        "online": bool(cam.get("online")),
        "battery": ops.percent(cam.get("battery_percent")),
        "storage": ops.storage(cam.get("storage_free_mb"), cam.get("storage_total_mb")),
        "last_seen": ops.local(cam.get("last_seen"), state.zone),
        "where": _where(p),
        "fix_at": ops.local(p.get("at") if p else None, state.zone),
        "lifecycle": cam.get("lifecycle"),
    }


def _command(c: dict[str, Any], state: AppState) -> dict[str, Any]:
    args = c.get("args") or {}
    return {
        "id": c["id"],
        "kind": KINDS.get(c["kind"], c["kind"]),
        "status": c["status"],
        "status_label": STATUSES.get(c["status"], c["status"]),
        "text": args.get("text"),
        "by": c.get("requested_by") or "",
        "at": ops.local(c.get("requested_at"), state.zone),
        "detail": c.get("detail") or "",
    }


async def _context(state: AppState) -> dict[str, Any]:
    if state.bodycams is not None:
        await state.bodycams.flush()
    if state.drones is not None:
        await state.drones.flush()
    b, d = state.bodycams_config, state.drones_config
    now = state.clock()
    async with state.sessions() as db:
        view = await field_view(
            db, now, b.keepalive_interval_s, b.keepalive_count, None, d.presence_timeout_s
        )
        drones = []
        for line in view.get("drones", []):
            one = await drones_view(db, now, d.presence_timeout_s, line["id"], COMMANDS_SHOWN)
            commands = one["drones"][0].get("commands", []) if one["drones"] else []
            dock = line.get("dock")
            drones.append({
                "id": line["id"], "name": line["name"], "kind": line["kind"],
                "lifecycle": line["lifecycle"], "link": line["link"],
                "link_label": LINKS.get(line["link"], line["link"]),
                "flying": line.get("flying"), "mode": line.get("mode") or "—",
                "battery": ops.percent(line.get("battery_percent")),
                "where": _where(line.get("position")),
                "last_seen": ops.local(line.get("last_seen"), state.zone),
                "dock": None if dock is None else LINKS.get(dock["link"], dock["link"]),
                "alerts": line.get("alerts") or [],
                "commands": [_command(c, state) for c in commands],
                "speaks": _speaks(state, line["kind"]),
            })  # fmt: skip
    squads = []
    cams = view["cams"]
    for squad, group in groupby(cams, key=lambda c: c.get("squad") or ""):
        members = [_officer(c, state) for c in group]
        squads.append({
            "name": squad or "未编组 · no squad", "officers": members,
            "online": sum(1 for m in members if m["online"]),
        })  # fmt: skip
    return {
        "squads": squads,
        "total": view["total"],
        "online": view["online"],
        "drones": drones,
        "as_of": ops.local(now, state.zone, "%H:%M:%S"),
        "speaker_max": d.speaker_max_chars,
        "default_volume": d.default_volume,
        "service": state.drones is not None,
    }


def _speaks(state: AppState, kind: str) -> bool:
    """Whether this drone's link has a loudspeaker (no button for one that would refuse)."""
    link = None if state.drones is None else state.drones.links.get(kind)
    return bool(getattr(link, "speaks", False))


def _done(drones: list[dict[str, Any]], command_id: str | None) -> dict[str, Any] | None:
    if not command_id or len(command_id) > 40:
        return None
    for d in drones:
        for c in d["commands"]:
            if c["id"] == command_id:
                return {"drone": d["id"], **c}
    return None


async def _page(
    request: Request, state: AppState, who: TokenInfo, status: int = 200, **extra: Any
) -> Response:
    ctx = await _context(state)
    done = _done(ctx["drones"], request.query_params.get("command"))
    shown: dict[str, Any] = {"error": None, "error_drone": None, "text": ""}
    shown.update(extra)
    return render(
        request, "field.html", status, who=who, page="field", done=done,
        may_command=who.role in COMMANDERS, **ctx, **shown,
    )  # fmt: skip


@router.get("/field")
async def field_page(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, FIELD_READERS)
    if not isinstance(who, TokenInfo):
        return who
    return await _page(request, state, who)


async def _send(
    request: Request, state: AppState, who: TokenInfo, drone_id: str, kind: CommandKind,
    args: dict[str, Any],
) -> Response:  # fmt: skip
    if state.drones is None:
        message = "本机未运行无人机服务。 · The drone service does not run here."
        return error_page(request, 503, message, who)
    try:
        record = await state.drones.command(drone_id, kind, args, who.label or who.id)
    except UnknownDrone:
        message = f"没有无人机 {drone_id[:64]!r}。 · No drone {drone_id[:64]!r}."
        return error_page(request, 404, message, who)
    except CommandBusy as exc:
        return error_page(request, 409, f"上一条同类指令仍在执行。 · {exc}", who)
    except NotRecorded as exc:
        return error_page(request, 503, f"未能记录，未发送。 · Not recorded, not sent: {exc}", who)
    except ValueError as exc:
        return error_page(request, 422, str(exc)[:200], who)
    log.info("web: drone %s %s by token %s: %s", drone_id, kind.value, who.id, record.status)
    target = f"/web/field?command={urlquote(record.id)}#drone-{urlquote(drone_id)}"
    return RedirectResponse(target, 303)


@router.post("/field/drones/{drone_id}/speaker")
async def speaker(drone_id: str, request: Request, state: StateDep) -> Response:
    got = await posted(request, state, COMMANDERS)
    if not isinstance(got, tuple):
        return got
    who, form = got
    c = state.drones_config
    try:
        args = ops.speaker_args(form, c.speaker_max_chars, c.default_volume)
    except ops.Refused as exc:
        return await _page(
            request, state, who, 422, error=str(exc), error_drone=drone_id[:64],
            text=form.get("text", "")[: c.speaker_max_chars],
        )  # fmt: skip
    return await _send(request, state, who, drone_id, CommandKind.SPEAKER, args.as_args())


@router.post("/field/drones/{drone_id}/return-home")
async def return_home(drone_id: str, request: Request, state: StateDep) -> Response:
    got = await posted(request, state, COMMANDERS)
    if not isinstance(got, tuple):
        return got
    who, _ = got
    return await _send(request, state, who, drone_id, CommandKind.RETURN_HOME, {})
