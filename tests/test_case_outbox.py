"""The case outbox and the status mirror on SQLite and PostgreSQL, and the cases API
(signed callbacks, the operators' list) on top of them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from events import CaseRaised
from gateway.api.app import create_app
from gateway.api.state import AppState
from gateway.cases.mirror import CallbackPayload, UnknownCase, apply_callback, history
from gateway.cases.outbox import (
    claim,
    decode_cursor,
    due,
    encode_cursor,
    list_cases,
    mark_delivered,
    mark_rejected,
    mark_retry,
    next_due_at,
    pending_summary,
    record_case,
    requeue,
)
from gateway.cases.signing import sign
from gateway.directory.tokens import Role, create_token
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import CaseReportRow, CaseStatusRow

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


def raised(ts: datetime = T0, **kw: Any) -> CaseRaised:
    values: dict[str, Any] = {
        "device_id": "cam-07",
        "ts": ts,
        "category": "0505",
        "rule_id": "fire-lane",
        "title": "机动车乱停放 消防通道",
        "dedup_key": "0505:berth-17",
        "dedup_window_s": 600,
        "site_id": "sd-1",
        "berth_id": "berth-17",
        "lat": 38.78,
        "lon": 101.08,
        "plate": "粤B12345",
        "evidence": ("img/a.jpg",),
        "details": {"minutes": 12},
    }
    values.update(kw)
    return CaseRaised(**values)


@pytest_asyncio.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker_for(engine)


async def record(
    sessions: async_sessionmaker[AsyncSession], event: CaseRaised, now: datetime = T0
) -> CaseReportRow | None:
    async with sessions.begin() as s:
        return await record_case(s, event, now)


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(CaseReportRow)) or 0)


# -- record_case ----------------------------------------------------------------------------


async def test_record_case_files_a_pending_report(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = T0 + timedelta(seconds=3)
    row = await record(sessions, raised(plate=" 粤b 12345 "), now)
    assert row is not None
    assert str(uuid.UUID(row.id)) == row.id
    async with sessions() as s:
        stored = await s.get(CaseReportRow, row.id)
    assert stored is not None
    assert stored.plate == "粤B12345"  # normalised, province character kept
    assert (stored.delivery_state, stored.status, stored.attempts) == ("pending", "reported", 0)
    assert stored.next_attempt_at == now and stored.created_at == now
    assert stored.observed_at == T0 and stored.observed_at.tzinfo is not None
    assert stored.evidence == ["img/a.jpg"] and stored.details == {"minutes": 12}
    assert stored.prior_offences == 0


async def test_record_case_joins_the_callers_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        assert await record_case(s, raised(), T0) is not None
        await s.rollback()  # the state change that raised it failed
    assert await count(sessions) == 0
    assert await record(sessions, raised()) is not None  # nothing left to dedup against


@pytest.mark.parametrize(
    ("offset_s", "filed"),
    [(0, False), (600, False), (-600, False), (601, True), (-601, True)],
)
async def test_the_same_situation_within_the_window_is_filed_once(
    sessions: async_sessionmaker[AsyncSession], offset_s: int, filed: bool
) -> None:
    assert await record(sessions, raised()) is not None
    again = await record(sessions, raised(T0 + timedelta(seconds=offset_s)))
    assert (again is not None) is filed
    assert await count(sessions) == (2 if filed else 1)


async def test_other_situations_and_windows(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await record(sessions, raised()) is not None
    assert await record(sessions, raised(dedup_key="0505:berth-18")) is not None
    # The window is the new event's: a narrow one reaches less far back.
    narrow = raised(T0 + timedelta(seconds=30), dedup_window_s=10)
    assert await record(sessions, narrow) is not None
    assert await record(sessions, raised(T0 + timedelta(seconds=35), dedup_window_s=10)) is None


async def test_prior_offences_count_earlier_reports_of_the_plate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    def at(minutes: int, key: str, **kw: Any) -> CaseRaised:
        return raised(T0 + timedelta(minutes=minutes), dedup_key=key, **kw)

    first = await record(sessions, at(0, "a"))
    second = await record(sessions, at(60, "b", category="0107"))
    other = await record(sessions, at(70, "c", plate="甘G12345"))
    none = await record(sessions, at(80, "d", plate=None))
    third = await record(sessions, at(90, "e", plate="粤B 12345"))
    backdated = await record(sessions, at(30, "f"))  # observed between the first two
    assert first and second and other and none and third and backdated
    assert [first.prior_offences, second.prior_offences, third.prior_offences] == [0, 1, 2]
    assert other.prior_offences == 0 and none.prior_offences == 0
    assert backdated.prior_offences == 1  # only what was observed before it


async def test_concurrent_recorders_of_one_situation_file_it_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    results = await asyncio.gather(*(record(sessions, raised()) for _ in range(4)))
    assert sum(r is not None for r in results) == 1
    assert await count(sessions) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"plate": "粤B" + "1" * 20},
        {"category": "x" * 17},
        {"dedup_key": ""},
        {"dedup_window_s": -1},
        {"lat": float("nan")},
        {"details": {"v": float("inf")}},
    ],
)
async def test_unrepresentable_events_are_refused(
    sessions: async_sessionmaker[AsyncSession], bad: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        await record(sessions, raised(**bad))
    assert await count(sessions) == 0


async def test_a_long_title_is_shortened_not_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    row = await record(sessions, raised(title="长" * 300))
    assert row is not None and len(row.title) == 200 and row.title.endswith("…")


# -- delivery bookkeeping -------------------------------------------------------------------


async def test_claim_leases_and_marks(sessions: async_sessionmaker[AsyncSession]) -> None:
    a = await record(sessions, raised(dedup_key="a"))
    b = await record(sessions, raised(dedup_key="b"), T0 + timedelta(seconds=1))
    c = await record(sessions, raised(dedup_key="c"), T0 + timedelta(seconds=2))
    assert a and b and c
    now = T0 + timedelta(seconds=5)
    lease = now + timedelta(seconds=40)
    async with sessions.begin() as s:
        assert [r.id for r in await due(s, now, 10)] == [a.id, b.id, c.id]
        claimed = await claim(s, now, 2, lease)
    assert [r.id for r in claimed] == [a.id, b.id]  # longest waiting first
    async with sessions.begin() as s:
        assert [r.id for r in await due(s, now, 10)] == [c.id]  # leased ones are left alone
        assert await next_due_at(s) == T0 + timedelta(seconds=2)
        assert await pending_summary(s) == (3, T0)
        assert await mark_delivered(s, a.id, now, "SD-1")
        assert await mark_retry(s, b.id, now + timedelta(seconds=2), "HTTP 503  from\nhere")
        assert await mark_rejected(s, c.id, "HTTP 400: " + "x" * 400)
        assert not await mark_delivered(s, c.id, now)  # no longer pending
    async with sessions() as s:
        ra, rb, rc = [await s.get(CaseReportRow, x.id) for x in (a, b, c)]
        assert ra and rb and rc
        assert (ra.delivery_state, ra.remote_id, ra.attempts, ra.next_attempt_at) == (
            "delivered",
            "SD-1",
            1,
            None,
        )
        assert ra.delivered_at == now
        assert (rb.delivery_state, rb.attempts, rb.last_error) == (
            "pending",
            1,
            "HTTP 503 from here",
        )
        assert rb.next_attempt_at == now + timedelta(seconds=2)
        assert rc.delivery_state == "rejected" and len(rc.last_error) == 300
        assert await pending_summary(s) == (1, T0 + timedelta(seconds=1))
    later = now + timedelta(seconds=3)
    async with sessions.begin() as s:
        assert [r.id for r in await due(s, later, 10)] == [b.id]
        assert await requeue(s, c.id, later)
        assert not await requeue(s, a.id, later)  # only rejected reports
    async with sessions() as s:
        assert {r.id for r in await due(s, later, 10)} == {b.id, c.id}


# -- listing --------------------------------------------------------------------------------


async def test_list_newest_first_with_filters_and_cursors(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = []
    for i in range(7):  # two of them share a creation time: the id breaks the tie
        row = await record(
            sessions,
            raised(dedup_key=f"k{i}", category="0505" if i % 2 else "0107"),
            T0 + timedelta(seconds=min(i, 5)),
        )
        assert row is not None
        ids.append(row.id)
    async with sessions() as s:
        full = await list_cases(s, limit=100)
        assert len(full.cases) == 7 and full.next_before is None
        order = [r.id for r in full.cases]
        assert set(order[:2]) == {ids[5], ids[6]} and order[2:] == ids[4::-1]
        seen: list[str] = []
        page = await list_cases(s, limit=3)
        while True:
            seen += [r.id for r in page.cases]
            if page.next_before is None:
                break
            page = await list_cases(s, limit=3, before=page.next_before)
        assert seen == order
        assert {r.id for r in (await list_cases(s, category="0505")).cases} == set(ids[1::2])
        assert (await list_cases(s, delivery="rejected")).cases == []
        assert len((await list_cases(s, status="reported")).cases) == 7
        # Polling: the oldest reports after a cursor first, so none is skipped.
        oldest = full.cases[-1]
        newer = await list_cases(s, limit=2, after=encode_cursor(oldest.created_at, oldest.id))
        assert [r.id for r in newer.cases] == [ids[2], ids[1]]
        assert newer.next_after == encode_cursor(newer.cases[0].created_at, ids[2])
        for bad in ("nonsense", "!!", encode_cursor(T0, "x")[:-3]):
            with pytest.raises(ValueError, match="cursor"):
                await list_cases(s, before=bad)
        with pytest.raises(ValueError, match="not both"):
            await list_cases(s, before=full.next_after, after=full.next_after)
    when, cid = decode_cursor(encode_cursor(T0 + timedelta(microseconds=7), "abc"))
    assert (when, cid) == (T0 + timedelta(microseconds=7), "abc")


# -- the mirror -----------------------------------------------------------------------------


def update(report_id: str, status: str, minutes: int, **kw: Any) -> CallbackPayload:
    return CallbackPayload(id=report_id, status=status, at=T0 + timedelta(minutes=minutes), **kw)


async def apply(
    sessions: async_sessionmaker[AsyncSession], payload: CallbackPayload
) -> tuple[str, str, str | None, str]:
    async with sessions.begin() as s:
        result = await apply_callback(s, payload, T0 + timedelta(hours=1))
        return result.result, result.case.status, result.case.remote_id, result.case.delivery_state


async def test_mirror_moves_forward_only_and_is_idempotent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    row = await record(sessions, raised())
    assert row is not None
    # A callback proves receipt: a report still pending (confirmation lost) is delivered.
    assert await apply(sessions, update(row.id, "registered", 5, case_id="SD-9")) == (
        "advanced",
        "registered",
        "SD-9",
        "delivered",
    )
    assert (await apply(sessions, update(row.id, "registered", 5)))[0] == "duplicate"
    assert (await apply(sessions, update(row.id, "任务处置", 20, note="已劝离")))[:2] == (
        "advanced",
        "handled",
    )
    # An older step arriving late: history yes, current status no.
    assert (await apply(sessions, update(row.id, "dispatched", 10)))[:2] == ("recorded", "handled")
    assert (await apply(sessions, update(row.id, "dispatched", 11)))[0] == "duplicate"
    async with sessions() as s:
        steps = await history(s, row.id)
        stored = await s.get(CaseReportRow, row.id)
    assert [(h.status, h.note) for h in steps] == [
        ("registered", ""),
        ("dispatched", ""),
        ("handled", "已劝离"),
    ]
    assert stored is not None and stored.status_at == T0 + timedelta(minutes=20)
    assert stored.remote_id == "SD-9"


async def test_mirror_unknown_case(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(UnknownCase, match="nope"):
        await apply(sessions, update("nope", "closed", 1))


def test_callback_payload_validation() -> None:
    ok = CallbackPayload.model_validate_json(
        '{"id": "x", "status": "综合评价", "at": "2026-11-28T08:00:00+08:00"}'
    )
    assert ok.status == "evaluated" and ok.at == T0
    for bad in (
        '{"id": "x", "status": "lost", "at": "2026-11-28T08:00:00+08:00"}',
        '{"id": "x", "status": "closed", "at": "2026-11-28T08:00:00"}',  # no offset
        '{"id": "x", "status": "closed", "at": "2026-11-28T08:00:00Z", "extra": 1}',
        '{"id": "x", "status": "closed", "at": "2026-11-28T08:00:00Z", "note": "%s"}' % ("n" * 501),
        '{"id": "", "status": "closed", "at": "2026-11-28T08:00:00Z"}',
        '{"status": "closed", "at": "2026-11-28T08:00:00Z"}',
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError
            CallbackPayload.model_validate_json(bad)


# -- the API --------------------------------------------------------------------------------

SECRET = b"shared-secret-for-tests"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.fromtimestamp(int(time.time()), UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def api(
    sessions: async_sessionmaker[AsyncSession], db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, AppState, dict[str, str]]]:
    from gateway.config import Settings
    from gateway.wiring import build_services

    clock = Clock()
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "telemetry": {"spool_dir": str(tmp_path / "spool")},
            "cases": {"secret": SECRET.decode() if isinstance(SECRET, bytes) else SECRET},
        }
    )
    services = await build_services(settings, clock)
    clock.now = datetime.fromtimestamp(int(time.time()), UTC)  # building took a while
    state = AppState.of(services)
    assert state.cases.secret
    app = create_app(state)  # the whole app: its handlers answer the refusals as Problems
    tokens = {}
    async with sessions.begin() as s:
        for role in (Role.OPERATOR, Role.INSPECTOR, Role.TECHNICIAN):
            _, tokens[role.value] = await create_token(s, role, clock())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client, state, tokens
    await services.close()


def signed(payload: dict[str, Any] | bytes, at: int | None = None) -> dict[str, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    header = sign(SECRET, body, int(time.time()) if at is None else at)
    return {"content": body, "headers": {"X-Citygate-Signature": header}}


def callbacks(state: AppState, result: str) -> float:
    value = state.metrics.registry.get_sample_value(
        "citygate_cases_callbacks_total", {"result": result}
    )
    return value or 0.0


async def test_callback_api(
    api: tuple[httpx.AsyncClient, AppState, dict[str, str]],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    http, state, _ = api
    row = await record(sessions, raised())
    assert row is not None
    url = "/api/v1/cases/callback"
    step = {
        "id": row.id,
        "case_id": "SD-1",
        "status": "审核立案",
        "at": "2026-11-28T08:05:00+08:00",
    }
    r = await http.post(url, **signed(step))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["result"] == "advanced"
    case = out["case"]
    assert case["status"] == "registered" and case["remote_id"] == "SD-1"
    assert case["plate"] == "粤B12345" and case["delivery"]["state"] == "delivered"
    assert [h["status"] for h in case["history"]] == ["registered"]
    # The same update again (the case system retried): a no-op.
    again = await http.post(url, **signed(step))
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    later = {"id": row.id, "status": "closed", "at": "2026-11-28T01:00:00Z", "note": "已处理"}
    assert (await http.post(url, **signed(later))).json()["case"]["status"] == "closed"
    older = {"id": row.id, "status": "dispatched", "at": "2026-11-28T00:10:00Z"}
    r = await http.post(url, **signed(older))
    assert r.json()["result"] == "recorded" and r.json()["case"]["status"] == "closed"
    assert [h["status"] for h in r.json()["case"]["history"]] == [
        "registered",
        "dispatched",
        "closed",
    ]
    assert callbacks(state, "advanced") == 2 and callbacks(state, "duplicate") == 1
    async with sessions() as s:
        n = await s.scalar(select(func.count()).select_from(CaseStatusRow))
    assert n == 3


async def test_callback_api_refusals(
    api: tuple[httpx.AsyncClient, AppState, dict[str, str]],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    http, state, _ = api
    row = await record(sessions, raised())
    assert row is not None
    url = "/api/v1/cases/callback"
    step = {"id": row.id, "status": "closed", "at": "2026-11-28T01:00:00Z"}
    body = json.dumps(step).encode()
    assert (await http.post(url, content=body)).status_code == 401
    bad = {"X-Citygate-Signature": sign(b"not the secret", body, int(time.time()))}
    r = await http.post(url, content=body, headers=bad)
    assert r.status_code == 401 and "mismatch" in r.json()["detail"]
    assert r.json()["code"] == "bad_signature"
    stale = await http.post(url, **signed(step, at=int(state.clock().timestamp()) - 301))
    assert stale.status_code == 401 and "stale" in stale.json()["detail"]
    tampered = signed(step)
    tampered["content"] = body.replace(b"closed", b"verified")
    assert (await http.post(url, **tampered)).status_code == 401
    unknown = await http.post(url, **signed({**step, "id": "no-such-case"}))
    assert unknown.status_code == 404 and "no-such-case" in unknown.json()["detail"]
    assert unknown.json()["code"] == "no_case"
    for malformed in (b"{not json", json.dumps({**step, "status": "lost"}).encode()):
        r = await http.post(url, **signed(malformed))
        assert r.status_code == 422, r.text
    assert callbacks(state, "signature_missing") == 1
    assert callbacks(state, "signature_mismatch") == 2
    assert callbacks(state, "signature_stale") == 1
    assert callbacks(state, "unknown_case") == 1 and callbacks(state, "invalid") == 2
    async with sessions() as s:
        stored = await s.get(CaseReportRow, row.id)
    assert stored is not None and stored.status == "reported"  # nothing got through
    assert state.cases is not None
    state.cases.secret = None
    assert (await http.post(url, **signed(step))).status_code == 503


async def test_operators_list_and_read_cases(
    api: tuple[httpx.AsyncClient, AppState, dict[str, str]],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    http, _, tokens = api
    rows = []
    for i in range(3):
        row = await record(sessions, raised(dedup_key=f"k{i}"), T0 + timedelta(seconds=i))
        assert row is not None
        rows.append(row)
    async with sessions.begin() as s:
        await mark_rejected(s, rows[0].id, "HTTP 400: category unknown")

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    assert (await http.get("/api/v1/cases")).status_code == 401
    assert (await http.get("/api/v1/cases", headers=auth("technician"))).status_code == 403
    r = await http.get("/api/v1/cases", headers=auth("inspector"), params={"limit": 2})
    assert r.status_code == 200
    page = r.json()
    assert [c["id"] for c in page["cases"]] == [rows[2].id, rows[1].id]
    r = await http.get(
        "/api/v1/cases", headers=auth("operator"), params={"before": page["next_before"]}
    )
    assert [c["id"] for c in r.json()["cases"]] == [rows[0].id]
    rejected = await http.get(
        "/api/v1/cases", headers=auth("operator"), params={"delivery": "rejected"}
    )
    only = rejected.json()["cases"]
    assert [c["id"] for c in only] == [rows[0].id]
    assert only[0]["delivery"]["last_error"] == "HTTP 400: category unknown"
    for params in ({"limit": 501}, {"status": "lost"}, {"before": "garbage"}):
        bad = await http.get("/api/v1/cases", headers=auth("operator"), params=params)
        assert bad.status_code == 422, params
    one = await http.get(f"/api/v1/cases/{rows[1].id}", headers=auth("inspector"))
    assert one.status_code == 200
    detail = one.json()
    assert detail["history"] == [] and detail["place"]["berth_id"] == "berth-17"
    assert detail["observed_at"].startswith("2026-11-28T00:00:00")
    assert (await http.get("/api/v1/cases/nope", headers=auth("operator"))).status_code == 404
    # Redelivery of a rejected report: operators only, rejected reports only.
    redeliver = f"/api/v1/cases/{rows[0].id}/redeliver"
    assert (await http.post(redeliver, headers=auth("inspector"))).status_code == 403
    r = await http.post(redeliver, headers=auth("operator"))
    assert r.status_code == 200 and r.json()["delivery"]["state"] == "pending"
    assert (await http.post(redeliver, headers=auth("operator"))).status_code == 409
