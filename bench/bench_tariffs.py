"""Re-pricing a month of the sample town's sessions (~400,000) with the posted tariffs.

Baseline in the same run: the same sessions priced by a flat "per started 30 min" formula (the
least any pricing must do). Target (issue 4): the month re-prices in under 10 s, in one
process (the engine caches each tariff's band boundaries per local day, so the month's
~30 days are converted once, not once per quote).
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import emit
from gateway.directory.town import load_town
from parking.tariff_file import load_sample_tariffs
from parking.tariffs import VEHICLE_CLASSES, VehicleClass, quote

N = 400_000

Session = tuple[str, str, VehicleClass, datetime, datetime]


def sessions(n: int, seed: int = 7) -> list[Session]:
    """``n`` stays in November 2026: random site and vehicle, log-normal length (median ~55
    min, at most 3 days)."""
    rng = random.Random(seed)
    sites = load_town(None).sites
    zone = ZoneInfo("Asia/Shanghai")
    month = datetime(2026, 11, 1, tzinfo=zone)
    out: list[Session] = []
    for _ in range(n):
        site = rng.choice(sites)
        entry = month + timedelta(seconds=rng.randrange(30 * 86400))
        stay = timedelta(minutes=min(int(rng.lognormvariate(4.0, 1.0)), 3 * 1440))
        out.append((site.id, site.segment_class, rng.choice(VEHICLE_CLASSES), entry, entry + stay))
    return out


def main(n: int) -> None:
    book = load_sample_tariffs(ZoneInfo("Asia/Shanghai"))
    work = sessions(n)
    t0 = time.perf_counter()
    flat = sum(-(-int((x - e).total_seconds()) // 1800) * 100 for _, _, _, e, x in work)
    baseline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = 0
    for s, c, v, e, x in work:
        total += quote(book, s, c, v, e, x).total_fen
    elapsed = time.perf_counter() - t0
    emit(
        "reprice_month_seconds",
        elapsed,
        "s",
        baseline_s,
        sessions=n,
        target_s=10,
        per_quote_us=round(elapsed / n * 1e6, 1),
        total_fen=total,
        flat_total_fen=flat,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=N)
    main(ap.parse_args().sessions)
