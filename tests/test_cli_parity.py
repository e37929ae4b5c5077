"""What the CLI shows equals what the API shows, on the same running gateway, found the same
way (a ./citygate.toml beside the user, with paths relative to it)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from events import CaseRaised
from gateway.cases.outbox import record_case
from gateway.config import load_settings
from tests.conftest import Broker, make_tokens, running_gateway, wait_for


async def cli_json(cwd: Path, *args: str) -> Any:
    """Run a CLI command with no config flag from *cwd*; its stdout, parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert f"config {cwd / 'citygate.toml'}" in err.decode()  # cwd: resolved by the fixture
    return json.loads(out)


@pytest.fixture
def config_dir(tmp_path: Path, mosquitto: Broker) -> Path:
    (tmp_path / "citygate.toml").write_text(
        '[database]\nurl = "sqlite+aiosqlite:///data/citygate.db"\n'
        '[telemetry]\nspool_dir = "data/telemetry-spool"\nhealth_interval_s = 3600\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'client_id = "cg-parity-{uuid.uuid4().hex[:8]}"\n'
        "[api]\nport = 0\n[ocpp]\nport = 0\n[bodycams]\nsip_port = 0\n[drones]\nmavlink_port = 0\n",
        "utf-8",
    )
    (tmp_path / "data").mkdir()
    return tmp_path.resolve()


def raised(n: int, ts: datetime) -> CaseRaised:
    return CaseRaised(
        device_id=f"cam-{n:02d}",
        ts=ts,
        category="0505" if n % 2 else "0506",
        rule_id="fire-lane",
        title=f"机动车乱停放 {n}",
        dedup_key=f"0505:spot-{n}",
        dedup_window_s=600,
        site_id="cp-zhening",
        lat=38.78 + n / 1000,
        lon=101.08,
        plate="甘G12345" if n % 2 else None,
        evidence=(f"img/{n}.jpg",),
        details={"minutes": n},
    )


@pytest.mark.slow
async def test_cli_and_api_views_agree(config_dir: Path) -> None:
    settings = load_settings(config_dir / "citygate.toml", environ={})
    async with running_gateway(settings) as gw:
        tokens = await make_tokens(gw)
        now = datetime.now(UTC)
        async with gw.services.sessions.begin() as s:
            for n in range(5):
                await record_case(s, raised(n, now - timedelta(minutes=n)), now)
        base = f"http://127.0.0.1:{gw.api_port}"
        inspector = {"Authorization": f"Bearer {tokens['inspector']}"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            # cases list: the CLI's JSON is the API's body, filters included
            for query, flags in (("", ()), ("?category=0505", ("--category", "0505"))):
                api = (await http.get(f"/api/v1/cases{query}", headers=inspector)).json()
                cli = await cli_json(config_dir, "cases", "list", "--json", *flags)
                assert cli["cases"] == api["cases"]
                assert len(cli["cases"]) == (5 if not query else 2)

            # telemetry status: one function behind both; compare once the figures hold still
            assert (await http.get("/api/v1/telemetry/status")).status_code == 401
            device = {"Authorization": f"Bearer {tokens['device']}"}
            assert (await http.get("/api/v1/telemetry/status", headers=device)).status_code == 403

            async def status() -> dict[str, Any]:
                r = await http.get("/api/v1/telemetry/status", headers=inspector)
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                return body

            await wait_for(lambda: (config_dir / "data/telemetry-spool/status.json").exists(), 10)
            agreed = False
            for _ in range(5):
                before = await status()
                cli = await cli_json(config_dir, "telemetry", "status", "--json")
                after = await status()
                ages = (before.pop("status_age_s"), cli.pop("status_age_s"))
                after.pop("status_age_s")
                if before == after:
                    assert cli == before
                    assert all(a is not None and a < 30 for a in ages)
                    agreed = True
                    break
            assert agreed, "the pipeline's figures never held still for a second"
            assert before["spool_limit_bytes"] == settings.telemetry.spool_max_bytes
