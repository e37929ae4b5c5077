"""Payments and refunds through two gateway instances on one PostgreSQL database (issue 16):
concurrent requests to both never charge a session twice or refund more than was paid; the
same Idempotency-Key through both records one payment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


CLOCK = Clock()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair(mosquitto: Broker, pg_server_url: str) -> AsyncIterator[tuple[Any, ...]]:
    from tests.conftest import _psql

    name = "cg_pay_" + str(abs(hash(T0)))[:8]
    await asyncio.to_thread(_psql, f'CREATE DATABASE "{name}"')
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    settings = {"payments": {"provider": "fake"}}
    try:
        async with (
            running_gateway(gateway_settings(url, mosquitto, **settings), CLOCK) as a,
            running_gateway(gateway_settings(url, mosquitto, **settings), CLOCK) as b,
        ):
            tokens = await make_tokens(a)
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.api_port}") as ha,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.api_port}") as hb,
            ):
                yield ha, hb, tokens
    finally:
        await asyncio.to_thread(_psql, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def auth(token: str, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


async def stay(http: httpx.AsyncClient, tokens: dict[str, str], plate: str) -> tuple[str, int]:
    """A car park stay two hours long: (session id, amount due)."""
    body = {
        "camera_id": "cam-cp-dafosi-in",
        "site_id": "cp-dafosi",
        "direction": "in",
        "plate": plate,
        "ts": T0.isoformat(),
    }
    r = await http.post("/api/v1/plate-reads", json=body, headers=auth(tokens["device"]))
    assert r.status_code == 200, r.text
    sid = str(r.json()["session_id"])
    CLOCK.now = T0 + timedelta(hours=2)
    due = int((await http.get(f"/api/v1/sessions/{sid}")).json()["due_fen"])
    assert due > 0
    return sid, due


async def test_two_instances_never_charge_a_session_twice(pair: tuple[Any, ...]) -> None:
    ha, hb, tokens = pair
    sid, due = await stay(ha, tokens, "甘G70001")
    body = {"session_id": sid, "amount_fen": due}
    rs = await asyncio.gather(
        *(
            http.post(
                "/api/v1/payments", json=body, headers=auth(tokens["payments"], f"pay-key-{i}")
            )
            for i, http in enumerate([ha, hb] * 4)
        )
    )
    codes = sorted(r.status_code for r in rs)
    assert codes.count(201) == 1, [(r.status_code, r.text) for r in rs]
    assert all(c in (201, 409, 422) for c in codes), codes
    for http in (ha, hb):
        s = (await http.get(f"/api/v1/sessions/{sid}")).json()
        assert s["paid_fen"] == due and len(s["payments"]) == 1, s


async def test_one_key_through_two_instances_records_one_payment(pair: tuple[Any, ...]) -> None:
    ha, hb, tokens = pair
    sid, due = await stay(ha, tokens, "甘G70002")
    body = {"session_id": sid, "amount_fen": due}
    h = auth(tokens["payments"], "same-key-70002")
    rs = await asyncio.gather(
        *(http.post("/api/v1/payments", json=body, headers=h) for http in [ha, hb] * 4)
    )
    assert sorted(r.status_code for r in rs) == [200] * 7 + [201], [r.text for r in rs]
    assert len({r.json()["id"] for r in rs}) == 1


async def test_two_instances_never_refund_more_than_was_paid(pair: tuple[Any, ...]) -> None:
    ha, hb, tokens = pair
    sid, due = await stay(ha, tokens, "甘G70003")
    r = await ha.post(
        "/api/v1/payments",
        json={"session_id": sid, "amount_fen": due},
        headers=auth(tokens["payments"], "pay-70003"),
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    rs = await asyncio.gather(
        *(
            http.post(
                f"/api/v1/payments/{pid}/refunds",
                json={"amount_fen": due, "reason": "gate fault"},
                headers=auth(tokens["operator"], f"refund-key-{i}"),
            )
            for i, http in enumerate([ha, hb] * 3)
        )
    )
    codes = sorted(r.status_code for r in rs)
    assert codes.count(201) == 1 and codes.count(422) == 5, [(r.status_code, r.text) for r in rs]
    s = (await hb.get(f"/api/v1/sessions/{sid}")).json()
    assert s["paid_fen"] == 0, s
