"""Camera evidence files: written whole, pruned by age and then oldest-first to the cap."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.demo.cameras import tiny_jpeg
from gateway.metrics import Metrics
from gateway.services.cameras.evidence import EvidenceStore
from tests.conftest import wait_for

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def files(root: Path, pattern: str = "*") -> list[Path]:
    return [p for p in root.rglob(pattern) if p.is_file()]


def store(root: Path, cap: int = 10_000_000) -> EvidenceStore:
    return EvidenceStore(root, max_total_bytes=cap, max_age=timedelta(days=30), metrics=Metrics())


async def test_save_writes_whole_files_and_discard_removes_them(tmp_path: Path) -> None:
    ev = store(tmp_path)
    rels = await ev.save(
        "cam/../x", NOW, [("../../etc/passwd", tiny_jpeg()), ("b.jpg", tiny_jpeg(500))]
    )
    assert len(rels) == 2 and all(".." not in r.split("/") for r in rels)
    assert [(tmp_path / r).stat().st_size for r in rels] == [len(tiny_jpeg()), 500]
    assert not files(tmp_path, "*.tmp")
    await ev.flush()  # the background fsyncs finish
    await ev.discard(rels)
    assert not files(tmp_path)


async def test_prune_by_age_then_oldest_first_to_the_cap(tmp_path: Path) -> None:
    ev = store(tmp_path, cap=2500)
    old = await ev.save("cam-1", NOW, [("old.jpg", tiny_jpeg(1000))])
    mid = await ev.save("cam-1", NOW, [("mid.jpg", tiny_jpeg(1000))])
    new = await ev.save("cam-1", NOW, [("new.jpg", tiny_jpeg(1000))])
    rej = await ev.save_rejected("cam-1", NOW, "malformed_xml", b"<x")
    t = NOW.timestamp()
    os.utime(tmp_path / old[0], (t - 40 * 86400, t - 40 * 86400))  # past max_age
    os.utime(tmp_path / mid[0], (t - 3600, t - 3600))  # the oldest within age
    os.utime(tmp_path / new[0], (t, t))
    os.utime(tmp_path / rej, (t, t))
    assert await ev.prune(NOW) == 1  # the old one; 2002 bytes left fit the cap
    assert ev.total == 2002
    await ev.save("cam-1", NOW, [("more.jpg", tiny_jpeg(1000))])
    assert ev.total == 3002
    assert await ev.prune(NOW) == 1  # over the cap: the oldest (mid) goes
    assert not (tmp_path / mid[0]).exists() and (tmp_path / new[0]).exists()
    assert ev.total is not None and ev.total <= 2500


async def test_the_pruning_task_wakes_when_the_cap_is_passed(tmp_path: Path) -> None:
    ev = store(tmp_path, cap=1500)
    task = asyncio.create_task(ev.run(3600, lambda: NOW))
    try:
        await wait_for(lambda: ev.total == 0, 5, what="first prune")
        await ev.save("cam-1", NOW, [("a.jpg", tiny_jpeg(1000))])
        await ev.save("cam-1", NOW, [("b.jpg", tiny_jpeg(1000))])
        await wait_for(lambda: ev.total == 1000, 5, what="prune on the cap, not the hour")
    finally:
        task.cancel()
