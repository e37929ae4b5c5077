"""A throwaway PostgreSQL cluster of one test's own, for tests that stop and restart the
server (the machine's on 127.0.0.1:5432 is shared by every other test and is never touched).

``initdb`` (as user postgres when we are root: initdb refuses root; ~1 s), trust auth, a free
loopback port, ``fsync=off``; ``stop(mode)`` / ``start()`` on the same port and data; removed
afterwards. The binaries are the newest /usr/lib/postgresql/*/bin, as scripts/pg-test-server.sh
finds them::

    from tests.pg_private import PrivatePg, private_pg_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.demo.broker import free_port


def _bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("initdb not found: apt-get install -y postgresql")
    return Path(initdb).resolve().parent


@dataclass
class PrivatePg:
    root: Path
    port: int
    bindir: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=60)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.data}"
            " -c fsync=off -c max_connections=50"
        )
        done = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "log"),
            "-w", "-t", "30", "-o", opts, "start", check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log = (self.data / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"private PostgreSQL did not start: {done.stderr}\n{log}")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: connections are terminated, the server shuts down cleanly;
        ``immediate``: it dies at once (crash recovery at the next start)."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30",
            "stop", check=False,
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        self._run(
            str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-d", "postgres", "-qAtc", f'CREATE DATABASE "{name}"',
        )  # fmt: skip
        return self.url(name)


def start_private_pg() -> PrivatePg:
    root = Path(tempfile.mkdtemp(prefix="cg-faults-pg-"))  # not under pytest's 0700 tmp
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    pg = PrivatePg(root, free_port(), _bindir())
    pg.init()
    pg.start()
    return pg


@pytest.fixture(name="private_pg")
def private_pg_fixture() -> Iterator[PrivatePg]:
    pg = start_private_pg()
    try:
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.root, ignore_errors=True)
