"""The cases pages: the list of case reports (newest first, filtered by step, category, site
and delivery state, paged) and one case through the seven steps with its evidence and its
delivery to the town's case system; for an operator, a rejected report's redelivery (the
``POST /api/v1/cases/{id}/redeliver`` of the API, behind a CSRF form). Same roles as the API:
operator and inspector read, operator redelivers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.cases.mirror import STEPS
from gateway.cases.outbox import get_case, requeue
from gateway.cases.view import case_detail, cases_page
from gateway.directory.tokens import TokenInfo
from gateway.web import case_view
from gateway.web.base import StateDep, error_page, guard, posted, render
from gateway.web.session import CASE_ACTORS, CASE_READERS

router = APIRouter()


def _not_found(request: Request, who: TokenInfo, case_id: str) -> Response:
    return error_page(
        request,
        404,
        f"没有编号为 {case_id[:40]} 的案件。 · There is no case report {case_id[:40]!r}.",
        who,
    )


@router.get("/cases")
async def cases_list(request: Request, state: StateDep) -> Response:
    who = await guard(request, state, CASE_READERS)
    if not isinstance(who, TokenInfo):
        return who
    try:
        q = case_view.parse_query(request.query_params.multi_items(), state.sites)
    except case_view.QueryError as exc:
        return error_page(request, exc.status, exc.message, who)
    async with state.sessions() as db:
        try:
            page = await cases_page(
                db, status=q.status, category=q.category, delivery=q.delivery, site=q.site,
                before=q.before, limit=case_view.PAGE_SIZE,
            )  # fmt: skip
        except ValueError:
            return error_page(request, 422, "before is not a cursor of this list", who)
    zone = state.zone
    return render(
        request,
        "cases.html",
        who=who,
        page="cases",
        q=q,
        rows=[case_view.list_row(c, zone) for c in page.cases],
        older=q.link(before=page.next_before) if page.next_before else None,
        newest=q.link(before=None) if q.before else None,
        steps=[(s, case_view.STEP_LABELS[s]) for s in STEPS],
        deliveries=[(d, case_view.DELIVERY_LABELS[d]) for d in case_view.DELIVERY_FILTERS],
        sites=sorted((s.id, s.name) for s in state.sites.values()),
        zone=str(zone),
    )


@router.get("/cases/{case_id:path}")  # any path below: a 404 page, not the API's JSON 404
async def case_page(case_id: str, request: Request, state: StateDep) -> Response:
    who = await guard(request, state, CASE_READERS)
    if not isinstance(who, TokenInfo):
        return who
    if not case_view.case_id_ok(case_id):
        return _not_found(request, who, case_id)
    async with state.sessions() as db:
        row = await get_case(db, case_id)
        if row is None:
            return _not_found(request, who, case_id)
        case = await case_detail(db, row)
    zone = state.zone
    site = state.sites.get(case.place.site_id or "")
    return render(
        request,
        "case.html",
        who=who,
        page="cases",
        case=case,
        row=case_view.list_row(case, zone),
        facts=case_view.detail_facts(case, zone),
        steps=case_view.stepper(case.status, case.reported_at, case.history, zone),
        history=[
            {
                "step": case_view.step_position(h.status)[1],
                "at": case_view.local_time(h.at, zone),
                "received": case_view.local_time(h.received_at, zone),
                "note": h.note,
            }
            for h in case.history
        ],
        site_name=site.name if site else None,
        can_redeliver=who.role in CASE_ACTORS and case.delivery.state == "rejected",
        zone=str(zone),
    )


@router.post("/cases/{case_id}/redeliver")
async def redeliver(case_id: str, request: Request, state: StateDep) -> Response:
    """Send a rejected report again (the API's redelivery); back to the case's page."""
    got = await posted(request, state, CASE_ACTORS)
    if not isinstance(got, tuple):
        return got
    who, _ = got
    if not case_view.case_id_ok(case_id):
        return _not_found(request, who, case_id)
    async with state.sessions.begin() as db:
        row = await get_case(db, case_id)
        if row is None:
            return _not_found(request, who, case_id)
        if not await requeue(db, case_id, state.clock()):
            return error_page(
                request,
                409,
                f"此案件的发送状态是 {row.delivery_state}，不是被拒收，无需重发。 · This report is "
                f"{row.delivery_state}, not rejected: there is nothing to send again.",
                who,
            )
    runtime = state.cases
    if runtime is not None and runtime.delivery is not None:
        runtime.delivery.kick()
    return RedirectResponse(f"/web/cases/{case_id}", 303)
