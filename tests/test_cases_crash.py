"""The real ``citygate run`` killed with SIGKILL between committing a case report and
delivering it: after a restart the case system receives the report exactly once per key."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.demo.broker import free_port
from gateway.infra.storage.db import create_engine, sessionmaker_for
from gateway.infra.storage.schema import CaseReportRow
from tests.case_system import CaseSystem, case_system_fixture  # noqa: F401
from tests.conftest import Broker, wait_for

MARKET = (101.0760, 38.77622)


@pytest.mark.slow
async def test_kill_9_between_commit_and_delivery(
    mosquitto: Broker, case_system: CaseSystem, tmp_path: Path
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}"
    api_port = free_port()
    env = {
        **os.environ,
        "CITYGATE_DATABASE__URL": f'"{db}"',
        "CITYGATE_MQTT__PORT": str(mosquitto.port),
        "CITYGATE_MQTT__CLIENT_ID": '"cases-crash"',
        "CITYGATE_API__PORT": str(api_port),
        "CITYGATE_BODYCAMS__SIP_PORT": "0",
        "CITYGATE_OCPP__PORT": "0",
        "CITYGATE_DRONES__MAVLINK_PORT": "0",
        "CITYGATE_TELEMETRY__SPOOL_DIR": f'"{tmp_path / "spool"}"',
        "CITYGATE_CASES__URL": f'"{case_system.url}"',
        "CITYGATE_CASES__SECRET": case_system.secret.decode(),
        "CITYGATE_CASES__TIMEOUT_S": "2",
        "CITYGATE_CASES__MAX_BACKOFF_S": "0.5",
        "CITYGATE_LOG__LEVEL": '"WARNING"',
    }
    made = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway.cli", "token", "create", "--role", "device"),
        env=env,
        cwd=tmp_path,  # no stray config file found by the search order
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(made.communicate(), 60)
    assert made.returncode == 0
    token = out.decode().strip()
    await case_system.stop()  # the case system is down

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            env=env,
            cwd=tmp_path,  # no stray config file found by the search order
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def ready() -> bool:
        async with httpx.AsyncClient() as http:
            try:
                r = await http.get(f"http://127.0.0.1:{api_port}/healthz")
            except httpx.HTTPError:
                return False
            return r.status_code == 200

    engine = create_engine(db)
    sessions = sessionmaker_for(engine)

    async def report() -> CaseReportRow | None:
        async with sessions() as s:
            row: CaseReportRow | None = await s.scalar(select(CaseReportRow))
            return row

    proc = await start()
    try:
        await wait_for(ready, 30, interval=0.1, what="gateway up")
        seen = datetime.now(UTC) - timedelta(days=1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            r = await http.post(
                "/api/v1/detections",
                json={
                    "device_id": "ai-cam-07",
                    "kind": "street_vending",
                    "observed_at": seen.replace(hour=3).isoformat(),  # 11:xx local
                    "confidence": 0.93,
                    "image_ref": "oss://evidence/crash.jpg",
                    "lon": MARKET[0],
                    "lat": MARKET[1],
                },
                headers={"Authorization": f"Bearer {token}"},
            )
        assert r.status_code == 200, r.text
        (case_id,) = r.json()["case_ids"]
        # Committed, tried against the dead case system, not delivered: now kill it.
        row = await wait_for(
            lambda: _attempted(report), 15, what="a failed delivery attempt recorded"
        )
        assert row.id == case_id and row.delivery_state == "pending"
    finally:
        proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert case_system.received == []

    await case_system.start()
    proc = await start()
    try:
        await wait_for(lambda: case_system.cases.get(case_id), 30, what="report delivered")
        delivered = await wait_for(
            lambda: _state(report, "delivered"), 15, what="delivery confirmed in the outbox"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await engine.dispose()
    assert list(case_system.cases) == [case_id]
    assert len(case_system.receipts(case_id)) == 1
    assert case_system.receipts(case_id)[0].signature_ok
    assert delivered.remote_id == case_system.remote_ids[case_id]


async def _attempted(report: object) -> CaseReportRow | None:
    row: CaseReportRow | None = await report()  # type: ignore[operator]
    return row if row is not None and row.attempts >= 1 else None


async def _state(report: object, state: str) -> CaseReportRow | None:
    row: CaseReportRow | None = await report()  # type: ignore[operator]
    return row if row is not None and row.delivery_state == state else None
