"""A local MQTT broker for the demo: Mosquitto if installed, else amqtt in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from drivers.aio import wait_for

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now. With SO_REUSEADDR, as the gateway's
    own listener binds: a port whose last connections linger in TIME-WAIT is free (on Linux
    the bind still fails while anything listens there)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


async def wait_port(host: str, port: int, limit_s: float = 10.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {limit_s}s") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


async def _stop_process(proc: asyncio.subprocess.Process, grace_s: float = 5.0) -> None:
    """Terminate *proc* unless it has already gone (a signal sent to the whole process group,
    or a crash): then there is nothing to stop, and no ``ProcessLookupError``."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def embedded_broker(
    host: str = "127.0.0.1", kind: str = "auto"
) -> AsyncIterator[tuple[str, int, str]]:
    """Yield (host, port, kind) of a broker that lives as long as the context.

    *kind*: ``auto`` (Mosquitto if installed, else amqtt in-process), ``mosquitto`` or
    ``amqtt``. Mosquitto runs in a process group of its own, so the terminal's Ctrl-C reaches
    the demo only and the broker outlives the gateway's last flush; the demo stops it.
    """
    port = free_port(host)
    binary = mosquitto_binary() if kind in ("auto", "mosquitto") else None
    if kind == "mosquitto" and binary is None:
        raise FileNotFoundError("[demo] broker = mosquitto, but mosquitto is not installed")
    if binary:
        with tempfile.TemporaryDirectory(prefix="citygate-mqtt-") as tmp:
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(
                f"listener {port} {host}\nallow_anonymous true\npersistence true\n"
                f"persistence_location {tmp}/\nlog_dest stderr\nlog_type error\n"
                # The gateway acknowledges uplinks in batches, after their commit: without
                # this, Nagle holds each next uplink until our (delayed) TCP ACK (+~9 ms).
                "set_tcp_nodelay true\nmax_queued_messages 100000\n"
            )
            proc = await asyncio.create_subprocess_exec(
                binary,
                "-c",
                str(conf),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                process_group=0,
            )
            try:
                await wait_port(host, port)
                log.info("embedded broker: mosquitto on %s:%d (pid %d)", host, port, proc.pid)
                yield host, port, "mosquitto"
            finally:
                await _stop_process(proc)
        return
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        log.info("embedded broker: amqtt (in-process) on %s:%d", host, port)
        yield host, port, "amqtt"
    finally:
        try:
            await broker.shutdown()
        except Exception as exc:  # amqtt refuses a shutdown from some states; it is going anyway
            log.debug("embedded broker: amqtt shutdown: %s: %s", type(exc).__name__, exc)
