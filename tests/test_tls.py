"""TLS: MQTT over TLS with username/password against a real Mosquitto (never a plaintext
fallback), and the HTTP API over HTTPS."""

from __future__ import annotations

import contextlib
import getpass
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import trustme

from drivers.mqtt.transport import MqttParams, MqttTransport, make_client
from tests.conftest import Broker, free_port, wait_for, wait_tcp


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_broker(tmp_path: Path, ca: trustme.CA) -> Iterator[Broker]:
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "gw", "correct horse"],
        check=True,
        capture_output=True,
    )
    passwd.chmod(0o600)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        # Run as ourselves: as root, mosquitto would switch to its own user and not read our files.
        f"user {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.pem'}\npersistence false\nlog_dest none\n"
    )
    broker = Broker("127.0.0.1", port, None, conf)  # type: ignore[arg-type]
    broker.start()
    wait_tcp("127.0.0.1", port)
    yield broker
    broker.stop()


def params(broker: Broker, ca_file: Path | None, password: str, tls: bool = True) -> MqttParams:
    return MqttParams(
        host=broker.host,
        port=broker.port,
        client_id="tls-test",
        username="gw",
        password=password,
        tls=tls,
        ca_file=ca_file,
        clean=True,
        connect_timeout_s=1.0,
    )


async def test_tls_with_credentials_receives(tls_broker: Broker, tmp_path: Path) -> None:
    got: list[tuple[str, bytes]] = []
    transport = MqttTransport(
        params(tls_broker, tmp_path / "ca.pem", "correct horse"),
        ["citygate/#"],
        lambda t, p: got.append((t, p)),
    )
    import asyncio

    task = asyncio.create_task(transport.run())
    try:
        await wait_for(transport.connected.is_set, 10, what="TLS connect")
        async with make_client(
            MqttParams(
                host=tls_broker.host,
                port=tls_broker.port,
                client_id="pub",
                username="gw",
                password="correct horse",
                tls=True,
                ca_file=tmp_path / "ca.pem",
                clean=True,
            )
        ) as pub:
            await pub.publish("citygate/x", b"over tls", qos=1)
        await wait_for(lambda: got, 10)
        assert got == [("citygate/x", b"over tls")]
    finally:
        task.cancel()


@pytest.mark.parametrize(
    ("tls", "password", "use_ca"),
    [
        (True, "wrong", True),  # bad credentials
        (True, "correct horse", False),  # server certificate not trusted (no CA given)
        (False, "correct horse", True),  # plaintext to a TLS listener
    ],
)
async def test_refused_connections_retry_without_downgrade(
    tls_broker: Broker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    tls: bool,
    password: str,
    use_ca: bool,
) -> None:
    import asyncio

    ca_file = tmp_path / "ca.pem" if (use_ca and tls) else None
    transport = MqttTransport(
        params(tls_broker, ca_file, password, tls=tls),
        ["citygate/#"],
        lambda t, p: None,
        backoff_base=0.01,
        backoff_cap=0.05,
    )
    task = asyncio.create_task(transport.run())
    try:
        await wait_for(lambda: transport.reconnects >= 3, 15, what="repeated refusals")
        assert not transport.connected.is_set()
    finally:
        task.cancel()
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # reported once, then quiet
    assert "correct horse" not in caplog.text and "wrong" not in caplog.text.replace("wrong_", "")


async def test_plain_client_cannot_talk_to_tls_only_broker(tls_broker: Broker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(tls_broker.host, tls_broker.port, timeout=3):
            pass


async def test_api_over_https(mosquitto: Broker, tmp_path: Path, ca: trustme.CA) -> None:
    import httpx

    from tests.conftest import gateway_settings, running_gateway

    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        api={"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")},
    )
    async with running_gateway(settings) as gw:
        base = f"https://127.0.0.1:{gw.api_port}"
        trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        async with httpx.AsyncClient(verify=trust) as http:
            assert (await http.get(f"{base}/api/v1/sites")).status_code == 200
        async with httpx.AsyncClient() as plain:  # no plaintext on the TLS port
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{gw.api_port}/api/v1/sites")


