"""How `make test` finds a PostgreSQL it may use: the machine's when it trusts us, else a
private cluster. The machine's server is never reconfigured: a server that wants a password
is played here by a minimal PostgreSQL wire-protocol peer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.demo.broker import free_port
from tests.conftest import PG_PORT, pg_test_port

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg-test-server.sh"
SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


async def _wants_password(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer like a server whose pg_hba says md5 for TCP: refuse SSL, ask for a password."""
    try:
        while True:
            length, code = struct.unpack("!ii", await reader.readexactly(8))
            await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSS_REQUEST):
                writer.write(b"N")
                continue
            writer.write(b"R" + struct.pack("!ii", 12, 5) + b"salt")  # AuthenticationMD5Password
            await writer.drain()
            await reader.read()  # the client hangs up: it has no password
            break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def password_server() -> AsyncIterator[int]:
    server = await asyncio.start_server(_wants_password, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def script(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip(), err.decode().strip()


@pytest.fixture(autouse=True)
def _client_tools() -> None:
    if not (shutil.which("psql") and shutil.which("pg_isready")):
        pytest.fail("psql / pg_isready missing: run `make test`, which installs them")


async def test_probe_tells_trust_password_and_none() -> None:
    assert await script("probe", "127.0.0.1", str(PG_PORT)) == (0, "trust", "")
    async with password_server() as port:
        assert await script("probe", "127.0.0.1", str(port)) == (0, "password", "")
    assert await script("probe", "127.0.0.1", str(free_port())) == (0, "none", "")


def test_conftest_reads_the_private_clusters_port(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    assert pg_test_port({}, port_file) == 5432
    port_file.write_text("54999\n")
    assert pg_test_port({}, port_file) == 54999
    assert pg_test_port({"CITYGATE_TEST_PG_PORT": "6000"}, port_file) == 6000
    port_file.write_text("garbage")
    assert pg_test_port({}, port_file) == 5432


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """Where a private cluster of this test lives: under /tmp and world-traversable (the
    cluster runs as the postgres user); stopped and removed at the end."""
    work = Path(tempfile.mkdtemp(prefix="citygate-test-pg-detect-", dir="/tmp"))
    work.chmod(0o755)
    yield work / "pg"
    subprocess.run(
        [str(SCRIPT), "stop"], env={**os.environ, "CITYGATE_TEST_PG_DIR": str(work / "pg")},
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert not (work / "pg").exists()
    shutil.rmtree(work, ignore_errors=True)


def has_port_file(pg: Path) -> bool:
    return (pg / "port").exists()


@pytest.mark.slow
async def test_a_server_that_wants_a_password_gets_a_private_cluster(pg_dir: Path) -> None:
    env = {"CITYGATE_TEST_PG_DIR": str(pg_dir)}
    async with password_server() as machine:
        moved = {"CITYGATE_TEST_PG_MACHINE_PORT": str(machine), **env}
        rc, out, err = await script("ensure", **moved)
        assert rc == 0, err
        assert "private test cluster" in out
        port = pg_test_port({}, pg_dir / "port")
        assert port not in (machine, 5432)
        assert await script("probe", "127.0.0.1", str(port)) == (0, "trust", "")
        # Run again: the running cluster is found, not made twice.
        rc, again, err = await script("ensure", **moved)
        assert rc == 0 and f"127.0.0.1:{port}" in again, err
    # A trusting machine server wins, and the port file goes.
    rc, out, _ = await script("ensure", CITYGATE_TEST_PG_MACHINE_PORT=str(PG_PORT), **env)
    assert rc == 0 and "machine's server" in out
    assert not has_port_file(pg_dir)
