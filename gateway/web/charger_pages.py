"""The charger health pages: the fleet worst first (``/web/chargers``), one charger with its
status timeline, faults, energy, sessions and connectors (``/web/chargers/{id}``), and the
commands an operator may send it (``POST /web/chargers/{id}/command``). The figures come from
the same functions as ``GET /api/v1/chargers[/{id}[/sessions]]`` and commands go through the
same ``send_command`` as the API's (audited there); this module only lays them out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from charging.health import HealthState
from gateway.api.auth import actor_of
from gateway.api.state import AppState
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.charging.commands import Refused, send_command
from gateway.services.charging.views import charger_view, fleet_view, recent_sessions
from gateway.web import charts
from gateway.web.base import StateDep, error_page, guard, read_form, render
from gateway.web.session import CHARGER_READERS, FormError

router = APIRouter()
# Who may send commands: the roles of POST /api/v1/chargers/{id}/commands/... (admin too).
COMMANDERS = frozenset({Role.OPERATOR, Role.TECHNICIAN, Role.ADMIN})
DAY, WEEK = timedelta(hours=24), timedelta(days=7)
# The charts' viewBox: 600 wide (shown at most 48rem wide, so text stays readable on a phone
# and not huge on a desktop), the timeline's rows and connector-label column.
CHART_W, ROW_H, BAR_H, LABEL_W = 600.0, 26.0, 18.0, 40.0
DAY_CHART_H = 110.0
MAX_ID = 48  # a charger id's length in the registry

# The buttons: action -> (command, label, whether it acts on one connector).
ACTIONS: dict[str, tuple[str, str, bool]] = {
    "reset-soft": ("reset", "软重启 · Soft reset", False),
    "reset-hard": ("reset", "硬重启 · Hard reset", False),
    "status": ("trigger_message", "请求上报状态 · Ask for status", False),
    "unlock": ("unlock_connector", "解锁 · Unlock", True),
    "inoperative": ("change_availability", "停用 · Take out of service", True),
    "operative": ("change_availability", "启用 · Put in service", True),
    "stop": ("remote_stop", "远程停止充电 · Stop charging", True),
}


def _not_found(request: Request, who: TokenInfo, charger_id: str) -> Response:
    shown = charger_id[:MAX_ID]
    return error_page(
        request,
        404,
        f"没有编号为 {shown!r} 的充电桩。 · There is no charger {shown!r}.",
        who,
    )


def _state_filter(raw: str | None) -> tuple[HealthState | None, str | None]:
    """The fleet page's ``state`` query: a state (None: all), or the refusal's text."""
    if raw is None or raw == "":
        return None, None
    try:
        return HealthState(raw), None
    except ValueError:
        names = ", ".join(s.value for s in HealthState)
        return None, f"未知状态 · unknown state {raw[:32]!r}; states: {names}"


@router.get("/chargers")
async def fleet_page(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, CHARGER_READERS)
    if not isinstance(who, TokenInfo):
        return who
    raw = request.query_params.get("state")
    wanted, refused = _state_filter(raw)
    if refused is not None:
        return error_page(request, 400, refused, who)
    rt, now = state.charging, state.clock()
    view = fleet_view(rt, now)
    lines = []
    for line in view["chargers"]:
        if wanted is not None and line["state"] != wanted.value:
            continue
        avail = rt.book.availability(line["id"], now)
        site = state.sites.get(line["site_id"] or "")
        lines.append(
            {
                **line,
                "label": charts.STATE_LABELS.get(line["state"], line["state"]),
                "since_local": charts.local(line["since"], state.zone),
                "for": charts.duration(line["since"], now),
                "day": charts.pct(avail.day),
                "week": charts.pct(avail.week),
                "site": site.name if site else (line["place"] or "—"),
            }
        )
    counts = [
        {"state": h.value, "label": charts.STATE_LABELS[h.value], "n": view["counts"].get(h, 0)}
        for h in HealthState
    ]
    return render(
        request, "chargers.html", who=who, page="chargers", counts=counts, lines=lines,
        total=view["total"], wanted=wanted.value if wanted else None,
        as_of=charts.local(view["at"], state.zone),
    )  # fmt: skip


def _timeline(state: AppState, charger_id: str, ids: list[int], now: datetime, span: timedelta,
              step: timedelta) -> dict[str, Any]:  # fmt: skip
    width = CHART_W - LABEL_W
    rows = []
    for i, cid in enumerate(ids):
        line = state.charging.book.timeline(charger_id, cid, now)
        bars = charts.timeline_bars(line, now - span, now, width)
        rows.append(
            {
                "y": i * ROW_H,
                "label": f"#{cid}",
                "bars": [
                    {"x": b.x + LABEL_W, "w": b.width, "css": b.css, "status": b.status,
                     "from": charts.local(b.start.isoformat(), state.zone),
                     "to": charts.local(b.end.isoformat(), state.zone)}
                    for b in bars
                ],
            }
        )  # fmt: skip
    axis = [
        (x + LABEL_W, label) for x, label in charts.ticks(now - span, now, step, state.zone, width)
    ]
    return {
        "rows": rows,
        "height": len(ids) * ROW_H + 20,
        "axis_y": len(ids) * ROW_H,
        "ticks": axis,
        "w": CHART_W,
        "lane_x": LABEL_W,
        "lane_w": width,
        "bar_h": BAR_H,
    }


async def _charger_context(state: AppState, charger_id: str, who: TokenInfo) -> dict[str, Any]:
    rt, now, zone = state.charging, state.clock(), state.zone
    view = charger_view(rt, charger_id, now)
    info = rt.chargers[charger_id]
    week_start = datetime.combine(
        (now.astimezone(zone) - timedelta(days=6)).date(), datetime.min.time(), zone
    )
    async with state.sessions() as db:
        recent = await recent_sessions(db, charger_id, 20)
        week = await recent_sessions(db, charger_id, 2000, since=week_start - timedelta(days=1))
    days = charts.energy_by_day(week, now, zone)
    cols = charts.columns([(d.strftime("%m-%d"), wh) for d, wh in days], DAY_CHART_H, CHART_W)
    ids = [c["id"] for c in view["connectors"] if c["id"] > 0] or list(
        range(1, info.connectors + 1)
    )
    avail = view["availability"]["connectors"]
    connectors = [
        {
            **c,
            "since_local": charts.local(c["since"], zone),
            "meter": charts.kwh(c["last_meter_wh"]),
            "day": charts.pct(avail.get(str(c["id"]), {}).get("day")),
            "week": charts.pct(avail.get(str(c["id"]), {}).get("week")),
        }
        for c in view["connectors"]
    ]
    site = state.sites.get(view["site_id"] or "")
    return {
        "c": view,
        "site": site.name if site else (view["place"] or "—"),
        "label": charts.STATE_LABELS.get(view["state"], view["state"]),
        "since_local": charts.local(view["since"], zone),
        "for": charts.duration(view["since"], now),
        "last_seen": charts.local(view["last_seen"], zone),
        "day": charts.pct(view["availability"]["day"]),
        "week": charts.pct(view["availability"]["week"]),
        "energy_today": charts.kwh(view["energy_today_wh"]),
        "energy_week": charts.kwh(sum(wh for _, wh in days)),
        "columns": [
            {
                "x": col.x,
                "y": col.y,
                "w": col.width,
                "h": col.height,
                "label": col.label,
                "kwh": charts.kwh(col.value),
                "mid": col.x + col.width / 2,
            }
            for col in cols
        ],
        "chart_h": DAY_CHART_H,
        "chart_w": CHART_W,
        "timeline_day": _timeline(state, charger_id, ids, now, DAY, timedelta(hours=6)),
        "timeline_week": _timeline(state, charger_id, ids, now, WEEK, timedelta(days=1)),
        "legend": charts.LEGEND,
        "connectors": connectors,
        "faults": [
            {
                **f,
                "start_local": charts.local(f["start"], zone),
                "end_local": charts.local(f["end"], zone) if f["end"] else "仍在 · ongoing",
            }
            for f in view["faults"]
        ],
        "sessions": [
            {
                **s,
                "start_local": charts.local(s["started_at"], zone),
                "end_local": charts.local(s["ended_at"], zone),
                "kwh": charts.kwh(charts.session_energy_wh(s)) if s["ended_at"] else "—",
                "yuan": "—" if s["total_fen"] is None else f"{s['total_fen'] / 100:.2f}",
            }
            for s in recent
        ],
        "can_command": who.role in COMMANDERS,
        "connected": charger_id in rt.live,
        "actions": {k: v[1] for k, v in ACTIONS.items()},
        "as_of": charts.local(now.isoformat(), zone),
    }


@router.get("/chargers/{charger_id}")
async def charger_page(charger_id: str, request: Request, state: StateDep) -> Response:
    who = await guard(request, state, CHARGER_READERS)
    if not isinstance(who, TokenInfo):
        return who
    if charger_id not in state.charging.chargers:
        return _not_found(request, who, charger_id)
    ctx = await _charger_context(state, charger_id, who)
    return render(request, "charger.html", who=who, page="chargers", outcome=None, **ctx)


def _command_of(
    state: AppState, charger_id: str, form: dict[str, str]
) -> tuple[str, dict[str, Any], str]:
    """The command, parameters and label a form asks for (ValueError: what is wrong)."""
    action = form.get("action", "")
    if action not in ACTIONS:
        raise ValueError(f"未知操作 · unknown action {action[:32]!r}")
    command, label, per_connector = ACTIONS[action]
    if not per_connector:
        if action == "status":
            return command, {"message": "StatusNotification"}, label
        return command, {"type": action.removeprefix("reset-")}, label
    info = state.charging.chargers[charger_id]
    raw = form.get("connector", "")
    if not (0 < len(raw) <= 3 and raw.isascii() and raw.isdigit()) or not (
        1 <= int(raw) <= max(info.connectors, 1)
    ):
        raise ValueError(f"没有这个接口 · no connector {raw[:8]!r}")
    cid = int(raw)
    label = f"{label} #{cid}"
    if action == "unlock":
        return command, {"connector_id": cid}, label
    if action in ("operative", "inoperative"):
        return command, {"connector_id": cid, "operative": action == "operative"}, label
    conn = state.charging.book.state(charger_id).connectors.get(cid)
    tx = conn.transaction_id if conn else None
    if not tx:
        raise ValueError(f"接口 #{cid} 没有进行中的充电 · connector #{cid} has no transaction")
    return command, {"transaction_id": tx}, label


@router.post("/chargers/{charger_id}/command")
async def command_form(charger_id: str, request: Request, state: StateDep) -> Response:
    """Send the form's command: the outcome as a fragment for htmx, the whole page without."""
    who = await guard(request, state, CHARGER_READERS)
    if not isinstance(who, TokenInfo):
        return who
    if who.role not in COMMANDERS:
        state.metrics.api_auth_failures.labels("forbidden").inc()
        names = " / ".join(sorted(r.value for r in COMMANDERS))
        return error_page(
            request, 403,
            f"发送指令需要以下角色之一：{names}；当前令牌的角色是 {who.role.value}。 · "
            f"Sending commands needs one of the roles {names}; this token's role is "
            f"{who.role.value}.",
            who,
        )  # fmt: skip
    htmx = request.headers.get("hx-request") == "true"
    try:
        form = await read_form(request, state)
    except FormError as exc:
        if htmx:  # the reason where the outcome goes, not a whole page inside the page
            return render(request, "command_result.html", exc.status,
                          outcome={"ok": False, "label": "", "text": exc.message})  # fmt: skip
        return error_page(request, exc.status, exc.message, who)
    if charger_id not in state.charging.chargers:
        return _not_found(request, who, charger_id)
    status, outcome = 200, {"ok": True, "label": "", "text": ""}
    try:
        command, params, label = _command_of(state, charger_id, form)
    except ValueError as exc:
        status, outcome = 422, {"ok": False, "label": "", "text": str(exc)}
    else:
        outcome["label"] = label
        try:
            sent = await send_command(
                state.charging, state.sessions, state.clock, actor_of(who).via("web"),
                charger_id, command, params,
            )  # fmt: skip
            ok = sent.status in ("Accepted", "Unlocked", "Scheduled")
            outcome.update(ok=ok, text=f"充电桩应答 · The charger answered: {sent.status}")
        except Refused as exc:
            # A charger that does not answer is news for the page, not a server error.
            status = 200 if exc.status >= 500 else exc.status
            text = {
                "not_connected": "充电桩未连接 · The charger is not connected",
                "no_answer": "充电桩未及时应答 · The charger did not answer in time",
            }.get(exc.code, exc.message[:200])
            outcome.update(ok=False, text=text)
    if htmx:
        return render(request, "command_result.html", status, outcome=outcome)
    ctx = await _charger_context(state, charger_id, who)
    return render(request, "charger.html", status, who=who, page="chargers", outcome=outcome,
                  **ctx)  # fmt: skip