async def test_ocpp_over_wss_security_profile_2(
    mosquitto: Broker, tmp_path: Path, ca: trustme.CA
) -> None:
    """[ocpp] tls_cert/tls_key: chargers connect over wss:// with their password; a charger
    trying plain ws:// on that port gets no OCPP session (never downgraded)."""
    from websockets.exceptions import InvalidMessage

    from gateway.demo.ocpp import Charger16
    from gateway.directory.chargers import set_password
    from tests.conftest import gateway_settings, running_gateway, wait_for

    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        ocpp={"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")},
    )
    async with running_gateway(settings) as gw:
        async with gw.services.persister._sessions.begin() as s:
            password = await set_password(s, "SDEV003", gw.services.clock())
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        wss = f"wss://127.0.0.1:{gw.ocpp_port}/ocpp"
        async with Charger16(wss, "SDEV003", password, ssl_context=trust) as c:
            await c.boot()
            await wait_for(
                lambda: "SDEV003" in gw.services.charging.live, 5, what="connected over TLS"
            )
        with pytest.raises((InvalidMessage, ConnectionError, EOFError)):  # no plaintext
            async with Charger16(f"ws://127.0.0.1:{gw.ocpp_port}/ocpp", "SDEV003", password):
                pass


def _client_hello() -> bytes:
    """The first flight of a real TLS client (a whole ClientHello record)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _stalled_clients(port: int, n: int) -> list[Any]:
    """*n* raw TCP connections that never finish a handshake: half of them send nothing,
    half send the first half of a ClientHello."""
    import asyncio

    hello = _client_hello()
    conns = []
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if i % 2:
            writer.write(hello[: len(hello) // 2])
            await writer.drain()
        conns.append((reader, writer))
    return conns


async def _closed_by_server(conns: list[Any], within: float) -> float:
    """Wait until the server has closed every connection; returns how long that took."""
    import asyncio
    import time

    start = time.monotonic()

    async def eof(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass

    try:
        await asyncio.wait_for(asyncio.gather(*(eof(r) for r, _ in conns)), within)
    finally:
        for _, w in conns:
            w.close()
    return time.monotonic() - start


def _cert_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    return {"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")}


async def test_api_drops_clients_that_never_finish_the_tls_handshake(
    mosquitto: Broker, tmp_path: Path, ca: trustme.CA
) -> None:
    """[api] tls_handshake_timeout_s: 60 raw connections that send nothing or half a
    ClientHello are closed within the timeout (asyncio's default would hold them 60 s), and a
    good HTTPS client is answered meanwhile, each time."""
    import asyncio
    import time

    import httpx

    from tests.conftest import gateway_settings, running_gateway

    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        api={**_cert_files(ca, tmp_path), "tls_handshake_timeout_s": 1.0},
    )
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    async with running_gateway(settings) as gw:
        base = f"https://127.0.0.1:{gw.api_port}"
        opened = time.monotonic()
        stalled = await _stalled_clients(gw.api_port, 60)
        closing = asyncio.create_task(_closed_by_server(stalled, 5.0))
        async with httpx.AsyncClient(verify=trust, timeout=2.0) as http:
            while not closing.done():  # new handshakes complete while 60 are pending
                assert (await http.get(f"{base}/healthz")).status_code == 200
                await asyncio.sleep(0.05)
        await closing
        assert time.monotonic() - opened < 4.0
        assert (
            gw.metrics_value("citygate_tls_handshakes_total", listener="api", outcome="started")
            - (
                gw.metrics_value(
                    "citygate_tls_handshakes_total", listener="api", outcome="completed"
                )
            )
            >= 60
        )


async def test_ocpp_drops_clients_that_never_finish_the_tls_handshake(
    mosquitto: Broker, tmp_path: Path, ca: trustme.CA
) -> None:
    """[ocpp] tls_handshake_timeout_s: stalled TLS connections to the OCPP listener are closed
    within the timeout while a charger connects over wss:// meanwhile."""
    import time

    from gateway.demo.ocpp import Charger16
    from gateway.directory.chargers import set_password
    from tests.conftest import gateway_settings, running_gateway

    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        ocpp={**_cert_files(ca, tmp_path), "tls_handshake_timeout_s": 1.0},
    )
    async with running_gateway(settings) as gw:
        async with gw.services.persister._sessions.begin() as s:
            password = await set_password(s, "SDEV003", gw.services.clock())
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        opened = time.monotonic()
        stalled = await _stalled_clients(gw.ocpp_port, 40)
        wss = f"wss://127.0.0.1:{gw.ocpp_port}/ocpp"
        async with Charger16(wss, "SDEV003", password, ssl_context=trust) as c:
            await c.boot()
            await wait_for(lambda: "SDEV003" in gw.services.charging.live, 5, what="connected")
        await _closed_by_server(stalled, 5.0)
        assert time.monotonic() - opened < 4.0
        started = gw.metrics_value(
            "citygate_tls_handshakes_total", listener="ocpp", outcome="started"
        )
        completed = gw.metrics_value(
            "citygate_tls_handshakes_total", listener="ocpp", outcome="completed"
        )
        assert completed >= 1 and started - completed >= 40
