"""The telemetry spool: append rate (durable batches) and replay rate (peek + ack).

Prints one JSON line per figure: {"name", "value", "unit", "baseline", ...}, each the median
of --runs runs, with its baseline measured in the same run on the same bytes:

1. append:  ``Spool.append`` of batches of --batch lines, each durable on return (fsync'd
            commit), through the asyncio API and its worker thread. -> points/s
            baseline: the raw floor of any durable log - ``os.write`` of the same bytes
            (joined, encoded) + ``os.fsync``, per batch, to one append-only file.
2. replay:  ``peek(--batch)`` + ``ack`` until the spool is empty (each ack a durable commit).
            -> points/s
            baseline: a plain read of the append-only file written in (1), split into lines
            (no durability: nothing is removed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telemetry.spool import Spool

T0 = 1_700_000_000_000_000_000


def emit(name: str, value: float, unit: str, baseline: float | None, **extra: Any) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "baseline": None if baseline is None else round(baseline, 2),
                **extra,
            }
        ),
        flush=True,
    )


def make_lines(n: int) -> list[str]:
    """Berth-sensor points like the gateway's (~100 bytes each), ns timestamps."""
    return [
        f"berth,site=sd-{i % 24:02d},kind=sensor,model=nwave-nps405 "
        f"occupied={i % 2}i,battery_mv=3612i,rssi=-97i,snr=7.5 {T0 + i * 1_000_000}"
        for i in range(n)
    ]


def raw_append(path: Path, batches: list[list[str]]) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        for batch in batches:
            os.write(fd, ("\n".join(batch) + "\n").encode())
            os.fsync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def raw_read(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with path.open("rb") as f:
        got = f.read().decode().splitlines()
    return time.perf_counter() - t0, len(got)


def disk_size(path: Path) -> int:
    """The spool's file and its WAL (while open)."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def spool_run(path: Path, batches: list[list[str]], batch: int) -> tuple[float, float, int]:
    async with await Spool.open(path, max_bytes=2**40) as spool:
        t0 = time.perf_counter()
        for lines in batches:
            await spool.append(lines)
        append_s = time.perf_counter() - t0
        size = await asyncio.to_thread(disk_size, path)
        replayed = 0
        t0 = time.perf_counter()
        while (peeked := await spool.peek(batch)) is not None:
            replayed += len(peeked.lines)
            await spool.ack(peeked)
        replay_s = time.perf_counter() - t0
    assert replayed == sum(map(len, batches))
    return append_s, replay_s, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    lines = make_lines(args.points)
    batches = [lines[i : i + args.batch] for i in range(0, len(lines), args.batch)]
    payload = sum(len(s.encode()) for s in lines)
    results: dict[str, list[float]] = {k: [] for k in ("append", "raw_w", "replay", "raw_r")}
    disk: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="cg-bench-spool-") as tmp:
            d = Path(tmp)
            results["raw_w"].append(args.points / raw_append(d / "raw.log", batches))
            read_s, n = raw_read(d / "raw.log")
            assert n == args.points
            results["raw_r"].append(args.points / read_s)
            append_s, replay_s, size = asyncio.run(
                spool_run(d / "spool.sqlite3", batches, args.batch)
            )
            results["append"].append(args.points / append_s)
            results["replay"].append(args.points / replay_s)
            disk.append(size / payload)
    med = {k: statistics.median(v) for k, v in results.items()}
    emit(
        "spool_append_rate",
        med["append"],
        "points/s",
        med["raw_w"],
        baseline_name="os_write_fsync_rate",
        batch=args.batch,
        points=args.points,
        bytes_per_point=round(payload / args.points, 1),
        disk_per_payload=round(statistics.median(disk), 2),
    )
    emit(
        "spool_replay_rate",
        med["replay"],
        "points/s",
        med["raw_r"],
        baseline_name="file_read_rate",
        batch=args.batch,
        points=args.points,
    )


if __name__ == "__main__":
    main()
