"""MQTT transport on aiomqtt: owns one connection, reconnects with backoff + jitter, replays
its subscriptions after every reconnect, and hands each message to a synchronous callback.

The backoff is capped low (4 s by default, ``[mqtt] reconnect_max_s``): a refused connection
costs the broker next to nothing, and with a 30 s cap a broker back after a short outage
waited up to half a minute for its gateways. The jitter still spreads a fleet's reconnects.

QoS 1 with a persistent session (MQTT 5 session expiry, or clean_session=False on 3.1.1), so
the broker keeps uplinks for us while we are away. With ``hold_ack`` the PUBACK of each
message is handed to the application, which sends it once what the message changed is
durable: a crash before that loses nothing, the broker delivers the message again. Optional
MQTT 5 shared subscriptions spread one stream over several gateway instances. TLS is never
downgraded: if TLS is configured and the handshake fails, we retry TLS, never plaintext.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.aio import honour_cancel
from drivers.backoff import Backoff

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class MqttParams:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive_s: int = 30
    session_expiry_s: int = 86400
    clean: bool = False  # True for throwaway clients (simulator, tests)
    connect_timeout_s: float = 10.0


def shared(topic: str, group: str | None) -> str:
    """The MQTT 5 shared-subscription form of *topic* for *group* (or *topic* itself)."""
    return f"$share/{group}/{topic}" if group else topic


def _tls_context(p: MqttParams) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(p.ca_file) if p.ca_file else None)
    if p.cert_file and p.key_file:
        ctx.load_cert_chain(str(p.cert_file), str(p.key_file))
    return ctx


def _dispatching_queue(
    handler: MessageHandler, handled: Callable[[aiomqtt.Message], None] | None = None
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class that hands each message to *handler* the moment paho delivers it.

    aiomqtt puts every incoming message in a queue that the application drains with one task
    per message. Dispatching synchronously instead is several times cheaper. Then *handled*
    gets the message (to acknowledge it later, with manual acks); without it paho sends the
    QoS 1 PUBACK as soon as the handler returned.
    """

    class DispatchingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            payload = item.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            try:
                handler(item.topic.value, bytes(payload))
            except Exception:
                # A handler bug must not take the connection down with it.
                log.exception("MQTT message handler failed on %s", item.topic.value)
            if handled is not None:
                handled(item)

    return DispatchingQueue


def make_client(
    p: MqttParams,
    max_queued: int | None = None,
    handler: MessageHandler | None = None,
    *,
    handled: Callable[[aiomqtt.Message], None] | None = None,
    receive_maximum: int | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client for *p* (not connected yet); with *handler*, messages are dispatched
    to it synchronously instead of being queued for ``client.messages``; with *handled* too,
    PUBACKs are manual (``ack``). *receive_maximum* (MQTT 5) bounds the uplinks the broker
    sends ahead of their acknowledgements."""
    v5 = p.protocol == "5"
    props: Properties | None = None
    if v5 and (not p.clean or receive_maximum):
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if not p.clean:
            props.SessionExpiryInterval = p.session_expiry_s
        if receive_maximum:
            props.ReceiveMaximum = receive_maximum
    client = aiomqtt.Client(
        p.host,
        p.port,
        identifier=p.client_id,
        username=p.username,
        password=p.password,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_session=None if v5 else p.clean,
        # v5 only; paho refuses any clean_start value but the default on 3.1.1.
        clean_start=(p.clean if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY),
        properties=props,
        keepalive=p.keepalive_s,
        tls_context=_tls_context(p) if p.tls else None,
        timeout=p.connect_timeout_s,
        max_queued_incoming_messages=max_queued,
        queue_type=_dispatching_queue(handler, handled) if handler else None,
    )
    if handled is not None:
        # aiomqtt does not expose paho's manual acknowledgements; its paho client does.
        client._client.manual_ack_set(True)
    return client


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Send *message*'s PUBACK now (manual acks); nothing for QoS 0."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


class MqttTransport:
    """Subscribe to *topics* and feed every message to *on_message* until cancelled."""

    def __init__(
        self,
        params: MqttParams,
        topics: list[str],
        on_message: MessageHandler,
        *,
        on_state: Callable[[bool], None] | None = None,
        hold_ack: Callable[[Callable[[], None]], None] | None = None,
        receive_maximum: int | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 4.0,
        rng: random.Random | None = None,
    ) -> None:
        self.params = params
        self.topics = topics
        self._on_message = on_message
        self._on_state = on_state or (lambda _up: None)
        self._hold_ack = hold_ack
        self._receive_maximum = receive_maximum
        self.acks_sent = 0
        self.acks_stale = 0  # held across a reconnect: the broker sends those messages again
        self._backoff = Backoff(base=backoff_base, cap=backoff_cap, rng=rng or random.Random())
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._client: aiomqtt.Client | None = None

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the live connection; returns after the broker's PUBACK for QoS 1."""
        if self._client is None or not self.connected.is_set():
            raise ConnectionError("MQTT not connected")
        await self._client.publish(topic, payload, qos=qos)
        honour_cancel()  # aiomqtt waits for the PUBACK with wait_for: see drivers.aio

    def _new_client(self) -> aiomqtt.Client:
        if self._hold_ack is None:
            return make_client(
                self.params, handler=self._on_message, receive_maximum=self._receive_maximum
            )
        hold = self._hold_ack
        client: aiomqtt.Client

        def handled(message: aiomqtt.Message) -> None:
            if message.qos > 0:
                hold(lambda: self._ack(client, message))

        client = make_client(
            self.params,
            handler=self._on_message,
            handled=handled,
            receive_maximum=self._receive_maximum,
        )
        return client

    def _ack(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """A held PUBACK, sent on the connection the message came on, if it is still up (a
        message id means nothing on the next one; the broker redelivers instead)."""
        if self._client is client and self.connected.is_set():
            ack(client, message)
            self.acks_sent += 1
        else:
            self.acks_stale += 1

    async def run(self) -> None:
        failing = False
        while True:
            client = self._new_client()
            try:
                async with client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    honour_cancel()
                    self._client = client
                    self.connected.set()
                    self._on_state(True)
                    if failing:
                        log.info("MQTT %s:%s reconnected", self.params.host, self.params.port)
                    else:
                        log.info(
                            "MQTT connected to %s:%s, subscribed to %s",
                            self.params.host,
                            self.params.port,
                            ", ".join(self.topics),
                        )
                    failing = False
                    self._backoff.reset()
                    # Messages are dispatched as they arrive (see _dispatching_queue); this
                    # loop only waits for the connection to end, which raises MqttError.
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                if not failing:
                    log.warning(
                        "MQTT %s:%s unavailable: %s (retrying quietly)",
                        self.params.host,
                        self.params.port,
                        exc,
                    )
                failing = True
            finally:
                self._client = None
                if self.connected.is_set():
                    self.connected.clear()
                    self._on_state(False)
            honour_cancel()
            self.reconnects += 1
            await asyncio.sleep(self._backoff.next_delay())
