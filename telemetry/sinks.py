"""HTTP sinks: write batches of InfluxDB line protocol and say what became of them.

Two wire dialects, chosen by :attr:`SinkConfig.mode`:

- ``"v2"``: ``/api/v2/write`` through influxdb-client's async API (InfluxDB 2.x, 3.x, 1.8+ in
  compatibility mode, VictoriaMetrics). One pre-joined body per batch: the client's cost is in
  building objects and its batching layer, not in HTTP.
- ``"v1"``: ``/write?db=&rp=&precision=ns`` with aiohttp (InfluxDB 1.x), basic auth or
  ``Authorization: Token``.

Every write ends in exactly one of three results:

- :class:`WriteOk`: every line was accepted.
- :class:`WriteRetry`: nothing can be said about the batch (server down, timeout, 429, 5xx, or a
  configuration problem such as 401/403/404): keep all of it and try again later, after
  ``retry_after_s`` when the server said so. Re-sending is harmless: a point with the same
  measurement, tags and timestamp overwrites itself.
- :class:`WriteRejected`: the server refused some points (400/422). The batch is bisected (halves
  written recursively) so that exactly the refused lines are returned and every other line is
  written: good points are never dead-lettered, bad ones never retried forever.

Timestamps are nanoseconds (``precision=ns``). TLS is used when the url is ``https://``, always
verified (``ca_file`` trusts a private CA instead of the system store); redirects are not followed,
so a write is never downgraded to plain HTTP. Secrets (token, password) appear in no repr, reason or
log line.

Over 400 lines on purpose: the v2 and v1 sinks share the retry, bisection and TLS rules above;
they differ only in URL and authentication.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import ssl
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp

__all__ = [
    "Sink",
    "SinkConfig",
    "WriteOk",
    "WriteRejected",
    "WriteResult",
    "WriteRetry",
    "make_sink",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

#: zlib level for gzip bodies. Level 1 compresses line protocol ~6.5x at ~2.4 ms per 500 kB;
#: level 9 (gzip's and influxdb-client's default) gains only a further 1.7x for 12x the CPU.
GZIP_LEVEL = 1
#: Bodies larger than this are compressed in a worker thread (zlib releases the GIL), so a big
#: batch does not stall the event loop.
_OFFLOAD_BYTES = 128 * 1024
_MAX_MESSAGE = 300  # characters of a server's error message kept in a reason
_RETRY_STATUSES = frozenset({408, 425, 429})
#: Starts of 400 messages about the request rather than its points (InfluxDB 2: "Please provide
#: either orgID or org" / "… bucketID or bucket"; 1.x: "database is required"): bisecting would
#: dead-letter every line of a misconfigured sink, so they are retried like a 404.
_REQUEST_ERRORS = ("please provide", "database is required")


@dataclass(frozen=True)
class SinkConfig:
    """Where and how to write. ``url`` is the server's base url (scheme, host, port, optional
    path prefix); credentials go in ``token`` or ``username``/``password``, never in the url.

    In ``v2`` mode an empty ``bucket`` defaults to ``database[/retention_policy]`` (the InfluxDB
    1.8 compatibility convention), and ``username``/``password`` without a token are sent as the
    1.8 compatibility token ``username:password``.
    """

    url: str
    mode: Literal["v2", "v1"]
    org: str = ""
    bucket: str = ""
    database: str = ""
    retention_policy: str = ""
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    gzip: bool = True
    timeout_s: float = 10.0
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("v2", "v1"):
            raise ValueError(f'telemetry sink mode must be "v2" or "v1", not {self.mode!r}')
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"telemetry url must be http://HOST[:PORT] or https://…, got {self.url!r}"
            )
        if parts.username is not None or parts.password is not None:
            # Refused before anything can print it: a password in the url would leak via repr.
            raise ValueError(
                "telemetry url must not carry credentials: set token or username/password instead"
            )
        if parts.query or parts.fragment:
            raise ValueError(
                "telemetry url must not have a query or fragment "
                "(set database/bucket/org/retention_policy instead)"
            )
        if self.ca_file is not None and parts.scheme != "https":
            raise ValueError("telemetry ca_file is set but the url is not https://")
        if not self.timeout_s > 0:
            raise ValueError("telemetry timeout_s must be > 0")
        if self.mode == "v1" and not self.database:
            raise ValueError('telemetry mode "v1" needs a database')
        if self.mode == "v2" and not (self.bucket or self.database):
            raise ValueError('telemetry mode "v2" needs a bucket (or a 1.8-style database)')
        if (self.username is None) != (self.password is None):
            raise ValueError("telemetry username and password go together")


@dataclass(frozen=True)
class WriteOk:
    points: int


@dataclass(frozen=True)
class WriteRetry:
    """Nothing of the batch is known to be refused: keep it all and retry (after
    ``retry_after_s`` seconds when the server said so)."""

    reason: str
    retry_after_s: float | None


@dataclass(frozen=True)
class WriteRejected:
    """The server refused ``bad_lines`` (for ``reason``); every other line of the batch was
    written (``good_lines_written`` of them). ``reasons`` holds the server's message for each bad
    line, in the order of ``bad_lines``."""

    bad_lines: list[str]
    reason: str
    good_lines_written: int
    reasons: list[str] = field(default_factory=list)


WriteResult = WriteOk | WriteRetry | WriteRejected


class Sink(Protocol):
    async def write(self, lines: Sequence[str]) -> WriteResult: ...

    async def close(self) -> None: ...


def make_sink(config: SinkConfig) -> Sink:
    """The sink for ``config.mode``. Cheap: connections are opened on the first write (inside the
    running event loop)."""
    if config.mode == "v2":
        return _V2Sink(config)
    return _V1Sink(config)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (``now`` is a
    Unix time, for tests). ``None`` when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- internals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refused:
    """A 4xx about the points (400, 422) or the body size (413): bisect."""

    reason: str


_Attempt = WriteOk | WriteRetry | _Refused


def _server_message(body: bytes | str | None) -> str:
    """The error message of an InfluxDB (``{"error": …}`` / ``{"message": …}``) or other
    server's response body, shortened."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        message = text
    else:
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("error") or text)
        else:
            message = text
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return message


