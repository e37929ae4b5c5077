"""Shared fixtures: real servers on free loopback ports, started and stopped by the suite.

- ``mosquitto``: a private Mosquitto per test session (the Debian package; `make test`
  installs it).
- ``pg_server_url``: a trust-auth PostgreSQL with a throwaway database per run, dropped at the
  end: the machine's on 127.0.0.1:5432, or, when that one wants a password (Debian's default
  for TCP) or none runs, the private cluster `make test` starts (scripts/pg-test-server.sh),
  whose port is read from its port file. ``CITYGATE_TEST_PG_PORT`` overrides both.
- ``db_url``: parametrised over SQLite and PostgreSQL for storage tests.
- ``sqlite_template``: migrated SQLite databases made once per session (schema only, and with
  the sample town imported), for CLI tests to copy (``copy_sqlite``): each test its own file,
  without a migration and a town import each.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.broker import free_port

PG_TEST_DIR = Path(os.environ.get("CITYGATE_TEST_PG_DIR", "/tmp/citygate-test-pg"))


def pg_test_port(environ: Mapping[str, str], port_file: Path) -> int:
    """The tests' PostgreSQL port: $CITYGATE_TEST_PG_PORT, else the private cluster's port file
    (written by scripts/pg-test-server.sh when 5432 wants a password), else 5432."""
    if environ.get("CITYGATE_TEST_PG_PORT"):
        return int(environ["CITYGATE_TEST_PG_PORT"])
    with contextlib.suppress(OSError, ValueError):
        return int(port_file.read_text().strip())
    return 5432


PG_HOST = os.environ.get("CITYGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = pg_test_port(os.environ, PG_TEST_DIR / "port")
PG_USER = os.environ.get("CITYGATE_TEST_PG_USER", "postgres")


def wait_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port} not listening after {timeout}s") from None
            time.sleep(0.02)


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll *predicate* (sync or async) until it returns something truthy, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


@dataclass
class Broker:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    conf: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start(self) -> None:
        """(Re)start on the same port and config (persistent sessions survive)."""
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_tcp(self.host, self.port)


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    return found


def start_mosquitto(tmp: Path) -> Broker:
    port = free_port()
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp}/data/\nlog_dest none\nmax_queued_messages 100000\n"
        "set_tcp_nodelay true\n"  # as docs/operations.md says: PUBACKs go out in batches
    )
    broker = Broker("127.0.0.1", port, None, conf)  # type: ignore[arg-type]
    broker.start()
    return broker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop and restart it."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    yield broker
    broker.stop()


def _psql(sql: str, db: str = "postgres") -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=db)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    name = f"citygate_test_{uuid.uuid4().hex[:10]}"
    try:
        _psql(f'CREATE DATABASE "{name}"')
    except OSError as exc:
        pytest.fail(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} ({exc}): run `make test`")
    except Exception as exc:  # asyncpg's InvalidPasswordError and kin: not a trust server
        pytest.fail(
            f"PostgreSQL on {PG_HOST}:{PG_PORT} refused user {PG_USER} without a password "
            f"({type(exc).__name__}): run `make test`, which starts a private trust cluster"
        )
    yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    with contextlib.suppress(Exception):
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"cg_{uuid.uuid4().hex[:12]}"
    _psql(f'CREATE DATABASE "{name}"')
    base = pg_server_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with contextlib.suppress(Exception):
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"empty": migrated, "town": migrated with the sample town}``: copy, never open."""
    from gateway.cli.common import with_db
    from gateway.config import Settings

    where = tmp_path_factory.mktemp("db-templates")
    out = {}

    async def nothing(_: Any) -> int:
        return 0

    for name, town in (("empty", False), ("town", True)):
        path = out[name] = where / f"{name}.db"
        settings = Settings.model_validate({"database": {"url": f"sqlite+aiosqlite:///{path}"}})
        asyncio.run(with_db(settings, nothing, town=town))
    return out


def copy_sqlite(template: Path, to: Path) -> Path:
    """A copy of a SQLite database (with its WAL, if one was left) at *to*."""
    for suffix in ("", "-wal", "-shm"):
        src = template.with_name(template.name + suffix)
        if src.exists():
            shutil.copy(src, to.with_name(to.name + suffix))
    return to


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A throwaway database shared by one module's tests, on both backends."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'citygate.db'}"
        return
    pg_server_url: str = request.getfixturevalue("pg_server_url")
    name = f"cg_{uuid.uuid4().hex[:12]}"
    _psql(f'CREATE DATABASE "{name}"')
    yield f"{pg_server_url.rsplit('/', 1)[0]}/{name}"
    with contextlib.suppress(Exception):
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'citygate.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """Each test leaves logging as it found it: a CLI called in process (``cli.main``) sets
    the root handlers and quiets loggers (``drivers.ocpp.frames`` to WARNING) for good, and
    a later test that reads those loggers' records would find none."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: lg.level
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and lg.level != levels.get(name, logging.NOTSET):
            lg.setLevel(levels.get(name, logging.NOTSET))


# -- a whole gateway ---------------------------------------------------------------------------
SPOOL_ROOT = tempfile.mkdtemp(prefix="cg-spools-")  # removed when the session ends


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SPOOL_ROOT, ignore_errors=True)


def gateway_settings(db: str, broker: Broker, **sections: dict[str, Any]) -> Any:
    from gateway.config import Settings

    data: dict[str, Any] = {
        "database": {"url": db},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"cg-test-{uuid.uuid4().hex[:8]}",
        },
        # one client sends every request of a test: tests of the rate limit turn it on
        "api": {"port": 0, "rate_limit_per_s": 0},
        "ocpp": {"port": 0},
        "bodycams": {"sip_port": 0},
        "drones": {"mavlink_port": 0},
        "occupancy": {"sweep_interval_s": 0.05, "persist_interval_s": 0.1},
        # No gate bus of the sample town runs here: the lane tests that drive gates over
        # Modbus start a simulator and set "modbus" (tests/test_lanes_modbus.py).
        "lanes": {"gates": "none"},
        "telemetry": {"spool_dir": tempfile.mkdtemp(prefix="cg-spool-", dir=SPOOL_ROOT)},
        "cameras": {"evidence_dir": tempfile.mkdtemp(prefix="cg-evidence-", dir=SPOOL_ROOT)},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Any, clock: Callable[[], Any] | None = None
) -> AsyncIterator[Any]:
    from gateway.supervisor import Gateway

    gw = await (Gateway.open(settings, clock) if clock else Gateway.open(settings))
    task = asyncio.create_task(gw.run())
    try:
        await wait_for(lambda: gw.started.is_set() or task.done(), 30, what="gateway start")
        if task.done():
            task.result()
        await wait_for(gw.services.transport.connected.is_set, 10, what="MQTT connected")
        yield gw
    finally:
        gw.request_stop()
        done, _ = await asyncio.wait({task}, timeout=15)
        if not done:  # say what is stuck, then cancel it
            stuck = _task_stacks()
            task.cancel()
            raise AssertionError(f"the gateway did not stop in 15 s:\n{stuck}")
        task.result()


def _task_stacks() -> str:
    import io

    out = io.StringIO()
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            t.print_stack(limit=12, file=out)
    return out.getvalue()


async def make_tokens(gw: Any) -> dict[str, str]:
    """One API token per role for a running gateway, by role name."""
    from gateway.directory.tokens import Role, create_token

    out = {}
    async with gw.services.persister._sessions.begin() as s:
        for role in Role:
            _, out[role.value] = await create_token(s, role, gw.services.clock(), f"test {role}")
    return out
