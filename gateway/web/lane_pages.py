"""The car-park lanes page: each lane's phase, gate, camera and last decisions with the
camera's plate pictures (served small through ``/web/lanes/reads/...``, behind the login), and
the operator's open with a reason, by the same ``LaneService.operator_open`` as
``POST /api/v1/lanes/{id}/open`` (recorded as a lane decision with the reason and the token's
id; then the page shows it)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, or_, select

from gateway.api.state import AppState
from gateway.directory.tokens import TokenInfo
from gateway.infra.storage.schema import CameraReadRow
from gateway.services.lanes.runtime import UnknownLane
from gateway.web import ops
from gateway.web.base import SECURITY_HEADERS, StateDep, error_page, guard, posted, render
from gateway.web.session import COMMANDERS, LANE_READERS

log = logging.getLogger(__name__)
router = APIRouter()
SHOWN = 10  # decisions per lane on the page (the API keeps 20)
READS_LOOKED_AT = 1000  # reads searched for the shown decisions' pictures, at most
KINDS = ops.LANE_KINDS


async def _reads(state: AppState, lanes: list[Any]) -> list[ops.ReadRef]:
    """The reads that may go with the decisions shown: each lane camera's, received within
    READ_NEAR of the span of its lane's shown decisions (bounded: READS_LOOKED_AT)."""
    spans = []
    for rt in lanes:
        times = [d.created_at for d in list(rt.recent)[-SHOWN:] if not d.operator]
        if times:
            lo, hi = min(times) - ops.READ_NEAR, max(times) + ops.READ_NEAR
            spans.append(
                and_(CameraReadRow.camera_id == rt.config.camera_id,
                     CameraReadRow.received_at.between(lo, hi))
            )  # fmt: skip
    if not spans:
        return []
    async with state.sessions() as db:
        rows = (
            await db.execute(
                select(
                    CameraReadRow.id, CameraReadRow.camera_id, CameraReadRow.plate,
                    CameraReadRow.received_at, CameraReadRow.images,
                )
                .where(or_(*spans))
                .order_by(CameraReadRow.id.desc())
                .limit(READS_LOOKED_AT)
            )
        ).all()  # fmt: skip
    return [ops.ReadRef(r[0], r[1], r[2], r[3], tuple(r[4] or ())) for r in rows]


def _decision(d: Any, camera_id: str, reads: list[ops.ReadRef], state: AppState) -> dict[str, Any]:
    read = None if d.operator else ops.read_for(camera_id, d.plate, d.created_at, reads)
    pictures = []
    thumb = None
    if read is not None:
        pictures = [f"/web/lanes/reads/{read.id}/{i}" for i in range(len(read.images))]
        n = ops.thumbnail_index(read.images)
        thumb = None if n is None else pictures[n]
    return {
        "id": d.id,
        "at": ops.local(d.created_at, state.zone),
        "plate": d.plate or "—",
        "verdict": d.verdict,
        "state": d.state,
        "outcome": ops.OUTCOMES.get(d.state, d.state),
        "detail": d.detail,
        "reason": d.reason,
        "operator": d.operator,
        "thumb": thumb,
        "pictures": pictures,
    }


async def _lanes(state: AppState) -> list[dict[str, Any]]:
    lanes = sorted(state.lanes.lanes.values(), key=lambda rt: rt.config.id)
    now = state.clock()
    reads = await _reads(state, lanes)
    out = []
    for rt in lanes:
        c, s = rt.config, rt.state
        gate = state.lanes.gates.status(c.id) or {}
        cam = state.directory.get(c.camera_id)
        cam_state = ops.camera_state(
            cam is not None,
            None if cam is None else str(cam.lifecycle.value),
            None if cam is None else cam.last_seen,
            now,
        )
        site = state.sites.get(c.site_id)
        out.append(
            {
                "id": c.id,
                "site": site.name if site else c.site_id,
                "kind": KINDS.get(c.kind, c.kind),
                "phase": s.phase,
                "phase_label": ops.PHASES.get(s.phase, s.phase),
                "plate": s.plate,
                "due": None if s.due_fen is None or s.phase != "waiting_payment"
                else f"{s.due_fen // 100}.{s.due_fen % 100:02d}",
                "note": s.note,
                "display": list(rt.display),
                "gate": {
                    "where": f"{c.gate_bus} #{c.gate_unit}",
                    "model": c.gate_model,
                    "lifecycle": c.gate_lifecycle,
                    "online": bool(gate.get("online")),
                    "driver": gate.get("driver"),
                    "position": gate.get("position"),
                    "error": gate.get("error"),
                },
                "camera": {
                    "id": c.camera_id,
                    "state": cam_state,
                    "label": ops.CAMERA_STATES[cam_state],
                    "vendor": None if cam is None else cam.vendor,
                    "last_seen": ops.local(None if cam is None else cam.last_seen, state.zone),
                },
                "decisions": [
                    _decision(d, c.camera_id, reads, state)
                    for d in list(reversed(rt.recent))[:SHOWN]
                ],
            }
        )  # fmt: skip
    return out


