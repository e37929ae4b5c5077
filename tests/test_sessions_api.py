"""Sessions and payments through a running gateway: lane reads and berth changes open and
close sessions, the app looks them up and pays, operators refund."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from events import SensorStatus
from gateway.services.parking.providers import FakeProvider
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai
MIN = timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str, clock: Clock) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto, payments={"provider": "fake"})
    async with running_gateway(settings, clock) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def auth(token: str, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


async def read(
    http: httpx.AsyncClient,
    tokens: dict[str, str],
    plate: str,
    direction: str,
    at: datetime,
    site: str = "cp-shiminting",
    **extra: Any,
) -> dict[str, Any]:
    body = {"camera_id": f"cam-{site}-{direction}", "site_id": site, "direction": direction}
    body |= {"plate": plate, "ts": at.isoformat(), **extra}
    r = await http.post("/api/v1/plate-reads", json=body, headers=auth(tokens["device"]))
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_lane_reads_make_a_priced_session(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + 3 * 60 * MIN
    entry, exit = T0, T0 + 90 * MIN
    first = await read(http, tokens, "甘G·10001", "in", entry, colour="blue")
    assert first["outcome"] == "opened" and first["plate"] == "甘G10001"
    dup = await read(http, tokens, "甘G10001", "in", entry + MIN)
    assert dup == {"outcome": "duplicate", "session_id": first["session_id"], "plate": "甘G10001"}
    closed = await read(http, tokens, "甘G10001", "out", exit)
    assert closed["outcome"] == "closed" and closed["session_id"] == first["session_id"]

    r = await http.get(f"/api/v1/sessions/{first['session_id']}", headers=auth(tokens["payments"]))
    assert r.status_code == 200
    s = r.json()
    quote = await http.post(
        "/api/v1/quotes",
        json={
            "site_id": "cp-shiminting",
            "vehicle_class": "small",
            "entry": entry.isoformat(),
            "exit": exit.isoformat(),
        },
    )
    # The session's fee is the posted quote of the same stay: first hour free, then 30 min.
    assert s["fee_fen"] == quote.json()["total_fen"] > 0
    assert s["lines"] == quote.json()["lines"]
    assert sum(line["amount_fen"] for line in s["lines"]) == s["fee_fen"] == s["due_fen"]
    assert s["state"] == "closed" and s["vehicle_class"] == "small"

    found = (await http.get("/api/v1/sessions", params={"plate": "甘G10001"})).json()["sessions"]
    assert [x["id"] for x in found] == [first["session_id"]]


async def test_exit_read_before_entry_read_pairs_up(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + 5 * 60 * MIN
    out = await read(http, tokens, "甘GD20002", "out", T0 + 2 * 60 * MIN, site="cp-zhening")
    assert out == {"outcome": "pending_exit", "session_id": None, "plate": "甘GD20002"}
    late = await read(http, tokens, "甘GD20002", "in", T0, site="cp-zhening")
    assert late["outcome"] == "paired"
    s = (await http.get(f"/api/v1/sessions/{late['session_id']}")).json()
    assert s["entry"] == T0.isoformat() and s["exit"] == (T0 + 120 * MIN).isoformat()
    assert s["vehicle_class"] == "new_energy"  # 8-character plate, no colour given


async def test_one_open_session_per_vehicle_per_car_park(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + 10 * 60 * MIN
    a = await read(http, tokens, "甘G30003", "in", T0, site="cp-keyunzhan")
    b = await read(http, tokens, "甘G30003", "in", T0 + 4 * 60 * MIN, site="cp-keyunzhan")
    assert (a["outcome"], b["outcome"]) == ("opened", "reopened")
    other = await read(http, tokens, "甘G30003", "in", T0 + 5 * 60 * MIN, site="cp-huochezhan")
    assert other["outcome"] == "opened"  # another car park is another session
    r = await http.get(
        "/api/v1/sessions", params={"plate": "甘G30003"}, headers=auth(tokens["operator"])
    )
    found = r.json()["sessions"]
    assert sorted(s["state"] for s in found) == ["closed", "open", "open"]
    old = next(s for s in found if s["id"] == a["session_id"])
    assert old["exit"] == (T0 + 4 * 60 * MIN).isoformat() and "exit not read" in old["note"]


async def test_payment_idempotency_grace_and_refund(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock, gw: Any
) -> None:
    clock.now = T0 + 2 * 60 * MIN
    opened = await read(http, tokens, "甘G40004", "in", T0, site="cp-keyunzhan")
    sid = opened["session_id"]
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    due = s["due_fen"]
    assert (
        s["state"] == "open" and due > 0 and datetime.fromisoformat(s["priced_until"]) == clock.now
    )

    body = {"session_id": sid, "amount_fen": due, "method": "wechat"}
    # The public cannot pay, a device cannot pay.
    assert (await http.post("/api/v1/payments", json=body)).status_code == 401
    r = await http.post(
        "/api/v1/payments", json=body, headers=auth(tokens["device"], "key-device-1")
    )
    assert r.status_code == 403
    # Overpaying is refused with what is due.
    over = {**body, "amount_fen": due + 1}
    r = await http.post(
        "/api/v1/payments", json=over, headers=auth(tokens["payments"], "key-over-1")
    )
    assert r.status_code == 422 and r.json()["due_fen"] == due

    key = auth(tokens["payments"], "pay-40004-1")
    first = await http.post("/api/v1/payments", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = await http.post("/api/v1/payments", json=body, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    changed = await http.post("/api/v1/payments", json={**body, "amount_fen": 1}, headers=key)
    p = changed.json()
    assert changed.status_code == 422 and "different request" in p["detail"], p
    assert p["code"] == "idempotency_conflict" and p["status"] == 422, p
    assert len(gw.services.provider.charges) >= 1 and "pay-40004-1" in gw.services.provider.charges

    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["paid_fen"] == due and s["due_fen"] == 0 and s["exit_grace_until"]
    assert [p["amount_fen"] for p in s["payments"]] == [due]

    # Leaving within the grace owes nothing more; the stay is priced up to the payment.
    clock.now = T0 + 2 * 60 * MIN + 10 * MIN
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["due_fen"] == 0
    # Still inside after the grace: the time since is charged.
    clock.now = T0 + 3 * 60 * MIN
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["due_fen"] > 0 and s["fee_fen"] == s["paid_fen"] + s["due_fen"]

    # Refunds are for operators only, never more than was paid.
    pid = first.json()["id"]
    refund = {"amount_fen": 50, "reason": "sensor fault, driver complaint 2026-11-24"}
    url = f"/api/v1/payments/{pid}/refunds"
    r = await http.post(url, json=refund, headers=auth(tokens["payments"], "refund-1"))
    assert r.status_code == 403
    r = await http.post(url, json=refund, headers=auth(tokens["operator"], "refund-1"))
    assert r.status_code == 201 and r.json()["refund_of"] == pid
    r2 = await http.post(url, json=refund, headers=auth(tokens["operator"], "refund-1"))
    assert r2.status_code == 200 and r2.json()["id"] == r.json()["id"]
    too_much = {"amount_fen": due, "reason": "again"}
    r = await http.post(url, json=too_much, headers=auth(tokens["operator"], "refund-2"))
    assert r.status_code == 422 and r.json()["refundable_fen"] == due - 50
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["paid_fen"] == due - 50


async def test_provider_failures_record_nothing(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock, gw: Any
) -> None:
    clock.now = T0 + 2 * 60 * MIN
    sid = (await read(http, tokens, "甘G50005", "in", T0, site="cp-huochezhan"))["session_id"]
    due = (await http.get(f"/api/v1/sessions/{sid}")).json()["due_fen"]
    body = {"session_id": sid, "amount_fen": due}
    provider: FakeProvider = gw.services.provider
    provider.decline = "insufficient funds"
    try:
        r = await http.post(
            "/api/v1/payments", json=body, headers=auth(tokens["payments"], "decline-1")
        )
        p = r.json()
        assert r.status_code == 402 and "insufficient funds" in p["detail"], p
        assert p["code"] == "declined" and r.headers["content-type"] == "application/problem+json"
    finally:
        provider.decline = None
    provider.down = True
    try:
        r = await http.post(
            "/api/v1/payments", json=body, headers=auth(tokens["payments"], "down-key-2")
        )
        p = r.json()
        assert (
            r.status_code == 503
            and "same key" in p["detail"]
            and p["code"] == "provider_unavailable"
        )
    finally:
        provider.down = False
    # Retrying with the same key once the provider is back records exactly one payment.
    r = await http.post(
        "/api/v1/payments", json=body, headers=auth(tokens["payments"], "down-key-2")
    )
    assert r.status_code == 201
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["paid_fen"] == due and len(s["payments"]) == 1


async def test_concurrent_payments_with_one_key_record_one(
    http: httpx.AsyncClient, tokens: dict[str, str], clock: Clock
) -> None:
    clock.now = T0 + 2 * 60 * MIN
    sid = (await read(http, tokens, "甘G60006", "in", T0, site="cp-dafosi"))["session_id"]
    due = (await http.get(f"/api/v1/sessions/{sid}")).json()["due_fen"]
    body = {"session_id": sid, "amount_fen": due}
    h = auth(tokens["payments"], "same-key-60006")
    rs = await asyncio.gather(
        *(http.post("/api/v1/payments", json=body, headers=h) for _ in range(8))
    )
    assert sorted(r.status_code for r in rs) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in rs}) == 1
    s = (await http.get(f"/api/v1/sessions/{sid}")).json()
    assert s["paid_fen"] == due and len(s["payments"]) == 1


async def test_berth_occupancy_opens_and_closes_sessions(
    http: httpx.AsyncClient, gw: Any, clock: Clock, tokens: dict[str, str]
) -> None:
    clock.now = T0 + 2 * 60 * MIN
    live = gw.services.live
    sensor = next(
        e
        for d in live.directory.ids()
        if (e := live.directory.get(d)) is not None
        and e.berth_id is not None
        and e.site_id is not None
        and e.site_id.startswith("st-")
    )
    berth = live.berths[sensor.berth_id]

    def report(ts: datetime, occupied: bool, fcnt: int) -> None:
        """What ingest does with a decoded uplink: the book changes, sessions follow it."""
        live.book.apply(
            SensorStatus(
                device_id=sensor.id, ts=ts, model=sensor.model, fcnt=fcnt, occupied=occupied
            )
        )

    report(T0, True, 1)

    async def sessions() -> list[dict[str, Any]]:
        r = await http.get(
            "/api/v1/sessions", params={"berth_id": berth.id}, headers=auth(tokens["inspector"])
        )
        found: list[dict[str, Any]] = r.json()["sessions"]
        return found

    await wait_for(
        lambda: (
            gw.metrics_value("citygate_parking_sessions_total", source="berth", outcome="opened")
            >= 1
        ),
        5,
        what="session opened",
    )
    (s,) = await sessions()
    assert s["state"] == "open" and s["berth_number"] == berth.number and s["plate"] is None
    leave = T0 + 45 * MIN
    report(leave, False, 2)
    await wait_for(
        lambda: (
            gw.metrics_value("citygate_parking_sessions_total", source="berth", outcome="closed")
            >= 1
        ),
        5,
        what="session closed",
    )
    (s,) = await sessions()
    assert s["state"] == "closed" and s["exit"] == leave.isoformat()
    assert s["fee_fen"] == sum(line["amount_fen"] for line in s["lines"])


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"plate": "G12345"}, 422, "not a plate"),
        ({"site_id": "cp-nowhere"}, 422, "unknown site"),
        ({"ts": "2026-11-24T09:00:00"}, 422, "timezone"),
        ({"direction": "sideways"}, 422, "direction"),
        ({"confidence": 1.5}, 422, "confidence"),
        ({"ts": "2099-01-01T00:00:00+08:00"}, 422, "future"),
    ],
)
async def test_bad_plate_reads_say_what_is_wrong(
    http: httpx.AsyncClient, tokens: dict[str, str], change: dict[str, Any], status: int, says: str
) -> None:
    body = {
        "camera_id": "cam-1",
        "site_id": "cp-shiminting",
        "direction": "in",
        "plate": "甘G12345",
        "ts": T0.isoformat(),
    } | change
    r = await http.post("/api/v1/plate-reads", json=body, headers=auth(tokens["device"]))
    assert r.status_code == status
    assert says in r.text


async def test_lookups_refuse_bad_queries(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/sessions")).status_code == 422
    assert (await http.get("/api/v1/sessions", params={"plate": "nonsense"})).status_code == 422
    assert (await http.get("/api/v1/sessions", params={"berth_id": "nope"})).status_code == 404
    assert (await http.get("/api/v1/sessions/ps_nope")).status_code == 404
    r = await http.post("/api/v1/plate-reads", json={"camera_id": "x"})
    assert r.status_code == 401


async def test_quote_by_plate_colour(http: httpx.AsyncClient) -> None:
    stay = {
        "site_id": "cp-keyunzhan",
        "entry": T0.isoformat(),
        "exit": (T0 + 3 * 60 * MIN).isoformat(),
    }
    by_class = await http.post("/api/v1/quotes", json={**stay, "vehicle_class": "large"})
    yellow = await http.post(
        "/api/v1/quotes", json={**stay, "plate": "甘G12345", "plate_colour": "yellow"}
    )
    assert yellow.status_code == 200 and yellow.json()["vehicle_class"] == "large"
    assert yellow.json()["total_fen"] == by_class.json()["total_fen"]
    r = await http.post(
        "/api/v1/quotes", json={**stay, "vehicle_class": "small", "plate_colour": "blue"}
    )
    assert r.status_code == 422 and "plate_colour goes with plate" in r.text
