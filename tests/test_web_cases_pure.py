"""The cases pages' pure logic (gateway/web/case_view.py): the list's query bounds, the
stepper, the delivery state as shown, the evidence kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.cases.view import StatusOut
from gateway.web import case_view as cv

SITES = {"cp-a": object()}
ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_an_empty_or_full_query_reads_back() -> None:
    assert cv.parse_query([], SITES) == cv.CaseQuery()
    assert cv.parse_query([("status", ""), ("site", " ")], SITES) == cv.CaseQuery()
    q = cv.parse_query(
        [("status", "closed"), ("delivery", "rejected"), ("site", "cp-a"), ("category", "0505")],
        SITES,
    )
    assert q == cv.CaseQuery(status="closed", category="0505", site="cp-a", delivery="rejected")
    assert q.link(before="abc") == (
        "/web/cases?status=closed&category=0505&site=cp-a&delivery=rejected&before=abc"
    )
    assert cv.CaseQuery().link() == "/web/cases"


@pytest.mark.parametrize(
    ("pairs", "status"),
    [
        ([("status", "open")], 422),
        ([("status", "reported"), ("status", "reported")], 400),
        ([("limit", "5")], 400),
        ([("site", "cp-b")], 422),
        ([("site", "cp-a'--")], 422),
        ([("category", "05 05")], 422),
        ([("delivery", "failing")], 422),
        ([("before", "a/b")], 422),
        ([("before", "x" * 101)], 422),
        ([("status", "")] * 9, 400),
    ],
)
def test_hostile_queries_are_refused(pairs: list[tuple[str, str]], status: int) -> None:
    with pytest.raises(cv.QueryError) as info:
        cv.parse_query(pairs, SITES)
    assert info.value.status == status


def test_the_stepper_marks_done_current_and_next_with_times() -> None:
    history = [
        StatusOut(status="registered", at=T0 + timedelta(hours=1), note="立案", received_at=T0),
        StatusOut(status="reported", at=T0, note="", received_at=T0),  # a late, older step
        StatusOut(status="dispatched", at=T0 + timedelta(hours=2), note="", received_at=T0),
    ]
    steps = cv.stepper("dispatched", T0, history, ZONE)
    assert [s["state"] for s in steps] == ["done"] * 2 + ["current"] + ["next"] * 4
    assert steps[1]["at"] == "2026-12-01 09:00:00" and steps[1]["note"] == "立案"
    assert [bool(s["at"]) for s in steps] == [True] * 3 + [False] * 4
    # no callback yet: step 1 is citygate's own report, at the time it was filed
    first = cv.stepper("reported", T0, [], ZONE)
    assert first[0]["state"] == "current" and first[0]["at"] == "2026-12-01 08:00:00"
    assert [s["state"] for s in cv.stepper("evaluated", T0, [], ZONE)][-1] == "current"


def test_delivery_states() -> None:
    assert cv.delivery_state("pending", 0, "") == "pending"
    assert cv.delivery_state("pending", 3, "HTTP 503") == "failing"
    assert cv.delivery_state("delivered", 2, "HTTP 503") == "delivered"
    assert cv.delivery_state("rejected", 1, "HTTP 422") == "rejected"
    assert cv.delivery_state("weird", 0, "") == "pending"


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("oss://evidence/cam-07/0042.jpg", "图片 · image"),
        ("session:abc", "停车记录 · parking session"),
        ("occupancy:sd-1@2026-12-01T00:00:00+00:00", "泊位占用记录 · berth occupancy history"),
        ("bodycam-alarm:34020000001320000001:7", "执法记录仪报警 · body-cam alarm"),
        ("oss://drone-7/clip.mp4", "无人机取证 · drone evidence"),
        ("rtsp://cam/clip.mp4", "视频 · video"),
        ("det-42", "引用 · reference"),
    ],
)
def test_evidence_kinds(ref: str, kind: str) -> None:
    assert cv.evidence_item(ref) == {"kind": kind, "ref": ref}


def test_case_ids() -> None:
    assert cv.case_id_ok("0b6f1c9e-3f57-4a8e-9d0c-5a1f2e3d4c5b")
    for bad in ("", "x" * 37, "a/b", "<b>", "案"):
        assert not cv.case_id_ok(bad)
