"""What operators see of a lane: its state, camera and gate, display, and last decisions
(the API and, later, the CLI show the same dicts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.services.lanes.decisions import Decision
from gateway.services.lanes.runtime import LaneRuntime


def _t(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def decision_json(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "plate": d.plate,
        "session_id": d.session_id,
        "reason": d.reason,
        "verdict": d.verdict,
        "state": d.state,
        "detail": d.detail,
        "operator": d.operator,
        "created_at": _t(d.created_at),
        "sent_at": _t(d.sent_at),
        "done_at": _t(d.done_at),
    }


def lane_json(
    rt: LaneRuntime, decisions: bool = False, gate: dict[str, object] | None = None
) -> dict[str, Any]:
    """*gate*: what the gate driver knows of the lane's gate now (``GateFactory.status``)."""
    c, s = rt.config, rt.state
    body: dict[str, Any] = {
        "id": c.id,
        "site_id": c.site_id,
        "kind": c.kind,
        "camera_id": c.camera_id,
        "gate": {
            "bus": c.gate_bus,
            "unit": c.gate_unit,
            "model": c.gate_model,
            "lifecycle": c.gate_lifecycle,
            "now": gate,
        },
        "phase": s.phase,
        "plate": s.plate,
        "session_id": s.session_id,
        "due_fen": s.due_fen if s.phase == "waiting_payment" else None,
        "decision_id": s.decision_id,
        "note": s.note,
        "verdict": rt.verdict,
        "display": list(rt.display),
        "voice": rt.voice,
        "updated_at": _t(rt.updated_at),
    }
    if decisions:
        body["decisions"] = [decision_json(d) for d in reversed(rt.recent)]  # newest first
    return body
