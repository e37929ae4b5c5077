"""The cases pages' logic, pure: the list's query parameters read and bounded (``CaseQuery``,
``QueryError`` for a 4xx page), a case's place in the seven steps (the stepper), its delivery
state as a person reads it (pending / failing / delivered / rejected), its evidence references
sorted by kind, and times shown in the town's zone. No I/O and no clock: the pages module
passes the rows and the zone in."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from gateway.cases.mirror import STEPS
from gateway.cases.view import CaseOut, StatusOut

STEP_LABELS: dict[str, str] = {
    "reported": "巡查上报 · reported",
    "registered": "审核立案 · registered",
    "dispatched": "任务派遣 · dispatched",
    "handled": "任务处置 · handled",
    "verified": "反馈核查 · verified",
    "closed": "结案 · closed",
    "evaluated": "综合评价 · evaluated",
}
DELIVERY_LABELS: dict[str, str] = {
    "pending": "待发送 · pending",
    "failing": "发送失败，重试中 · failing",
    "delivered": "已送达 · delivered",
    "rejected": "被拒收 · rejected",
}
# The list's delivery filter is the stored state (failing is a pending report that failed).
DELIVERY_FILTERS = ("pending", "delivered", "rejected")
PAGE_SIZE = 50
MAX_PARAMS = 8
_CATEGORY = re.compile(r"[0-9A-Za-z_-]{1,16}")
_SITE = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
_CURSOR = re.compile(r"[0-9A-Za-z_-]{1,100}")
_CASE_ID = re.compile(r"[0-9A-Za-z-]{1,36}")
_KNOWN = ("status", "category", "site", "delivery", "before")


class QueryError(Exception):
    """A list query refused: ``status`` (400 or 422) and a message for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class CaseQuery:
    status: str | None = None
    category: str | None = None
    site: str | None = None
    delivery: str | None = None
    before: str | None = None

    def link(self, **change: str | None) -> str:
        """The list's URL with these filters (``change`` replaces some, None drops one)."""
        values = {k: getattr(self, k) for k in _KNOWN} | change
        query = urlencode({k: v for k, v in values.items() if v})
        return "/web/cases" + (f"?{query}" if query else "")


def parse_query(params: Sequence[tuple[str, str]], sites: Mapping[str, Any]) -> CaseQuery:
    """The list's filters from the query string's pairs: each at most once (400), known
    values only (422): a step of the seven, a delivery state, a category code, a site of the
    town, a cursor of an earlier page. Unknown parameters are refused too (400), so a typo is
    not silently a list of everything. An empty value is no filter (what a form sends)."""
    if len(params) > MAX_PARAMS:
        raise QueryError(400, f"at most {MAX_PARAMS} query parameters")
    seen: dict[str, str] = {}
    for key, value in params:
        if key not in _KNOWN:
            raise QueryError(400, f"unknown query parameter {key[:32]!r}")
        if key in seen:
            raise QueryError(400, f"the query parameter {key!r} is given twice")
        seen[key] = value.strip()
    got = {k: v for k, v in seen.items() if v}
    if "status" in got and got["status"] not in STEPS:
        raise QueryError(422, "status must be one of the seven steps: " + ", ".join(STEPS))
    if "delivery" in got and got["delivery"] not in DELIVERY_FILTERS:
        raise QueryError(422, "delivery must be one of " + ", ".join(DELIVERY_FILTERS))
    if "category" in got and not _CATEGORY.fullmatch(got["category"]):
        raise QueryError(422, "category is a code of up to 16 letters and digits")
    if "site" in got and (not _SITE.fullmatch(got["site"]) or got["site"] not in sites):
        raise QueryError(422, "site is not a site of the town")
    if "before" in got and not _CURSOR.fullmatch(got["before"]):
        raise QueryError(422, "before is not a cursor of this list")
    return CaseQuery(**got)


def case_id_ok(case_id: str) -> bool:
    """Whether a path's case id could be one (a UUID-like id, at most 36 characters)."""
    return _CASE_ID.fullmatch(case_id) is not None


