"""The OpenAPI document is what the server does: schemathesis, every check, against a live
gateway with the sample town, once without a token and once with an admin token.

The gateway runs on its own event loop in a thread (schemathesis's client is blocking) and
serves on a real socket; schemathesis runs as its command-line runner (all phases: examples,
coverage, fuzzing, stateful) in a subprocess. Bounded by ``--max-examples`` so the file takes
about two minutes.

The one setting that differs from schemathesis's defaults: ``positive_data_acceptance`` also
expects 422 (tests/schemathesis.toml). The API refuses with 422 what a JSON Schema cannot say:
an id in a body that does not exist (an unknown site or berth), a plate that is not a plate,
cross-field rules (exactly one of plate or berth_id; before or after, not both), a stay
outside the posted tariff. Those rules are in the operations' descriptions and every such 422
is a documented Problem naming the fields; every other check runs as shipped.

With the admin token every operation runs, state-changing ones too: the database is
throwaway. None can hurt the run: tokens are made and revoked only by the CLI (there is no
token route to revoke the run's own), no charger is connected (commands answer 409), and a
charger's rotated OCPP password or a retired device matters to nothing here.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 7
SECRET = "schemathesis-case-callback-secret-0123456789"


class ThreadedGateway:
    """A whole gateway on its own loop in a thread, so a blocking client can call it."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.port = 0
        self.tokens: dict[str, str] = {}
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_gateway(self.settings) as gw:
            self.port = gw.api_port
            self.tokens = await make_tokens(gw)
            self.ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(60) or self.error is not None:
            raise AssertionError(f"gateway did not start: {self.error!r}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "gateway did not stop"


@pytest.fixture(scope="module")
def gateway(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    db = tmp_path_factory.mktemp("schemathesis") / "cg.db"
    settings = gateway_settings(f"sqlite+aiosqlite:///{db}", mosquitto, cases={"secret": SECRET})
    gw = ThreadedGateway(settings)
    gw.start()
    yield gw
    gw.stop()


def schemathesis(url: str, cwd: Path, *extra: str) -> tuple[int, str, float]:
    """Run schemathesis on *url* in *cwd* (where it keeps its cache of found failures):
    (exit code, output, seconds)."""
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            url,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "1",
            "--no-color",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_server_does_what_its_openapi_says(gateway: Any, who: str, tmp_path: Path) -> None:
    extra = [] if who == "anonymous" else ["-H", f"Authorization: Bearer {gateway.tokens['admin']}"]
    url = f"http://127.0.0.1:{gateway.port}/openapi.json"
    code, out, seconds = schemathesis(url, tmp_path, *extra)
    summary = re.search(r"(\d+) generated.*", out)
    print(f"schemathesis ({who}): {summary.group(0) if summary else '?'} in {seconds:.0f} s")
    assert code == 0, out[-20000:]
    assert summary is not None and int(summary.group(1)) > 300, out[-5000:]
    assert "Server error" not in out, out[-20000:]