def _ssl_context(config: SinkConfig) -> ssl.SSLContext:
    # Verification is always on; ca_file replaces the system store (like curl --cacert).
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 16+15: gzip framing
    return compressor.compress(body) + compressor.flush()


class _HttpSink:
    """What both dialects share: encoding, classification of answers, bisection."""

    _dialect = ""

    def __init__(self, config: SinkConfig) -> None:
        self._config = config
        parts = urlsplit(config.url)
        self._base = config.url.rstrip("/")
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._secrets = tuple(s for s in (config.token, config.password) if s)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._dialect} {self._where} gzip={self._config.gzip}>"

    async def write(self, lines: Sequence[str]) -> WriteResult:
        if isinstance(lines, str):
            raise TypeError("write() takes a sequence of lines, not one str")
        if not lines:
            return WriteOk(0)
        return await self._write(lines)

    async def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def _send(self, body: bytes) -> tuple[int, Any, bytes | str | None]:
        """POST one (already encoded) body; (status, headers, body) of the answer."""
        raise NotImplementedError  # pragma: no cover

    # -- bisection ------------------------------------------------------------------------
    async def _write(self, lines: Sequence[str]) -> WriteResult:
        attempt = await self._attempt(lines)
        if not isinstance(attempt, _Refused):
            return attempt
        if len(lines) == 1:
            return WriteRejected([lines[0]], attempt.reason, 0, [attempt.reason])
        log.debug(
            "%s refused a batch of %d lines (%s): bisecting",
            self._where,
            len(lines),
            attempt.reason,
        )
        mid = len(lines) // 2
        bad: list[str] = []
        reasons: list[str] = []
        written = 0
        for half in (lines[:mid], lines[mid:]):
            result = await self._write(half)
            if isinstance(result, WriteRetry):
                # The server went away mid-way: nothing is lost by retrying the whole batch
                # (points already written overwrite themselves).
                return result
            if isinstance(result, WriteOk):
                written += result.points
            else:
                bad.extend(result.bad_lines)
                reasons.extend(result.reasons)
                written += result.good_lines_written
        if not bad:
            return WriteOk(written)
        return WriteRejected(bad, _summary(reasons), written, reasons)

    # -- one request ----------------------------------------------------------------------
    async def _attempt(self, lines: Sequence[str]) -> _Attempt:
        body = "\n".join(lines).encode()
        if self._config.gzip:
            body = (
                await asyncio.to_thread(_gzip, body) if len(body) > _OFFLOAD_BYTES else _gzip(body)
            )
        try:
            status, headers, answer = await self._send(body)
        except TimeoutError:
            return WriteRetry(
                f"no answer from {self._where} within {self._config.timeout_s:g}s (timeout)", None
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            hint = "" if self._config.ca_file else " (set ca_file to trust a private CA)"
            detail = self._scrub(str(exc.certificate_error))
            return WriteRetry(f"TLS certificate of {self._where} not trusted: {detail}{hint}", None)
        except aiohttp.ClientSSLError as exc:
            return WriteRetry(
                f"TLS handshake with {self._where} failed: {self._scrub(str(exc))}", None
            )
        except aiohttp.ClientConnectorError as exc:
            return WriteRetry(
                f"cannot connect to {self._where}: {self._scrub(str(exc.os_error) or str(exc))}",
                None,
            )
        except (aiohttp.ClientError, OSError) as exc:
            detail = self._scrub(str(exc)) or type(exc).__name__
            return WriteRetry(f"write to {self._where} failed: {detail}", None)
        return self._classify(status, headers, answer, len(lines))

    def _classify(self, status: int, headers: Any, answer: bytes | str | None, n: int) -> _Attempt:
        if 200 <= status < 300:
            return WriteOk(n)
        message = self._scrub(_server_message(answer))
        said = f": {message}" if message else ""
        if status in (400, 422):
            if message.lower().startswith(_REQUEST_ERRORS):
                return WriteRetry(
                    f"HTTP {status} from {self._where}: the request was refused, not its points "
                    f"(check org/bucket/database){said}",
                    None,
                )
            return _Refused(f"HTTP {status}{said}")
        if status == 413:
            if n == 1:
                return _Refused(
                    f"HTTP 413 request too large{said} (a single line exceeds the server's "
                    "body size limit)"
                )
            return _Refused(f"HTTP 413{said}")
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        if status in (401, 403):
            if self._config.username is not None:
                how = "username/password"
            elif self._config.token:
                how = "token"
            else:
                how = "credentials (none configured)"
            return WriteRetry(
                f"HTTP {status} from {self._where}: not authorized, check the {how}{said}",
                retry_after,
            )
        if status == 404:
            target = (
                f"database {self._config.database!r}"
                if self._dialect == "v1"
                else f"bucket {self._bucket()!r} / org {self._config.org!r}"
            )
            return WriteRetry(
                f"HTTP 404 from {self._where}: check the url, the {target} and that the server "
                f"speaks the {self._dialect} write API{said}",
                retry_after,
            )
        if 300 <= status < 400:
            location = headers.get("Location", "?") if headers else "?"
            return WriteRetry(
                f"HTTP {status} from {self._where}: redirect to {self._scrub(location)} not "
                "followed (set the url to the final address)",
                retry_after,
            )
        if status in _RETRY_STATUSES or status >= 500:
            return WriteRetry(f"HTTP {status} from {self._where}{said}", retry_after)
        return WriteRetry(f"unexpected HTTP {status} from {self._where}{said}", retry_after)

    def _bucket(self) -> str:
        config = self._config
        if config.bucket:
            return config.bucket
        rp = f"/{config.retention_policy}" if config.retention_policy else ""
        return f"{config.database}{rp}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _summary(reasons: list[str]) -> str:
    distinct = list(dict.fromkeys(reasons))
    if len(distinct) == 1:
        return distinct[0]
    shown = "; ".join(distinct[:3])
    more = f"; … ({len(distinct) - 3} more)" if len(distinct) > 3 else ""
    return f"{len(reasons)} lines refused: {shown}{more}"


class _V2Sink(_HttpSink):
    """``/api/v2/write`` through influxdb-client's async API, one body per batch."""

    _dialect = "v2"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._client: Any = None
        self._write_api: Any = None
        self._precision: Any = None

    def _open(self) -> Any:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision

        config = self._config
        token = config.token
        if token is None and config.username is not None:
            token = f"{config.username}:{config.password}"  # InfluxDB 1.8 compatibility
        client: Any = InfluxDBClientAsync(
            url=self._base,
            token=token or "",
            org=config.org,
            timeout=max(1, round(config.timeout_s * 1000)),
            # The body is compressed here (fast level, off the loop when big), not by the client,
            # whose gzip.compress() runs level 9 on the event loop: ~30 ms per 5,000 lines.
            enable_gzip=False,
            ssl_context=_ssl_context(config),
            allow_redirects=False,
        )
        if config.gzip:
            # Every request of this client is a write: mark the pre-compressed body.
            client.api_client.set_default_header("Content-Encoding", "gzip")
        self._client = client
        self._write_api = client.write_api()
        self._precision = WritePrecision.NS
        return self._write_api

    async def _send(self, body: bytes) -> tuple[int, Any, bytes | str | None]:
        from influxdb_client.rest import ApiException

        write_api = self._write_api or self._open()
        try:
            await write_api.write(
                bucket=self._bucket(),
                org=self._config.org,
                record=body,
                write_precision=self._precision,
            )
        except ApiException as exc:
            status = exc.status if isinstance(exc.status, int) else 0
            if status == 0:  # raised by the client itself, not by an HTTP answer
                raise aiohttp.ClientError(str(exc.reason)) from exc
            return status, exc.headers, exc.body
        return 204, None, None

    async def close(self) -> None:
        client, self._client, self._write_api = self._client, None, None
        if client is not None:
            await client.close()


class _V1Sink(_HttpSink):
    """``/write?db=&rp=&precision=ns`` with aiohttp (InfluxDB 1.x)."""

    _dialect = "v1"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._session: aiohttp.ClientSession | None = None
        self._url = f"{self._base}/write"
        params = {"db": config.database, "precision": "ns"}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._params = params
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        if config.username is not None:
            userpass = f"{config.username}:{config.password or ''}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(userpass).decode()}"
        elif config.token is not None:
            headers["Authorization"] = f"Token {config.token}"
        self._headers = headers

    def _open(self) -> aiohttp.ClientSession:
        config = self._config
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl_context(config)),
            timeout=aiohttp.ClientTimeout(total=config.timeout_s),
        )
        return self._session

    async def _send(self, body: bytes) -> tuple[int, Any, bytes | str | None]:
        session = self._session or self._open()
        async with session.post(
            self._url, params=self._params, data=body, headers=self._headers, allow_redirects=False
        ) as response:
            answer = await response.read()
            return response.status, response.headers, answer

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