def local_time(when: datetime | None, zone: tzinfo) -> str:
    return "" if when is None else when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def delivery_state(state: str, attempts: int, last_error: str) -> str:
    """pending, failing (pending after a failed attempt), delivered or rejected."""
    if state == "pending" and attempts > 0 and last_error:
        return "failing"
    return state if state in DELIVERY_LABELS else "pending"


def step_position(status: str) -> tuple[int, str]:
    """The step's number (1..7; 0 for a value that is not a step) and its label."""
    if status not in STEPS:
        return 0, status
    return STEPS.index(status) + 1, STEP_LABELS[status]


def stepper(
    status: str, reported_at: datetime, history: Sequence[StatusOut], zone: tzinfo
) -> list[dict[str, Any]]:
    """The seven steps, each ``done``, ``current`` or ``next`` by the case's current status
    (which never moves back), with the time and note the case system gave for it (the first
    step, 巡查上报, is citygate's own report when no callback names it)."""
    current = STEPS.index(status) if status in STEPS else 0
    by_step = {h.status: h for h in history}
    out = []
    for i, step in enumerate(STEPS):
        h = by_step.get(step)
        at = h.at if h else (reported_at if i == 0 else None)
        out.append(
            {
                "n": i + 1,
                "step": step,
                "label": STEP_LABELS[step],
                "state": "done" if i < current else "current" if i == current else "next",
                "at": local_time(at, zone),
                "note": h.note if h else "",
            }
        )
    return out


_IMAGE = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
_VIDEO = (".mp4", ".mov", ".avi", ".flv", ".ps", ".h264")


def evidence_item(ref: str) -> dict[str, str]:
    """One evidence reference as stored, with what kind it is. None is served by the gateway
    (pictures live in the bureau's store, oss:// or the cameras' evidence folder), so the page
    shows the reference and never makes a link of it."""
    lower = ref.lower()
    if lower.startswith("session:"):
        kind = "停车记录 · parking session"
    elif lower.startswith("occupancy:"):
        kind = "泊位占用记录 · berth occupancy history"
    elif lower.startswith("bodycam-alarm:"):
        kind = "执法记录仪报警 · body-cam alarm"
    elif "drone" in lower or lower.startswith("dji:"):
        kind = "无人机取证 · drone evidence"
    elif lower.endswith(_IMAGE) or "plate" in lower:
        kind = "图片 · image"
    elif lower.endswith(_VIDEO):
        kind = "视频 · video"
    else:
        kind = "引用 · reference"
    return {"kind": kind, "ref": ref}


def list_row(case: CaseOut, zone: tzinfo) -> dict[str, Any]:
    n, label = step_position(case.status)
    d = case.delivery
    state = delivery_state(d.state, d.attempts, d.last_error)
    return {
        "id": case.id,
        "title": case.title,
        "category": case.category,
        "plate": case.plate or "",
        "site": case.place.site_id or "",
        "place": case.place.berth_id or case.place.site_id or case.place.zone_id or "",
        "observed": local_time(case.observed_at, zone),
        "reported": local_time(case.reported_at, zone),
        "step_n": n,
        "step": label,
        "delivery": state,
        "delivery_label": DELIVERY_LABELS[state],
        "attempts": d.attempts,
    }


def detail_facts(case: CaseOut, zone: tzinfo) -> dict[str, Any]:
    """What the detail page shows besides the stepper: place, evidence, details, delivery."""
    d = case.delivery
    state = delivery_state(d.state, d.attempts, d.last_error)
    p = case.place
    coords = f"{p.lat:.6f}, {p.lon:.6f}" if p.lat is not None and p.lon is not None else ""
    return {
        "place": {"site": p.site_id, "berth": p.berth_id, "zone": p.zone_id, "coords": coords},
        "evidence": [evidence_item(e) for e in case.evidence],
        "details": [(str(k), _fact(v)) for k, v in sorted(case.details.items())],
        "delivery": {
            "state": state,
            "label": DELIVERY_LABELS[state],
            "attempts": d.attempts,
            "reported": local_time(case.reported_at, zone),
            "next": local_time(d.next_attempt_at, zone) if d.state == "pending" else "",
            "delivered": local_time(d.delivered_at, zone),
            "error": d.last_error,
            "remote_id": case.remote_id or "",
        },
    }


def _fact(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是 · yes" if value else "否 · no"
    return str(value)[:200]
