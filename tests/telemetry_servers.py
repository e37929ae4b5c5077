"""Real time-series servers for telemetry tests, and helpers to read points back.

Pytest discovers fixtures only in conftest files, so a test module imports the ones it uses by
name::

    from tests.telemetry_servers import influx1_fixture, victoria_fixture  # noqa: F401

(each ``*_fixture`` function registers the fixture named without the suffix, so a test takes
``victoria`` / ``influx1`` as a parameter without shadowing an import).

- ``victoria`` / ``own_victoria``: a private VictoriaMetrics (Debian ``victoria-metrics``; it
  serves InfluxDB's ``/api/v2/write``), one per session / one per test. ``.url``, ``.stop()``,
  ``.start()`` (same port, same data dir: written points survive).
- ``influx1`` / ``own_influx1``: a private InfluxDB 1.6 (Debian ``influxdb``, v1 API only), one per
  session / one per test, same methods, plus ``.create_database(name)``.

Use the session fixtures with metric names / databases of your own; take the ``own_`` ones to stop
and restart a server. Both servers stop gracefully on ``stop()`` (SIGTERM), which flushes what they
acknowledged to disk.

Read back:

- ``vm_export(url, metric_regex)`` → one dict per series, as ``/api/v1/export`` returns it:
  ``{"metric": {"__name__": "<measurement>_<field>", <tags>}, "values": [...],
  "timestamps": [<ms>...]}``. VictoriaMetrics keeps milliseconds (nanosecond timestamps are
  truncated: points less than 1 ms apart collapse), booleans become 1/0, string fields 0.
  It forces a flush first, yet a brand-new series can take a few seconds (up to ~11 s without
  the flush) to show: poll with ``wait_for(..., timeout=20)``, never sleep.
- ``vm_points(url, metric_regex)`` → ``{(name, frozenset(tags.items()), ts_ms): value}``.
- ``influx1_query(url, db, q)`` → the rows of the first statement as dicts (``time`` in integer
  nanoseconds, tags of ``GROUP BY`` merged in); raises on an InfluxQL error.

Each helper has an ``_async`` twin (aiohttp) for tests whose event loop must keep running while
they poll.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port

__all__ = [
    "Influx1",
    "Victoria",
    "influx1",
    "influx1_fixture",
    "influx1_query",
    "influx1_query_async",
    "own_influx1",
    "own_influx1_fixture",
    "own_victoria",
    "own_victoria_fixture",
    "victoria",
    "victoria_fixture",
    "vm_export",
    "vm_export_async",
    "vm_points",
    "vm_points_async",
]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed: apt-get install -y {package}")
    return found


def _http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass
class _Server:
    """A server subprocess on a fixed loopback port, restartable on the same port and data."""

    name: str
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (or restart) and wait until the server answers its health check."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"{self.name} not ready after {START_TIMEOUT_S}s: {self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Graceful stop (SIGTERM: the server flushes what it acknowledged), SIGKILL if stuck."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Victoria(_Server):
    """VictoriaMetrics serving ``/api/v2/write`` (InfluxDB line protocol)."""

    def _command(self) -> list[str]:
        return [
            _binary("victoria-metrics", "victoria-metrics"),
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=100y",  # else points older than a month are dropped silently
            "-search.latencyOffset=0s",  # else new points stay invisible for 30 s
            "-search.disableCache",
            "-dedup.minScrapeInterval=1ms",  # a re-sent identical point collapses into one
            "-loggerLevel=WARN",
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/health") == 200

    def flush(self) -> None:
        """Make what was written searchable now (instead of within ~1-11 s)."""
        _http_status(f"{self.url}/internal/force_flush", timeout=5.0)


@dataclass
class Influx1(_Server):
    """InfluxDB 1.6 (v1 API: ``/write``, ``/query``; no ``/api/v2/write``)."""

    rpc_port: int = 0

    @property
    def config_path(self) -> Path:
        return self.data_dir / "influxdb.conf"

    def _command(self) -> list[str]:
        if not self.config_path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(
                "reporting-disabled = true\n"
                f'bind-address = "{self.host}:{self.rpc_port}"\n'
                "[meta]\n"
                f'  dir = "{self.data_dir}/meta"\n'
                "  logging-enabled = false\n"
                "[data]\n"
                f'  dir = "{self.data_dir}/data"\n'
                f'  wal-dir = "{self.data_dir}/wal"\n'
                "  query-log-enabled = false\n"
                "[http]\n"
                f'  bind-address = "{self.host}:{self.port}"\n'
                "  log-enabled = false\n"
                "[ifql]\n"
                "  enabled = false\n"
                "[monitor]\n"
                "  store-enabled = false\n"
                "[logging]\n"
                '  level = "warn"\n'
                "  suppress-logo = true\n"
            )
        return [_binary("influxd", "influxdb"), "-config", str(self.config_path)]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/ping") == 204

    def create_database(self, name: str) -> None:
        influx1_query(self.url, "", f'CREATE DATABASE "{name}"', method="POST")


def start_victoria(tmp: Path) -> Victoria:
    tmp.mkdir(parents=True, exist_ok=True)
    server = Victoria("victoria-metrics", free_port(), tmp / "data", tmp / "victoria.log")
    server.start()
    return server


def start_influx1(tmp: Path) -> Influx1:
    tmp.mkdir(parents=True, exist_ok=True)
    server = Influx1(
        "influxd", free_port(), tmp / "data", tmp / "influxd.log", rpc_port=free_port()
    )
    server.start()
    return server


@pytest.fixture(scope="session", name="victoria")
def victoria_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    server = start_victoria(tmp_path_factory.mktemp("victoria"))
    yield server
    server.stop()


@pytest.fixture(name="own_victoria")
def own_victoria_fixture(tmp_path: Path) -> Iterator[Victoria]:
    """A VictoriaMetrics of this test's own, for tests that stop and restart it."""
    server = start_victoria(tmp_path / "victoria")
    yield server
    server.stop()


