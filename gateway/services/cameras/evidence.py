"""Camera pictures kept as evidence files, bounded in total size and age.

Files are written off the event loop (a thread), each to a temporary name and renamed, so a
read's row never points at half a picture, and a killed gateway loses none (the kernel holds
them). They are fsynced right after, in the background: that is what a power cut needs, and
it costs the camera's answer nothing (an fsync takes tens of milliseconds on a busy disk,
which would be most of a lane's budget). The total is tracked as files are
written; past the cap, or on the prune interval, the pruner deletes pictures past their age
and then the oldest until the total fits. Bodies a parser refused are kept the same way
(under ``rejected/``) so nothing a camera sent is lost without a trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from drivers.aio import wait_for
from drivers.cameras import Image
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str, limit: int = 40) -> str:
    return _UNSAFE.sub("_", name)[-limit:].lstrip(".") or "file"


class EvidenceStore:
    def __init__(
        self,
        root: Path,
        *,
        max_total_bytes: int,
        max_age: timedelta,
        metrics: Metrics,
    ) -> None:
        self.root = root
        self.max_total_bytes = max_total_bytes
        self.max_age = max_age
        self._metrics = metrics
        self.total: int | None = None  # unknown until the first prune has scanned the tree
        self._full = asyncio.Event()
        self._warn = OnceLogger(log, "camera evidence pruning")
        self._syncs: set[asyncio.Task[None]] = set()

    # -- writing ---------------------------------------------------------------------------

    async def save(self, camera_id: str, at: datetime, images: Sequence[Image]) -> list[str]:
        """Write *images*; returns their paths relative to the root. Raises OSError."""
        if not images:
            return []
        key = uuid.uuid4().hex[:12]
        day, stamp = at.strftime("%Y%m%d"), at.strftime("%H%M%S")
        files = [
            (f"{_safe(camera_id, 64)}/{day}/{stamp}-{key}-{i}-{_safe(name)}", data)
            for i, (name, data) in enumerate(images)
        ]
        await asyncio.to_thread(self._write, files)
        self._sync_later([rel for rel, _ in files])
        self._added(sum(len(d) for _, d in files))
        self._metrics.camera_images.labels("stored").inc(len(files))
        return [rel for rel, _ in files]

    async def save_rejected(self, camera_id: str, at: datetime, reason: str, body: bytes) -> str:
        """Keep a body no parser could take, for the technician (bounded by the body limit)."""
        rel = (
            f"rejected/{_safe(camera_id, 64)}/{at:%Y%m%d}/"
            f"{at:%H%M%S}-{uuid.uuid4().hex[:12]}-{_safe(reason)}.bin"
        )
        await asyncio.to_thread(self._write, [(rel, body)])
        self._sync_later([rel])
        self._added(len(body))
        return rel

    async def discard(self, rels: Sequence[str]) -> None:
        """Remove files written for a read that was not stored after all (a duplicate)."""
        if rels:
            freed = await asyncio.to_thread(self._unlink, rels)
            self._added(-freed)

    def _write(self, files: Sequence[tuple[str, bytes]]) -> None:
        for rel, data in files:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

    def _sync_later(self, rels: Sequence[str]) -> None:
        task = asyncio.create_task(asyncio.to_thread(self._fsync, rels))
        self._syncs.add(task)
        task.add_done_callback(self._synced)

    def _synced(self, task: asyncio.Task[None]) -> None:
        self._syncs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._warn.failed(f"fsync: {task.exception()}")

    async def flush(self) -> None:
        """Wait for the background fsyncs started so far (tests, shutdown)."""
        if self._syncs:
            await asyncio.gather(*self._syncs, return_exceptions=True)

    def _fsync(self, rels: Sequence[str]) -> None:
        dirs = set()
        for rel in rels:
            path = self.root / rel
            with contextlib.suppress(FileNotFoundError):  # pruned or discarded meanwhile
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                dirs.add(path.parent)
        for d in dirs:  # the renames themselves
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _unlink(self, rels: Sequence[str]) -> int:
        freed = 0
        for rel in rels:
            path = self.root / rel
            with contextlib.suppress(OSError):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def _added(self, n: int) -> None:
        if self.total is None:
            return
        self.total = max(0, self.total + n)
        self._metrics.camera_evidence_bytes.set(self.total)
        if self.total > self.max_total_bytes:
            self._full.set()

    # -- pruning ---------------------------------------------------------------------------

    async def prune(self, now: datetime) -> int:
        """Delete pictures past their age, then the oldest past the total cap; returns how
        many files were deleted."""
        removed, total = await asyncio.to_thread(self._prune, now.timestamp())
        self.total = total
        self._metrics.camera_evidence_bytes.set(total)
        self._metrics.camera_images.labels("pruned").inc(removed)
        return removed

    def _prune(self, now: float) -> tuple[int, int]:
        if not self.root.is_dir():
            return 0, 0
        files: list[tuple[float, int, Path]] = []
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    files.append((st.st_mtime, st.st_size, path))
        files.sort()
        cutoff = now - self.max_age.total_seconds()
        total = sum(size for _, size, _ in files)
        removed = 0
        for mtime, size, path in files:
            if mtime >= cutoff and total <= self.max_total_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                removed += 1
        return removed, total

    async def run(self, interval_s: float, clock: Callable[[], datetime]) -> None:
        """The pruning task: on the interval, and at once when the cap is passed."""
        while True:
            try:
                await self.prune(clock())
                self._warn.recovered()
            except OSError as exc:
                self._warn.failed(f"{type(exc).__name__}: {exc}")
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await wait_for(self._full.wait(), interval_s)
