"""The ingest hot path without sockets: envelope + codec + occupancy + bus per uplink.

Baseline in the same run: json.loads of the same payloads (the floor any JSON ingest pays).
Prints one JSON line per figure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import emit, messages
from tests.test_ingest import make_ingest


def main(n: int = 50_000) -> None:
    msgs = messages(n, 1)
    t0 = time.perf_counter()
    for _, payload in msgs:
        json.loads(payload)
    baseline = n / (time.perf_counter() - t0)
    ingest, _ = make_ingest()
    t0 = time.perf_counter()
    for topic, payload in msgs:
        ingest.handle(topic, payload)
    rate = n / (time.perf_counter() - t0)
    emit(
        "ingest_handle_rate",
        rate,
        "uplinks/s",
        baseline,
        baseline_name="json_loads_rate",
        per_uplink_us=round(1e6 / rate, 1),
    )


if __name__ == "__main__":
    main()
