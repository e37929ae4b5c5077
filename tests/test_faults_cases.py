"""Fault suite: the town's case system down while cases are filed, and cut off mid-request
(issue 16).

A running gateway (SQLite) delivers to the fake case system (tests/case_system.py: verifies
the signature, files each report once per ``Idempotency-Key``, records every raw request).
Cases are filed through the API (``POST /api/v1/detections``: a stall in the hospital's
ambulance lane, each sighting 31 min after the last, outside the rule's 30 min dedup window,
so each is a case of its own): 10 while the system is up, 20 while it is down (connections
refused), then it comes back; then 10 more while it answers slowly, and it is stopped while
those requests are in flight (answers cut off), and started again. Counted: cases the API
committed (sent), cases filed at the receiver (arrived), raw requests, re-sends, the outbox's
delivered rows. Every committed case must be filed exactly once, under its own key, and
every re-send must carry the same bytes."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.infra.storage.schema import CaseReportRow
from tests.case_system import CaseSystem, case_system_fixture  # noqa: F401
from tests.conftest import (
    Broker,
    copy_sqlite,
    gateway_settings,
    make_tokens,
    running_gateway,
    wait_for,
)
from tests.faults import TcpProxy

AMBULANCE = (101.08238, 38.78460)  # 同和医院急救通道: rule ambulance-lane-stall, dedup 30m
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


async def file_cases(http: httpx.AsyncClient, token: str, first: int, n: int) -> list[str]:
    """Detections number *first*..*first+n-1*; the ids of the cases the API committed."""
    ids: list[str] = []
    for i in range(first, first + n):
        r = await http.post(
            "/api/v1/detections",
            json={
                "device_id": "ai-cam-faults",
                "kind": "street_vending",
                "observed_at": (START + timedelta(minutes=31 * i)).isoformat(),
                "confidence": 0.9,
                "image_ref": f"oss://evidence/faults/{i}.jpg",
                "lon": AMBULANCE[0],
                "lat": AMBULANCE[1],
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["outcome"] == "case" and len(body["case_ids"]) == 1, body
        ids += body["case_ids"]
    return ids


@pytest.mark.slow
async def test_case_system_outage_every_case_delivered_exactly_once(
    mosquitto: Broker,
    case_system: CaseSystem,
    tmp_path: Path,
    sqlite_template: dict[str, Path],
) -> None:
    # The gateway reaches the case system through a proxy, which can cut the connections of
    # requests whose answers are still owed (stopping the fake system would answer them).
    proxy = TcpProxy("127.0.0.1", case_system.port)
    await proxy.start()
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{copy_sqlite(sqlite_template['town'], tmp_path / 'cg.db')}",
        mosquitto,
        cases={
            "url": case_system.url.replace(f":{case_system.port}/", f":{proxy.port}/"),
            "secret": case_system.secret.decode(),
            "timeout_s": 5,
            "max_backoff_s": 0.5,
        },
    )
    fig: dict[str, Any] = {"fault": "case system outage"}
    try:
        await _scenario(settings, case_system, proxy, fig)
    finally:
        await proxy.close()


async def _scenario(
    settings: Any, case_system: CaseSystem, proxy: TcpProxy, fig: dict[str, Any]
) -> None:
    async with running_gateway(settings) as gw:
        token = (await make_tokens(gw))["device"]
        sessions = gw.services.sessions

        async def in_state(state: str) -> int:
            async with sessions() as db:
                n = await db.scalar(
                    select(func.count()).where(CaseReportRow.delivery_state == state)
                )
            return int(n or 0)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            sent = await file_cases(http, token, 0, 10)
            await wait_for(lambda: len(case_system.cases) == 10, 15, what="the first ten")

            # Down: connections refused while 20 more are filed.
            await case_system.stop()
            await proxy.cut()  # and its address refuses connections
            t_down = time.monotonic()
            down = await file_cases(http, token, 10, 20)
            sent += down

            def retried() -> bool:
                return gw.metrics_value("citygate_cases_retries_total", reason="connect") >= 2

            await wait_for(retried, 15, what="delivery attempts refused")
            fig["pending_in_outage"] = await in_state("pending")
            assert fig["pending_in_outage"] == 20
            assert all(k not in case_system.cases for k in down)
            fig["outage_s"] = round(time.monotonic() - t_down, 2)
            await case_system.start()
            await proxy.restore()
            t_up = time.monotonic()
            await wait_for(lambda: len(case_system.cases) == 30, 20, what="the twenty filed")
            fig["delivered_after_s"] = round(time.monotonic() - t_up, 2)

            # Answers lost: the system files each report, then answers slowly; the connections
            # are cut (reset) while those answers are still owed, and new ones refused a while.
            case_system.delay_s = 30
            slow = await file_cases(http, token, 30, 10)
            sent += slow
            await wait_for(lambda: any(case_system.receipts(k) for k in slow), 15, what="in flight")
            in_flight = [k for k in slow if case_system.receipts(k)]
            await proxy.cut()
            case_system.delay_s = 0
            await wait_for(retried_more(gw, fig), 15, what="re-sends refused while cut")
            await proxy.restore()
            await wait_for(lambda: len(case_system.cases) == 40, 30, what="all forty filed")

            async def all_delivered() -> bool:
                return await in_state("delivered") == 40

            await wait_for(all_delivered, 30, what="the outbox says delivered")

        keys = Counter(r.key for r in case_system.received)
        # A request that filed a report: answered 201, or cut off before its answer (None);
        # a re-sent one is answered 200 (the report it already has). Nothing else (422: a key
        # reused with other bytes) may appear.
        filing = Counter(r.key for r in case_system.received if r.status != 200)
        repeats = {r.key for r in case_system.received if r.status == 200}
        bodies = {k: {r.body for r in case_system.receipts(k)} for k in keys}
        fig |= {
            "cases_sent": len(sent),
            "cases_filed": len(case_system.cases),
            "requests": len(case_system.received),
            "resends": len(case_system.received) - len(keys),
            "filed_twice": sum(1 for n in filing.values() if n > 1),
            "refused_connections": int(
                gw.metrics_value("citygate_cases_retries_total", reason="connect")
            ),
            "outbox_delivered": await in_state("delivered"),
            "answers_cut": len(in_flight),
            "resent_after_cut": sum(1 for k in in_flight if len(case_system.receipts(k)) > 1),
        }
        print("FAULT " + json.dumps(fig))
    assert len(set(sent)) == len(sent) == 40
    assert set(case_system.cases) == set(sent), "every committed case filed, nothing else"
    assert all(n == 1 for n in filing.values()) and set(filing) == set(sent)
    assert {r.status for r in case_system.received} <= {201, 200, None}
    assert repeats == set(in_flight), "only a request whose answer was cut is sent again"
    assert all(len(b) == 1 for b in bodies.values()), "a re-send carries the same bytes"
    assert all(r.signature_ok for r in case_system.received)
    assert fig["outbox_delivered"] == 40
    assert fig["resent_after_cut"] == len(in_flight) > 0  # at least once on the wire ...
    assert all(case_system.receipts(k)[-1].status == 200 for k in in_flight)  # ... once filed


def retried_more(gw: Any, fig: dict[str, Any]) -> Any:
    """A predicate: delivery refused at least once more since it was made."""
    before = gw.metrics_value("citygate_cases_retries_total", reason="connect")
    return lambda: gw.metrics_value("citygate_cases_retries_total", reason="connect") > before
