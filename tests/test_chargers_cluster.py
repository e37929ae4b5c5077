"""Chargers across two gateway instances on one PostgreSQL database (issue 16): simulated
chargers (the ocpp library's ChargePoint over real websockets) connect to either instance; a
command through the other one reaches them and returns their answer; a charger that moves
(a second connection while the first is open, or close and reconnect) has one live connection,
held by the instance it moved to, and the same health, sessions and history on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text

from drivers.aio import wait_for as aio_wait_for
from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from gateway.infra.storage.schema import AuditRow, ChargerConnectionRow
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

LIVE_S = 3.0
CID = "SDEV001"


@pytest_asyncio.fixture(loop_scope="module")
async def pair(mosquitto: Broker, pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    async with (
        running_gateway(gateway_settings(pg_url, mosquitto)) as a,
        running_gateway(gateway_settings(pg_url, mosquitto)) as b,
    ):
        yield a, b


def url(gw: Any) -> str:
    return f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def api(gw: Any, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        return await http.request(method, path, headers=auth(token), **kw)


async def holder(gw: Any, cid: str) -> str | None:
    async with gw.services.sessions() as db:
        row = await db.get(ChargerConnectionRow, cid)
    return None if row is None else row.instance_id


def instance(gw: Any) -> str:
    cluster = gw.services.charger_cluster
    assert cluster is not None
    return str(cluster.instance)


async def view(gw: Any, token: str, cid: str) -> dict[str, Any]:
    r = await api(gw, "GET", f"/api/v1/chargers/{cid}", token)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def same_state(body: dict[str, Any]) -> tuple[Any, ...]:
    """What both instances must agree on."""
    return (
        body["state"],
        body["instance"],
        body["reported_vendor"],
        body["firmware"],
        [(c["id"], c["status"], c["error_code"], c["transaction_id"]) for c in body["connectors"]],
        [(f["connector_id"], f["start"], f["error_code"]) for f in body["faults"]],
    )


async def agree(a: Any, b: Any, token: str, cid: str) -> tuple[Any, ...] | None:
    va, vb = same_state(await view(a, token, cid)), same_state(await view(b, token, cid))
    return va if va == vb else None


async def test_commands_through_either_instance_and_a_charger_that_moves(
    pair: tuple[Any, Any], mosquitto: Broker
) -> None:
    a, b = pair
    tokens = await make_tokens(a)
    op, inspector = tokens["operator"], tokens["inspector"]
    async with a.services.sessions.begin() as db:
        password = await set_password(db, CID, a.services.clock())
    await wait_for(lambda: CID in b.services.charging.chargers, LIVE_S, what="B knows it")

    # Not connected anywhere: the same 409 as one instance gives.
    r = await api(b, "POST", f"/api/v1/chargers/{CID}/commands/reset", op, json={"type": "soft"})
    assert r.status_code == 409 and r.json()["code"] == "not_connected", r.text

    first = Charger16(url(a), CID, password, firmware="3.1.4")
    await first.connect()
    try:
        await first.boot()
        await first.status(1, "Available")
        await first.fault(2, "GroundFailure", vendor_error_code="0x1F")
        await wait_for(lambda: _is(holder(a, CID), instance(a)), LIVE_S, what="A holds it")

        # B's API shows where it is and what it said, within a second or so.
        async def b_sees() -> bool:
            body = await view(b, inspector, CID)
            return body["instance"] == instance(a) and body["state"] == "faulted"

        await wait_for(b_sees, LIVE_S, what="B shows A's charger")

        # An instance that joins the running cluster sees it as it is: connected on A, not
        # "reconnecting" as after a restart; and it does not take the lead.
        async with running_gateway(gateway_settings(a.settings.database.url, mosquitto)) as c:
            body = await view(c, inspector, CID)
            assert (body["state"], body["instance"]) == ("faulted", instance(a)), body
            assert "restarted" not in " ".join(body["reasons"])
            assert not c.services.charger_cluster.leader

        # A command through B reaches the charger on A and returns its answer, audited on B.
        first.answers["Reset"] = "Rejected"
        r = await api(
            b, "POST", f"/api/v1/chargers/{CID}/commands/reset", op, json={"type": "hard"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "Rejected"
        assert first.received[-1] == ("Reset", {"type": "Hard"})
        async with b.services.sessions() as db:
            audit = (
                (
                    await db.execute(
                        select(AuditRow).where(AuditRow.key == CID, AuditRow.action == "command")
                    )
                )
                .scalars()
                .all()
            )
        assert [e.after["outcome"] for e in audit] == ["Rejected"]
        # Bad parameters are refused by the charger's instance, as they would be locally.
        r = await api(b, "POST", f"/api/v1/chargers/{CID}/commands/reset", op, json={"x": 1})
        assert r.status_code == 422 and r.json()["code"] == "bad_params", r.text
        # A secret parameter travels, the charger takes it, and no row keeps it.
        r = await api(
            b,
            "POST",
            f"/api/v1/chargers/{CID}/commands/change_configuration",
            op,
            json={"key": "AuthorizationKey", "value": "N3w-Pa55word-0123456789"},
        )
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        password = "N3w-Pa55word-0123456789"

        tx = await first.start_transaction(1, "TAG-1", meter_start=1000)
        await first.meter_values(1, tx=tx, energy_wh=1500)

        # A second connection through B while the first is still open: B takes over, A
        # closes its connection, exactly one stays.
        second = Charger16(url(b), CID, password, firmware="3.1.4")
        await second.connect()
        await aio_wait_for(first.wait_closed(), LIVE_S)
        await wait_for(lambda: _is(holder(a, CID), instance(b)), LIVE_S, what="B holds it")
        assert CID in b.services.charging.live and CID not in a.services.charging.live
    finally:
        await first.disconnect()
    try:
        # Its health, session and history went with it.
        state = await wait_for(lambda: agree(a, b, inspector, CID), LIVE_S, what="agree")
        assert state[0] == "faulted" and state[1] == instance(b)
        assert (2, "Faulted", "GroundFailure", None) in state[4]
        assert (1, "Charging", None, str(tx.id)) in state[4] or (
            1,
            "Available",
            None,
            str(tx.id),
        ) in state[4]
        sessions_a = (await api(a, "GET", f"/api/v1/chargers/{CID}/sessions", inspector)).json()
        sessions_b = (await api(b, "GET", f"/api/v1/chargers/{CID}/sessions", inspector)).json()
        assert sessions_a == sessions_b and sessions_a["sessions"][0]["state"] == "open"

        # Commands through A now reach it via B.
        r = await api(a, "POST", f"/api/v1/chargers/{CID}/commands/unlock_connector", op,
                      json={"connector_id": 1})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "Unlocked", r.text
        assert second.received[-1][0] == "UnlockConnector"

        # The transaction started on A ends on B: one session, closed and billed.
        await second.stop_transaction(tx, meter_stop=4000)
        await second.status(1, "Available")

        async def closed() -> bool:
            body = (await api(a, "GET", f"/api/v1/chargers/{CID}/sessions", inspector)).json()
            return len(body["sessions"]) == 1 and body["sessions"][0]["state"] == "closed"

        await wait_for(closed, LIVE_S, what="the session closed")
        # A new transaction on B gets an id the charger never had.
        tx2 = await second.start_transaction(2, "TAG-2", meter_start=0)
        assert tx2.id != tx.id
    finally:
        await second.disconnect()

    # Close and reconnect to A: A holds it again, commands through B reach it.
    await wait_for(lambda: _is(holder(a, CID), None), LIVE_S, what="B let it go")
    third = Charger16(url(a), CID, password)
    await third.connect()
    try:
        await wait_for(lambda: _is(holder(a, CID), instance(a)), LIVE_S, what="A again")
        r = await api(b, "POST", f"/api/v1/chargers/{CID}/commands/reset", op,
                      json={"type": "soft"})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "Accepted", r.text
        assert third.received[-1] == ("Reset", {"type": "Soft"})
    finally:
        await third.disconnect()
    await wait_for(lambda: _is(holder(a, CID), None), LIVE_S, what="A let it go")
    await wait_for(lambda: _is(_instance_of(b, inspector, CID), None), LIVE_S, what="B: nowhere")
    r = await api(b, "POST", f"/api/v1/chargers/{CID}/commands/reset", op, json={"type": "soft"})
    assert r.status_code == 409


async def test_a_dead_instances_hold_is_stale(pair: tuple[Any, Any]) -> None:
    """A row left by an instance killed with ``kill -9`` (its lock died with it) neither
    answers commands nor keeps the charger out."""
    a, b = pair
    tokens = await make_tokens(a)
    cid = "SDEV002"
    async with a.services.sessions.begin() as db:
        password = await set_password(db, cid, a.services.clock())
        db.add(
            ChargerConnectionRow(
                charger_id=cid, instance_id="killed-1", since=datetime.now(UTC), protocol="1.6",
                remote="",
            )
        )  # fmt: skip
    r = await api(b, "POST", f"/api/v1/chargers/{cid}/commands/reset", tokens["operator"],
                  json={"type": "soft"})  # fmt: skip
    assert r.status_code == 409, r.text
    assert await holder(a, cid) is None  # cleaned up
    async with a.services.sessions.begin() as db:
        db.add(
            ChargerConnectionRow(
                charger_id=cid, instance_id="killed-2", since=datetime.now(UTC), protocol="1.6",
                remote="",
            )
        )  # fmt: skip
    async with Charger16(url(b), cid, password) as c:
        await c.boot()
        assert await holder(a, cid) == instance(b)
    await wait_for(lambda: _is(holder(a, cid), None), LIVE_S, what="let go")


async def _instance_of(gw: Any, token: str, cid: str) -> Any:
    return (await view(gw, token, cid))["instance"]


async def _is(value: Any, expected: Any) -> bool:
    got = await value if asyncio.iscoroutine(value) else value
    return bool(got == expected)


async def test_a_holder_that_loses_its_database_lets_its_chargers_go(
    pair: tuple[Any, Any],
) -> None:
    """A's lock connection dies (as when the database restarts, or A is cut off from it):
    every lock it held is gone, so A closes its chargers' connections and forgets its rows;
    the charger comes back through B, which then holds it."""
    a, b = pair
    cid = "SDEV003"
    async with a.services.sessions.begin() as db:
        password = await set_password(db, cid, a.services.clock())
    first = Charger16(url(a), cid, password)
    await first.connect()
    try:
        await first.boot()
        assert await holder(a, cid) == instance(a)
        pid = a.services.charger_cluster._driver.get_server_pid()
        async with b.services.sessions() as db:
            await db.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await aio_wait_for(first.wait_closed(), LIVE_S)
        await wait_for(lambda: _is(holder(a, cid), None), LIVE_S, what="A's row gone")
    finally:
        await first.disconnect()
    async with Charger16(url(b), cid, password) as again:
        await again.boot()
        assert await holder(a, cid) == instance(b)
        tokens = await make_tokens(a)
        r = await api(a, "POST", f"/api/v1/chargers/{cid}/commands/reset", tokens["operator"],
                      json={"type": "soft"})  # fmt: skip
        assert r.status_code == 200, r.text  # A reconnected: it relays again


async def test_a_half_open_old_connection_does_not_lock_the_charger_out(
    pair: tuple[Any, Any],
) -> None:
    """The charger's old connection to A is half open (it reads nothing any more, so A's close
    is never answered): its new connection through B is served within the takeover wait,
    and A has dropped the old one."""
    a, b = pair
    cid = "SDEV004"
    async with a.services.sessions.begin() as db:
        password = await set_password(db, cid, a.services.clock())
    first = Charger16(url(a), cid, password)
    await first.connect()
    try:
        await first.boot()
        assert first.ws is not None
        first.ws.transport.pause_reading()  # the charger is gone from this connection
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with Charger16(url(b), cid, password) as second:
            await second.boot()
            assert loop.time() - started < 5.0  # TAKEOVER_S
            assert await holder(a, cid) == instance(b)
            assert cid not in a.services.charging.live
            assert a.services.charging.book.state(cid).disconnect_reason == "moved"
    finally:
        await first.drop()
