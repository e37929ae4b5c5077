"""Delivery of case reports to the town's case system: at least once, with an idempotency key.

Each report is POSTed as its exact JSON bytes, signed (``X-Citygate-Signature``), with
``Idempotency-Key: <report id>``; the same key and the same bytes on every attempt, so a
receiver that de-duplicates by key files each report exactly once, whatever crashes happen
on either side. A report leaves the outbox only when the case system confirmed it (2xx, or
409: it already has it).

Scheduling is persisted per report (``attempts``, ``next_attempt_at``), so a restart keeps
the backoff. A report being sent is *leased* (its next attempt moved past the request
timeout) in a committed transaction before the request goes out: a second gateway instance
leaves it alone, and if this process dies mid-request the report falls due again by itself
and is re-sent with the same key. No database transaction is held across network I/O.

While the case system fails, one batch probes it per (growing) interval instead of every
due report trying on its own; new reports do not wake the loop during an outage.

Over 400 lines on purpose: claiming, sending, classifying answers and scheduling retries are
one at-least-once protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, NoReturn
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.backoff import Backoff
from events import now_utc
from gateway.cases.metrics import CaseMetrics
from gateway.cases.outbox import (
    claim,
    mark_delivered,
    mark_rejected,
    mark_retry,
    next_due_at,
    pending_summary,
)
from gateway.cases.report import report_body
from gateway.cases.signing import HEADER, sign
from gateway.config import CasesConfig
from gateway.infra.storage.schema import CaseReportRow
from gateway.logs import OnceLogger
from telemetry.sinks import parse_retry_after

__all__ = [
    "CaseDelivery",
    "Delivered",
    "DeliverySettings",
    "Outcome",
    "Rejected",
    "Retry",
    "classify",
]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429})
#: Not about the report but about us (credentials, address): retried, loudly, until fixed.
_CONFIG_STATUSES = frozenset({401, 403, 404})
_MAX_ANSWER = 64 * 1024
_MAX_MESSAGE = 200
_REMOTE_ID = 64


@dataclass(frozen=True)
class DeliverySettings:
    """Where and how to deliver. ``url`` ``None`` (or no ``secret``): reports stay pending.

    ``lease_s`` (default ``timeout_s + 30``) is how long a report being sent is left alone
    by other senders; ``poll_s`` bounds how long a report filed by another process (without
    a :meth:`CaseDelivery.kick`) may wait; ``base_backoff_s`` is the first retry delay.
    """

    url: str | None
    secret: bytes | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout_s: float = 10.0
    max_backoff_s: float = 300.0
    base_backoff_s: float = 1.0
    batch_size: int = 8
    lease_s: float | None = None
    poll_s: float = 30.0

    def __post_init__(self) -> None:
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"[cases] url must be http(s)://HOST[:PORT]/PATH: {self.url!r}")
            if parts.username is not None or parts.password is not None:
                raise ValueError("[cases] url must not carry credentials (the secret signs)")
            if self.ca_file is not None and parts.scheme != "https":
                raise ValueError("[cases] ca_file is set but the url is not https://")
        for name in ("timeout_s", "max_backoff_s", "base_backoff_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"[cases] {name} must be > 0")
        if self.batch_size < 1:
            raise ValueError("[cases] batch_size must be >= 1")
        if self.lease_s is not None and not self.lease_s > 0:
            raise ValueError("[cases] lease_s must be > 0")

    @classmethod
    def from_config(cls, config: CasesConfig) -> DeliverySettings:
        secret = config.secret.get_secret_value().encode() if config.secret else None
        return cls(
            url=config.url,
            secret=secret or None,
            ca_file=config.ca_file,
            timeout_s=config.timeout_s,
            max_backoff_s=config.max_backoff_s,
            base_backoff_s=min(1.0, config.max_backoff_s),
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s if self.lease_s else self.timeout_s + 30.0)

    @property
    def where(self) -> str:
        """The url without query (safe to log)."""
        if self.url is None:
            return "(no url)"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


# -- what an answer means (pure) ----------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    answer: Literal["accepted", "duplicate"]
    remote_id: str | None


@dataclass(frozen=True)
class Retry:
    reason: str
    label: str  # metric label: timeout, connect, tls, connection, http_<status>, http_5xx
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Rejected:
    status: str  # metric label: the HTTP status, or "unencodable"
    reason: str


Outcome = Delivered | Retry | Rejected


def _json(answer: bytes) -> object:
    try:
        return json.loads(answer.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _message(answer: bytes) -> str:
    data = _json(answer)
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if key in data:
                text = str(data[key])
                break
        else:
            text = answer.decode("utf-8", "replace")
    else:
        text = answer.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _remote_id(answer: bytes) -> str | None:
    data = _json(answer)
    if isinstance(data, dict):
        value = data.get("case_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if 0 < len(text) <= _REMOTE_ID:
                return text
    return None


def classify(status: int, answer: bytes, retry_after: str | None, where: str) -> Outcome:
    """What an HTTP answer of the case system means for the report that was sent."""
    if 200 <= status < 300:
        return Delivered("accepted", _remote_id(answer))
    if status == 409:
        return Delivered("duplicate", _remote_id(answer))
    message = _message(answer)
    said = f": {message}" if message else ""
    wait = parse_retry_after(retry_after)
    if status in _RETRY_STATUSES:
        return Retry(f"HTTP {status} from {where}{said}", f"http_{status}", wait)
    if status >= 500:
        return Retry(f"HTTP {status} from {where}{said}", "http_5xx", wait)
    if status in _CONFIG_STATUSES:
        hint = "check the [cases] secret" if status in (401, 403) else "check the [cases] url"
        return Retry(f"HTTP {status} from {where} ({hint}){said}", f"http_{status}", wait)
    if 400 <= status < 500:
        return Rejected(str(status), f"HTTP {status}{said}")
    if 300 <= status < 400:
        return Retry(
            f"HTTP {status} from {where}: redirect not followed (set the final url)",
            "http_3xx",
            wait,
        )
    return Retry(f"unexpected HTTP {status} from {where}{said}", "http_other", wait)


# -- the task -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    id: str
    attempts: int
    body: bytes | None  # None: the stored report cannot be encoded
    error: str = ""


PassResult = Literal["idle", "ok", "failing"]


class CaseDelivery:
    """Sends pending reports until cancelled. Run :meth:`run` as a task; call :meth:`kick`
    after committing a transaction that recorded a report."""

    def __init__(
        self,
        settings: DeliverySettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = now_utc,
        metrics: CaseMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._clock = clock
        self.metrics = metrics if metrics is not None else CaseMetrics(CollectorRegistry())
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._probe = Backoff(
            base=settings.base_backoff_s, cap=settings.max_backoff_s, rng=self._rng
        )
        self._db_backoff = Backoff(base=0.5, cap=min(30.0, settings.poll_s), rng=self._rng)
        self._failures = OnceLogger(log, f"case delivery to {settings.where}")
        self._db = OnceLogger(log, "case outbox database")

    @property
    def configured(self) -> bool:
        return bool(self.settings.url and self.settings.secret)

    @property
    def failing(self) -> bool:
        return self._failures.failing

    def kick(self) -> None:
        """A report was committed: look for due reports now (unless the case system is down,
        when the next probe comes soon enough)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled. Never ends by itself: without a url or a secret, or with
        an unusable ``ca_file``, it says so once and keeps the pending gauge current."""
        url, secret = self.settings.url, self.settings.secret
        if url is None or not secret:
            missing = "url" if url is None else "secret"
            log.warning("[cases] %s not set: case reports stay in the outbox until it is", missing)
            await self._idle()
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            log.warning("case reports go to %s unencrypted (plates are personal data)", url)
        ca = self.settings.ca_file
        try:
            context = await asyncio.to_thread(
                ssl.create_default_context, cafile=str(ca) if ca else None
            )
        except (OSError, ssl.SSLError) as exc:
            log.error("[cases] ca_file %s unusable (%s): case reports stay in the outbox", ca, exc)
            await self._idle()
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
        )
        log.info("case reports to %s", self.settings.where)
        try:
            while True:
                delay, wake_on_kick = await self._cycle(http)
                await self._wait(delay, wake_on_kick)
        finally:
            await http.close()

    async def run_once(self, http: aiohttp.ClientSession) -> PassResult:
        """One pass: send every due report, batch by batch, stopping at the first batch in
        which the case system failed. (The loop's body; public for tests and tools.)"""
        result: PassResult = "idle"
        while True:
            now = self._clock()
            async with self._sessions.begin() as session:
                rows = await claim(
                    session, now, self.settings.batch_size, now + self.settings.lease
                )
                jobs = [self._job(row) for row in rows]
            if not jobs:
                return result
            outcomes = await asyncio.gather(*(self._send(http, job) for job in jobs))
            await self._record(list(zip(jobs, outcomes, strict=True)))
            if any(isinstance(o, Retry) for o in outcomes):
                return "failing"
            self._failures.recovered()
            result = "ok"

    # -- internals ------------------------------------------------------------------------

    async def _cycle(self, http: aiohttp.ClientSession) -> tuple[float, bool]:
        """One pass and what to wait for next: (seconds, wake early on a kick)."""
        try:
            result = await self.run_once(http)
            await self._refresh_gauges()
            upcoming = await self._next_due()
        except (SQLAlchemyError, OSError) as exc:
            self._db.failed(f"{type(exc).__name__}: {exc}")
            return self._db_backoff.next_delay(), False
        self._db.recovered()
        self._db_backoff.reset()
        if result == "failing":
            return self._probe.next_delay(), False
        if result == "ok":
            self._probe.reset()
        if upcoming is None:
            return self.settings.poll_s, True
        until = (upcoming - self._clock()).total_seconds()
        return min(max(until, 0.0), self.settings.poll_s), not self._failures.failing

    @staticmethod
    def _job(row: CaseReportRow) -> _Job:
        """What a send needs, read while the claiming transaction is still open."""
        try:
            body: bytes | None = report_body(row)
            error = ""
        except (ValueError, TypeError) as exc:
            body, error = None, f"report cannot be encoded as JSON: {exc}"
        return _Job(row.id, row.attempts, body, error)

    async def _send(self, http: aiohttp.ClientSession, job: _Job) -> Outcome:
        if job.body is None:
            return Rejected("unencodable", job.error)
        assert self.settings.url is not None and self.settings.secret is not None
        where = self.settings.where
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": job.id,
            HEADER: sign(self.settings.secret, job.body, int(self._clock().timestamp())),
        }
        try:
            async with http.post(
                self.settings.url, data=job.body, headers=headers, allow_redirects=False
            ) as response:
                answer = bytearray()
                async for chunk in response.content.iter_chunked(8192):
                    answer += chunk
                    if len(answer) >= _MAX_ANSWER:
                        break
                return classify(
                    response.status, bytes(answer), response.headers.get("Retry-After"), where
                )
        except TimeoutError:
            return Retry(f"no answer from {where} within {self.settings.timeout_s:g}s", "timeout")
        except aiohttp.ClientConnectorCertificateError as exc:
            hint = "" if self.settings.ca_file else " (set [cases] ca_file for a private CA)"
            return Retry(
                f"TLS certificate of {where} not trusted: {exc.certificate_error}{hint}", "tls"
            )
        except aiohttp.ClientSSLError as exc:
            return Retry(f"TLS handshake with {where} failed: {exc}", "tls")
        except aiohttp.ClientConnectorError as exc:
            return Retry(f"cannot connect to {where}: {exc.os_error or exc}", "connect")
        except (aiohttp.ClientError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            return Retry(f"sending to {where} failed: {detail}", "connection")

    async def _record(self, results: list[tuple[_Job, Outcome]]) -> None:
        now = self._clock()
        async with self._sessions.begin() as session:
            for job, outcome in results:
                if isinstance(outcome, Delivered):
                    await mark_delivered(session, job.id, now, outcome.remote_id)
                elif isinstance(outcome, Retry):
                    delay = Backoff(
                        base=self.settings.base_backoff_s,
                        cap=self.settings.max_backoff_s,
                        rng=self._rng,
                        attempt=job.attempts,
                    ).next_delay()
                    if outcome.retry_after_s is not None:
                        delay = min(self.settings.max_backoff_s, max(delay, outcome.retry_after_s))
                    await mark_retry(
                        session, job.id, now + timedelta(seconds=delay), outcome.reason
                    )
                else:
                    await mark_rejected(session, job.id, outcome.reason)
        # Count and log only what is committed.
        for job, outcome in results:
            if isinstance(outcome, Delivered):
                self.metrics.delivered.labels(outcome.answer).inc()
            elif isinstance(outcome, Retry):
                self.metrics.retries.labels(outcome.label).inc()
                self._failures.failed(outcome.reason)
            else:
                self.metrics.rejected.labels(outcome.status).inc()
                log.warning(
                    "case report %s refused by the case system: %s "
                    "(kept as rejected; not retried automatically)",
                    job.id,
                    outcome.reason,
                )

    async def _idle(self) -> NoReturn:
        while True:
            await self._refresh_gauges()
            await self._wait(self.settings.poll_s, wake_on_kick=True)

    async def _next_due(self) -> datetime | None:
        async with self._sessions() as session:
            return await next_due_at(session)

    async def _refresh_gauges(self) -> None:
        with contextlib.suppress(SQLAlchemyError, OSError):  # reported by the delivery pass
            async with self._sessions() as session:
                count, oldest = await pending_summary(session)
            self.metrics.pending.set(count)
            age = (self._clock() - oldest).total_seconds() if oldest is not None else 0.0
            self.metrics.oldest_pending_age.set(max(0.0, age))

    async def _wait(self, seconds: float, wake_on_kick: bool) -> None:
        if not wake_on_kick:
            await asyncio.sleep(seconds)
            self._wake.clear()  # reports filed meanwhile are due and go with the next probe
            return
        with contextlib.suppress(TimeoutError):
            await wait_for(self._wake.wait(), seconds)
        self._wake.clear()