@pytest.fixture(scope="session", name="influx1")
def influx1_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx1]:
    server = start_influx1(tmp_path_factory.mktemp("influx1"))
    yield server
    server.stop()


@pytest.fixture(name="own_influx1")
def own_influx1_fixture(tmp_path: Path) -> Iterator[Influx1]:
    """An InfluxDB 1.6 of this test's own, for tests that stop and restart it."""
    server = start_influx1(tmp_path / "influx1")
    yield server
    server.stop()


# Plain names too: ``from tests.telemetry_servers import victoria`` registers the same fixture
# (a test taking it as a parameter then trips ruff's F811; importing ``victoria_fixture`` does
# not).
victoria = victoria_fixture
own_victoria = own_victoria_fixture
influx1 = influx1_fixture
own_influx1 = own_influx1_fixture


# -- read-back ---------------------------------------------------------------------------------
def _export_request(url: str, metric_regex: str) -> tuple[str, bytes]:
    selector = '{__name__=~"' + metric_regex.replace("\\", "\\\\").replace('"', '\\"') + '"}'
    return f"{url}/api/v1/export", urllib.parse.urlencode({"match[]": selector}).encode()


def _parse_export(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def vm_export(url: str, metric_regex: str, flush: bool = True) -> list[dict[str, Any]]:
    """Every series whose name (``<measurement>_<field>``) matches ``metric_regex``."""
    if flush:
        _http_status(f"{url}/internal/force_flush", timeout=5.0)
    target, body = _export_request(url, metric_regex)
    with urllib.request.urlopen(target, data=body, timeout=10) as response:  # noqa: S310
        return _parse_export(response.read().decode())


async def vm_export_async(url: str, metric_regex: str, flush: bool = True) -> list[dict[str, Any]]:
    target, body = _export_request(url, metric_regex)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        if flush:
            async with session.get(f"{url}/internal/force_flush") as response:
                await response.read()
        async with session.post(target, data=body, headers=headers) as response:
            response.raise_for_status()
            return _parse_export(await response.text())


Key = tuple[str, frozenset[tuple[str, str]], int]


def _points(series: list[dict[str, Any]]) -> dict[Key, float]:
    points: dict[Key, float] = {}
    for s in series:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        tags = frozenset(labels.items())
        for ts, value in zip(s["timestamps"], s["values"], strict=True):
            points[(name, tags, ts)] = value
    return points


def vm_points(url: str, metric_regex: str) -> dict[Key, float]:
    """``{(metric name, frozenset of tag items, timestamp ms): value}``."""
    return _points(vm_export(url, metric_regex))


async def vm_points_async(url: str, metric_regex: str) -> dict[Key, float]:
    return _points(await vm_export_async(url, metric_regex))


def _query_params(db: str, q: str) -> dict[str, str]:
    params = {"q": q, "epoch": "ns"}
    if db:
        params["db"] = db
    return params


def _parse_query(data: dict[str, Any], q: str) -> list[dict[str, Any]]:
    if "error" in data:
        raise RuntimeError(f"InfluxQL {q!r}: {data['error']}")
    results = data.get("results") or [{}]
    first = results[0]
    if "error" in first:
        raise RuntimeError(f"InfluxQL {q!r}: {first['error']}")
    rows: list[dict[str, Any]] = []
    for series in first.get("series", []):
        tags = series.get("tags", {})
        for values in series.get("values", []):
            row = dict(zip(series["columns"], values, strict=True))
            row.update(tags)
            rows.append(row)
    return rows


def influx1_query(url: str, db: str, q: str, method: str = "GET") -> list[dict[str, Any]]:
    """Rows of the first statement of ``q`` (``time`` as integer nanoseconds)."""
    query = urllib.parse.urlencode(_query_params(db, q))
    if method == "GET":
        request = urllib.request.Request(f"{url}/query?{query}")  # noqa: S310
    else:
        request = urllib.request.Request(  # noqa: S310
            f"{url}/query", data=query.encode(), method="POST"
        )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        data = json.loads(exc.read() or b"{}") or {"error": f"HTTP {exc.code}"}
    return _parse_query(data, q)


async def influx1_query_async(url: str, db: str, q: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{url}/query", params=_query_params(db, q)) as response,
    ):
        data = await response.json(content_type=None)
    return _parse_query(data, q)
