"""SIPp (Debian ``sip-tester``) as a GB/T 28181 body cam: runs one scenario of tests/sipp/
against the gateway's SIP port, as a subprocess of the test's event loop.

Every scenario takes ``-key device`` / ``realm`` / ``platform`` and the digest user and
password (``-au``/``-ap``); the platform's own requests to the "cam" (queries, SUBSCRIBE) are
answered 200 by the out-of-call scenario ``ooc_answer.xml``.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parent / "sipp"


def sipp_binary() -> str:
    found = shutil.which("sipp") or "/usr/bin/sipp"
    if not Path(found).exists():
        pytest.fail("sipp is not installed: apt-get install -y sip-tester")
    return found


def free_udp_tcp_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError("no free port")


@dataclass
class SippResult:
    rc: int
    stdout: str
    stderr: str
    errors: str

    def ok(self) -> bool:
        return self.rc == 0


async def run_sipp(
    scenario: str,
    sip_port: int,
    device: str,
    password: str,
    *,
    realm: str,
    platform: str,
    transport: str = "u1",
    pause_ms: int = 200,
    keys: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    workdir: Path,
) -> SippResult:
    """Run ``tests/sipp/<scenario>`` once; its exit code and logs."""
    err_file = workdir / f"{scenario}-{device}-errors.log"
    args = [
        sipp_binary(),
        f"127.0.0.1:{sip_port}",
        "-sf", str(SCENARIOS / scenario),
        "-oocsf", str(SCENARIOS / "ooc_answer.xml"),
        "-i", "127.0.0.1",
        "-p", str(free_udp_tcp_port()),
        "-t", transport,
        "-m", "1",
        "-d", str(pause_ms),
        "-au", device,
        "-ap", password,
        "-key", "device", device,
        "-key", "device_base", device[:18],
        "-key", "realm", realm,
        "-key", "platform", platform,
        "-timeout", f"{int(timeout_s)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        "-error_file", str(err_file),
    ]  # fmt: skip
    for k, v in (keys or {}).items():
        args += ["-key", k, v]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s + 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    assert proc.returncode is not None
    return SippResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                      errors)  # fmt: skip
