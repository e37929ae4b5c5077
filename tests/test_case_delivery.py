"""Delivery of case reports to a real HTTP case system (tests/case_system.py): signed, with
an idempotency key, retried with backoff, refused reports kept, and exactly once at the
receiver across kill -9 of the sending process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from events import CaseRaised
from gateway.cases.delivery import (
    CaseDelivery,
    Delivered,
    DeliverySettings,
    Rejected,
    Retry,
    classify,
)
from gateway.cases.metrics import CaseMetrics
from gateway.cases.outbox import record_case
from gateway.cases.report import report_body
from gateway.config import CasesConfig
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import CaseReportRow
from tests.case_system import CaseSystem, case_system_fixture  # noqa: F401
from tests.conftest import wait_for

ROOT = Path(__file__).parent.parent


# -- what an answer means (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (201, b'{"case_id": "SD-1"}', Delivered("accepted", "SD-1")),
        (200, b'{"case_id": 42}', Delivered("accepted", "42")),
        (204, b"", Delivered("accepted", None)),
        (202, b"not json", Delivered("accepted", None)),
        (200, b'{"case_id": true}', Delivered("accepted", None)),
        (409, b'{"case_id": "SD-1"}', Delivered("duplicate", "SD-1")),
        (409, b"", Delivered("duplicate", None)),
    ],
)
def test_classify_confirmations(status: int, answer: bytes, expected: Delivered) -> None:
    assert classify(status, answer, None, "https://cs") == expected


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (408, "http_408"),
        (425, "http_425"),
        (429, "http_429"),
        (500, "http_5xx"),
        (503, "http_5xx"),
        (401, "http_401"),
        (403, "http_403"),
        (404, "http_404"),
        (302, "http_3xx"),
        (101, "http_other"),
    ],
)
def test_classify_retries(status: int, label: str) -> None:
    outcome = classify(status, b'{"message": "busy"}', "7", "https://cs")
    assert isinstance(outcome, Retry) and outcome.label == label
    assert outcome.retry_after_s == 7.0
    if status in (401, 403):
        assert "secret" in outcome.reason
    if status < 300 or status >= 400:
        assert "busy" in outcome.reason


@pytest.mark.parametrize("status", [400, 405, 413, 415, 422])
def test_classify_refusals(status: int) -> None:
    outcome = classify(status, b'{"error": "category 9999 unknown"}', None, "https://cs")
    assert outcome == Rejected(str(status), f"HTTP {status}: category 9999 unknown")


def test_settings_validation_and_config() -> None:
    with pytest.raises(ValueError, match="credentials"):
        DeliverySettings(url="https://u:p@cs.example/api")
    with pytest.raises(ValueError, match="ca_file"):
        DeliverySettings(url="http://cs.example/api", ca_file=Path("/ca.pem"))
    config = CasesConfig(url="https://cs.example/api?x=1", secret=SecretStr("s3cret"), timeout_s=5)
    settings = DeliverySettings.from_config(config)
    assert settings.secret == b"s3cret" and settings.timeout_s == 5
    assert settings.lease == timedelta(seconds=35) and settings.where == "https://cs.example/api"
    assert "s3cret" not in repr(settings)
    assert DeliverySettings.from_config(CasesConfig()).url is None


# -- against the real case system -----------------------------------------------------------


@pytest_asyncio.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker_for(engine)


def raised(key: str = "0505:berth-17", plate: str | None = "粤B12345") -> CaseRaised:
    return CaseRaised(
        device_id="cam-07",
        ts=datetime.now(UTC),
        category="0505",
        rule_id="fire-lane",
        title="机动车乱停放 消防通道",
        dedup_key=key,
        dedup_window_s=600,
        site_id="sd-1",
        plate=plate,
        evidence=("img/a.jpg",),
        details={"minutes": 12},
    )


async def record(sessions: async_sessionmaker[AsyncSession], key: str = "0505:berth-17") -> str:
    async with sessions.begin() as s:
        row = await record_case(s, raised(key), datetime.now(UTC))
        assert row is not None
        return row.id


async def stored(sessions: async_sessionmaker[AsyncSession], case_id: str) -> CaseReportRow:
    async with sessions() as s:
        row = await s.get(CaseReportRow, case_id)
        assert row is not None
        return row


async def state_is(
    sessions: async_sessionmaker[AsyncSession], case_id: str, state: str
) -> CaseReportRow | None:
    row = await stored(sessions, case_id)
    return row if row.delivery_state == state else None


def delivery_for(
    sessions: async_sessionmaker[AsyncSession], url: str | None, secret: bytes, **kw: Any
) -> CaseDelivery:
    values: dict[str, Any] = {
        "url": url,
        "secret": secret,
        "timeout_s": 2.0,
        "base_backoff_s": 0.1,
        "max_backoff_s": 1.0,
        "poll_s": 1.0,
    }
    values.update(kw)
    return CaseDelivery(
        DeliverySettings(**values),
        sessions,
        metrics=CaseMetrics(CollectorRegistry()),
        rng=random.Random(3),
    )


@contextlib.asynccontextmanager
async def running(delivery: CaseDelivery) -> AsyncIterator[CaseDelivery]:
    task = asyncio.create_task(delivery.run())
    try:
        yield delivery
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled(), "run() must only end by cancellation"


def metric(delivery: CaseDelivery, name: str, **labels: str) -> float:
    return delivery.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_delivered_once_signed_with_the_idempotency_key(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    async with running(delivery_for(sessions, case_system.url, case_system.secret)) as delivery:
        case_id = await record(sessions)
        delivery.kick()
        row = await wait_for(lambda: state_is(sessions, case_id, "delivered"), 10)
        assert row.remote_id == "SD-000001" and row.attempts == 1
        [receipt] = case_system.received
        assert receipt.signature_ok and receipt.key == case_id
        assert receipt.headers["Content-Type"] == "application/json; charset=utf-8"
        assert receipt.body == report_body(row)
        assert "粤B12345".encode() in receipt.body
        assert case_system.cases[case_id]["prior_offences"] == 0
        assert metric(delivery, "citygate_cases_delivered_total", answer="accepted") == 1
        await wait_for(lambda: metric(delivery, "citygate_cases_pending") == 0 or None, 5)
        # Later reports go too; nothing is sent twice.
        second = await record(sessions, "0505:berth-18")
        delivery.kick()
        await wait_for(lambda: state_is(sessions, second, "delivered"), 10)
    assert [r.key for r in case_system.received] == [case_id, second]
    assert case_system.cases[second]["prior_offences"] == 1


async def test_case_system_down_then_up(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    await case_system.stop()
    async with running(delivery_for(sessions, case_system.url, case_system.secret)) as delivery:
        case_id = await record(sessions)
        delivery.kick()
        row = await wait_for(
            lambda: (
                stored(sessions, case_id).__await__().__next__
                if False
                else _attempted(sessions, case_id, 2)
            ),
            10,
        )
        assert row.delivery_state == "pending" and "cannot connect" in row.last_error
        assert row.next_attempt_at is not None
        assert delivery.failing
        assert metric(delivery, "citygate_cases_retries_total", reason="connect") >= 2
        await case_system.start()
        await wait_for(lambda: state_is(sessions, case_id, "delivered"), 10)
        assert not delivery.failing
    assert len(case_system.receipts(case_id)) == 1


async def _attempted(
    sessions: async_sessionmaker[AsyncSession], case_id: str, attempts: int
) -> CaseReportRow | None:
    row = await stored(sessions, case_id)
    return row if row.attempts >= attempts else None


async def test_503_three_times_then_accepted_with_growing_delays(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    case_system.fail_next(503, times=3, body='{"message": "maintenance"}')
    delivery = delivery_for(
        sessions, case_system.url, case_system.secret, base_backoff_s=0.2, max_backoff_s=2.0
    )
    async with running(delivery):
        case_id = await record(sessions)
        delivery.kick()
        row = await wait_for(lambda: state_is(sessions, case_id, "delivered"), 15)
    receipts = case_system.receipts(case_id)
    assert [r.status for r in receipts] == [503, 503, 503, 201]
    assert len({r.body for r in receipts}) == 1  # the same bytes every time
    gaps = [b.at - a.at for a, b in itertools.pairwise(receipts)]
    # Backoff with jitter: attempt n waits within [base·2ⁿ/2, base·2ⁿ] (base 0.2 s).
    for n, gap in enumerate(gaps):
        assert gap >= 0.2 * 2**n / 2 * 0.99, gaps
    assert gaps[2] > gaps[0], gaps
    assert row.attempts == 4 and row.last_error == ""
    assert metric(delivery, "citygate_cases_retries_total", reason="http_5xx") == 3


async def test_a_refused_report_is_kept_and_not_retried(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    case_system.fail_next(400, body='{"message": "category 0505 needs a berth"}')
    async with running(delivery_for(sessions, case_system.url, case_system.secret)) as delivery:
        refused = await record(sessions)
        delivery.kick()
        row = await wait_for(lambda: state_is(sessions, refused, "rejected"), 10)
        assert row.last_error == "HTTP 400: category 0505 needs a berth"
        assert row.next_attempt_at is None and row.attempts == 1
        # The loop goes on: the next report is delivered, the refused one is not re-sent.
        ok = await record(sessions, "0505:berth-18")
        delivery.kick()
        await wait_for(lambda: state_is(sessions, ok, "delivered"), 10)
        assert metric(delivery, "citygate_cases_rejected_total", status="400") == 1
        assert not delivery.failing
    assert [r.key for r in case_system.received] == [refused, ok]


async def test_409_means_the_case_system_has_it(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    case_system.fail_next(409, body='{"case_id": "SD-77"}')
    async with running(delivery_for(sessions, case_system.url, case_system.secret)) as delivery:
        case_id = await record(sessions)
        delivery.kick()
        row = await wait_for(lambda: state_is(sessions, case_id, "delivered"), 10)
        assert row.remote_id == "SD-77"
        assert metric(delivery, "citygate_cases_delivered_total", answer="duplicate") == 1


async def test_a_wrong_secret_is_retried_not_rejected(
    sessions: async_sessionmaker[AsyncSession], case_system: CaseSystem
) -> None:
    async with running(delivery_for(sessions, case_system.url, b"wrong")) as delivery:
        case_id = await record(sessions)
        delivery.kick()
        row = await wait_for(lambda: _attempted(sessions, case_id, 2), 10)
        assert row.delivery_state == "pending" and "check the [cases] secret" in row.last_error
        assert "wrong" not in row.last_error
        assert metric(delivery, "citygate_cases_retries_total", reason="http_401") >= 2


async def test_without_a_url_reports_wait_in_the_outbox(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    async with running(delivery_for(sessions, None, b"secret")) as delivery:
        case_id = await record(sessions)
        delivery.kick()
        await wait_for(lambda: metric(delivery, "citygate_cases_pending") == 1, 5)
        row = await stored(sessions, case_id)
        assert row.delivery_state == "pending" and row.attempts == 0
    assert "url not set" in caplog.text
    broken = delivery_for(sessions, "https://127.0.0.1:9/x", b"s", ca_file=Path("/nonexistent.pem"))
    async with running(broken):
        broken.kick()
        await wait_for(lambda: "ca_file /nonexistent.pem unusable" in caplog.text, 5)
        await wait_for(lambda: metric(broken, "citygate_cases_pending") == 1, 5)


async def test_https_with_a_private_ca_and_never_downgraded(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ca = trustme.CA()
    server_ctx = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    system = CaseSystem(ssl_context=server_ctx)
    await system.start()
    try:
        assert system.url.startswith("https://")
        untrusting = delivery_for(sessions, system.url, system.secret)
        first = await record(sessions)
        async with aiohttp.ClientSession() as http:
            assert await untrusting.run_once(http) == "failing"
        row = await stored(sessions, first)
        assert "not trusted" in row.last_error and "ca_file" in row.last_error
        assert system.received == []  # nothing went out in the clear
        trusting = delivery_for(sessions, system.url, system.secret, ca_file=tmp_path / "ca.pem")
        async with running(trusting):
            second = await record(sessions, "0505:berth-18")
            trusting.kick()
            await wait_for(lambda: state_is(sessions, second, "delivered"), 10)
            await wait_for(lambda: state_is(sessions, first, "delivered"), 10)
        assert all(r.signature_ok for r in system.received)
    finally:
        await system.stop()


# -- kill -9 ------------------------------------------------------------------------------


async def spawn(*args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.case_outbox_worker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    return proc


async def read_line(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "the worker died before it was killed"
    return line.decode().split()


async def kill_9(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
async def test_kill_9_after_commit_before_delivery(tmp_path: Path, case_system: CaseSystem) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}"
    secret = case_system.secret.decode()
    await case_system.stop()  # down while the first process lives
    first = await spawn("record", db, case_system.url, secret)
    try:
        kind, case_id = await read_line(first)
        assert kind == "recorded"
        assert await read_line(first) == ["attempted"]
    finally:
        await kill_9(first)
    await case_system.start()
    engine = create_engine(db)
    second = await spawn("deliver", db, case_system.url, secret, "2", "5")
    try:
        assert await read_line(second) == ["delivering"]
        row = await wait_for(lambda: state_is(sessionmaker_for(engine), case_id, "delivered"), 15)
    finally:
        await kill_9(second)
        await engine.dispose()
    assert row.remote_id == case_system.remote_ids[case_id]
    assert len(case_system.receipts(case_id)) == 1 and list(case_system.cases) == [case_id]


@pytest.mark.slow
async def test_kill_9_while_the_case_system_is_slow_resends_the_same_key(
    tmp_path: Path, case_system: CaseSystem
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}"
    secret = case_system.secret.decode()
    engine = create_engine(db)
    await migrate(engine)
    sessions = sessionmaker_for(engine)
    try:
        case_id = await record(sessions)
        case_system.delay_s = 60  # files the report, then takes its time to answer
        # Lease 0.5 s: how long a report in flight is left alone (the test's stand-in for
        # timeout + 30 s), so the restarted process may take it over soon.
        first = await spawn("deliver", db, case_system.url, secret, "20", "0.5")
        try:
            await wait_for(lambda: case_system.receipts(case_id), 15, what="first receipt")
        finally:
            await kill_9(first)  # mid-request: no answer seen, nothing confirmed
        assert (await stored(sessions, case_id)).delivery_state == "pending"
        case_system.delay_s = 0
        second = await spawn("deliver", db, case_system.url, secret, "20", "0.5")
        try:
            row = await wait_for(lambda: state_is(sessions, case_id, "delivered"), 15)
        finally:
            await kill_9(second)
    finally:
        await engine.dispose()
    raw = case_system.receipts(case_id)
    assert len(raw) == 2  # at least once on the wire ...
    assert all(r.signature_ok for r in raw) and raw[0].body == raw[1].body
    assert list(case_system.cases) == [case_id]  # ... exactly once at the receiver
    assert raw[1].status == 200 and row.remote_id == case_system.remote_ids[case_id]