def _opened(lanes: list[dict[str, Any]], decision_id: str | None) -> dict[str, Any] | None:
    """The decision an operator's open just recorded (the page after the form)."""
    if not decision_id or len(decision_id) > 40:
        return None
    for lane in lanes:
        for d in lane["decisions"]:
            if d["id"] == decision_id:
                return {"lane": lane["id"], **d}
    return None


async def _page(
    request: Request, state: AppState, who: TokenInfo, status: int = 200, **extra: Any
) -> Response:
    lanes = await _lanes(state)
    opened = _opened(lanes, request.query_params.get("opened"))
    ctx: dict[str, Any] = {"error": None, "error_lane": None, "reason": ""}
    ctx.update(extra)
    return render(
        request, "lanes.html", status, who=who, page="lanes", lanes=lanes, opened=opened,
        may_open=who.role in COMMANDERS, as_of=ops.local(state.clock(), state.zone, "%H:%M:%S"),
        **ctx,
    )  # fmt: skip


@router.get("/lanes")
async def lanes_page(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, LANE_READERS)
    if not isinstance(who, TokenInfo):
        return who
    return await _page(request, state, who)


@router.post("/lanes/{lane_id}/open")
async def open_lane(lane_id: str, request: Request, state: StateDep) -> Response:
    """The operator's open: CSRF checked, the reason as the API takes it, the same service;
    then back to the page, which shows the decision (or the form again with the refusal)."""
    got = await posted(request, state, COMMANDERS)
    if not isinstance(got, tuple):
        return got
    who, form = got
    no_lane = f"没有车道 {lane_id[:64]!r}。 · No lane {lane_id[:64]!r}."
    if lane_id not in state.lanes.lanes:
        return error_page(request, 404, no_lane, who)
    try:
        reason = ops.clean_reason(form.get("reason", ""))
    except ops.Refused as exc:
        return await _page(
            request, state, who, 422, error=str(exc), error_lane=lane_id,
            reason=form.get("reason", "")[: ops.REASON_MAX],
        )  # fmt: skip
    try:
        decision = await state.lanes.operator_open(lane_id, reason, who.id)
    except UnknownLane:
        return error_page(request, 404, no_lane, who)
    except RuntimeError as exc:
        message = f"未能记录，未开闸。 · Not recorded, not opened: {exc}"
        return error_page(request, 503, message, who)
    log.info("web: lane %s opened by token %s", lane_id, who.id)
    target = f"/web/lanes?opened={urlquote(decision.id)}#lane-{urlquote(lane_id)}"
    return RedirectResponse(target, 303)


def _small_int(text: str, digits: int) -> bool:
    """ASCII digits only, at most *digits* of them (a read's id, a picture's place)."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


def _read_picture(path: Path, limit: int) -> bytes | None:
    """The file, or None when it is over *limit* bytes (read at most limit + 1)."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


@router.get("/lanes/reads/{read_id}/{n}")
async def read_picture(read_id: str, n: str, request: Request, state: StateDep) -> Response:
    """A lane camera's picture of a read (JPEG, at most ``[cameras] max_image_bytes``), for the
    lane readers. Only pictures of lane cameras' reads, by the read's id and the picture's
    place: no path is taken from the URL."""
    who = await guard(request, state, LANE_READERS)
    if not isinstance(who, TokenInfo):
        return who
    if not (_small_int(read_id, 18) and _small_int(n, 2)):
        return error_page(request, 404, "没有这张图片。 · No such picture.", who)
    async with state.sessions() as db:
        row = await db.get(CameraReadRow, int(read_id))
    lane_cameras = {rt.config.camera_id for rt in state.lanes.lanes.values()}
    if row is None or row.camera_id not in lane_cameras or int(n) >= len(row.images or []):
        return error_page(request, 404, "没有这张图片。 · No such picture.", who)
    root = state.camera_reads.evidence.root.resolve()
    path = (root / row.images[int(n)]).resolve()
    if not path.is_relative_to(root):
        return error_page(request, 404, "没有这张图片。 · No such picture.", who)
    try:
        data = await asyncio.to_thread(_read_picture, path, state.camera_image_bytes)
    except OSError:
        return error_page(request, 404, "图片已按保留期删除。 · The picture was pruned.", who)
    if data is None:
        return error_page(request, 413, "图片过大。 · The picture is too large.", who)
    if data[:3] != b"\xff\xd8\xff":
        return error_page(request, 415, "不是 JPEG 图片。 · Not a JPEG picture.", who)
    headers = {**SECURITY_HEADERS, "Content-Disposition": "inline"}
    return Response(data, media_type="image/jpeg", headers=headers)
