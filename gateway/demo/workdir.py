"""The demo's working directory: one demo at a time (a lock), and the config it runs with
written there, so every CLI command started beside it finds the running demo."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from gateway.config import Settings, settings_to_toml

LOCK_FILE = "demo.lock"


class WorkdirBusy(Exception):
    """Another demo holds the working directory."""

    def __init__(self, workdir: Path, pid: int | None) -> None:
        self.workdir = workdir
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"another citygate demo is already running in {workdir}{who}: "
            "stop it first, or give this one another --workdir"
        )


class WorkdirLock:
    """An exclusive ``flock`` on ``<workdir>/demo.lock``, held while the process lives; the
    kernel drops it when the process ends, however it ends (no stale lock after kill -9)."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = None
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
            os.close(fd)
            raise WorkdirBusy(self.path.parent, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_config(path: Path, settings: Settings, header: str) -> None:
    """Replace *path* atomically (a reader never sees half a file); paths under its directory
    are written relative to it; secrets are left out (they stay in the environment)."""
    text = settings_to_toml(settings, path.parent, header)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)
