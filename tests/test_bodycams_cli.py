"""``citygate bodycams`` and ``citygate field`` beside a running gateway: a cam added from the
CLI registers at once (the change feed), and ``field --json`` is exactly the API's view."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.config import load_settings
from tests.conftest import Broker, make_tokens, running_gateway, wait_for
from tests.sip_uac import Uac
from tests.test_cli_parity import cli_json

CAM = "62072500081380000600"


@pytest.fixture
def config_dir(tmp_path: Path, mosquitto: Broker) -> Path:
    (tmp_path / "citygate.toml").write_text(
        '[database]\nurl = "sqlite+aiosqlite:///data/citygate.db"\n'
        '[telemetry]\nspool_dir = "data/telemetry-spool"\nhealth_interval_s = 3600\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'client_id = "cg-bcam-{uuid.uuid4().hex[:8]}"\n'
        "[api]\nport = 0\n[ocpp]\nport = 0\n"
        "[bodycams]\nsip_port = 0\npersist_interval_s = 0.1\n[drones]\nmavlink_port = 0\n",
        "utf-8",
    )
    (tmp_path / "data").mkdir()
    return tmp_path.resolve()


async def cli_stdin(cwd: Path, stdin: bytes, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_adds_a_cam_live_and_field_json_is_the_api_view(config_dir: Path) -> None:
    settings = load_settings(config_dir / "citygate.toml", environ={})
    async with running_gateway(settings) as gw:
        rc, out, err = await cli_stdin(
            config_dir, b"typed-on-the-cam\n", "bodycams", "add", CAM, "--officer", "of-005",
            "--password-stdin",
        )  # fmt: skip
        assert rc == 0, err
        assert out.strip() == "typed-on-the-cam"  # shown once, stored as HA1 only
        rc, _, err = await cli_stdin(config_dir, b"", "bodycams", "add", CAM)
        assert rc == 4 and "already exists" in err  # refused: docs/cli.md
        listed = await cli_json(config_dir, "bodycams", "list", "--json")
        mine = next(c for c in listed["bodycams"] if c["id"] == CAM)
        assert mine["officer_id"] == "of-005" and mine["password_set"] is True

        uac = await Uac(CAM, "typed-on-the-cam", settings.bodycams.effective_realm,
                        settings.bodycams.platform_id).open(gw.sip_port)  # fmt: skip
        try:

            async def registers() -> bool:
                return (await uac.register()).status == 200

            await wait_for(registers, 10, interval=0.2, what="the CLI's cam registers")
            assert (await uac.keepalive()).status == 200
        finally:
            uac.close()

        tokens = await make_tokens(gw)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            r = await http.get(
                "/api/v1/field", headers={"Authorization": f"Bearer {tokens['operator']}"}
            )
            api = r.json()
        cli = await cli_json(config_dir, "field", "--json")
        assert cli["cams"] == api["cams"] and cli["total"] == api["total"] == 73
        line = next(c for c in cli["cams"] if c["device_id"] == CAM)
        assert line["online"] is True and line["officer_id"] == "of-005"
