"""Configuration: one TOML file plus ``CITYGATE_<SECTION>__<KEY>`` environment overrides.

Validated once at start (fail fast); every error names the offending key. Secrets (passwords,
tokens) may come from the environment only, so a config file can be shared without leaking them.
Every key is documented in docs/configuration.md.

Every command finds its file the same way (``find_config``): ``--config FILE``, then
``$CITYGATE_CONFIG``, then ``./citygate.toml``, then ``.demo/citygate.toml`` (written by
``citygate demo``), so the CLI reaches the gateway the user started. Relative paths inside a
file are relative to the file's directory, so a file means the same from any working directory.

Over 400 lines on purpose: the models, how a file is found and read, and how one is written
(``settings_to_toml``, for the demo) are one contract; splitting them would scatter the rules
for paths and secrets that each of them must apply the same way.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tariffcore.zones import zone_named

ENV_PREFIX = "CITYGATE_"
CONFIG_ENV = "CITYGATE_CONFIG"
LOCAL_CONFIG = Path("citygate.toml")
DEMO_CONFIG = Path(".demo") / "citygate.toml"
SEARCH_ORDER = f"--config FILE, ${CONFIG_ENV}, ./{LOCAL_CONFIG}, ./{DEMO_CONFIG}"
SQLITE_PREFIX = "sqlite+aiosqlite:///"

Port = Annotated[int, Field(ge=0, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiConfig(_Section):
    host: str = Field("127.0.0.1", description="address the HTTP API binds to")
    port: Port = Field(8080, description="HTTP API port (0 = pick a free one)")
    tls_cert: Path | None = Field(None, description="PEM certificate; enables HTTPS with tls_key")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert")
    tls_handshake_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a client must finish its TLS handshake within this long of connecting, "
        "else the connection is closed (only with tls_cert)",
    )
    metrics_token_required: bool = Field(
        True,
        description="GET /metrics needs a bearer token of role inspector, operator or admin "
        "(false: anyone who reaches the port may scrape it)",
    )
    sse_keepalive_s: float = Field(15.0, gt=0, description="comment line sent on idle SSE streams")
    max_body_bytes: int = Field(1_048_576, gt=0, description="larger request bodies get 413")
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a client must send its whole request head (line and headers) within this "
        "long of connecting or of its first byte after a keep-alive pause, else it is cut off",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="a request body must arrive whole within this long of its headers: 408, "
        "then the connection is closed",
    )
    max_unauthenticated_bodies: int = Field(
        16,
        ge=1,
        le=100_000,
        description="request bodies without a bearer token read at once; more get 503 "
        "with Retry-After (memory: this times max_body_bytes)",
    )
    max_authenticated_bodies: int = Field(
        64,
        ge=1,
        le=100_000,
        description="request bodies with a bearer token (not yet verified) read at once; "
        "more get 503 with Retry-After",
    )
    rate_limit_per_s: float = Field(
        10.0,
        ge=0,
        le=100_000,
        description="public requests per second per client address (token bucket; 0 = off); "
        "over it: 429 with Retry-After",
    )
    rate_limit_burst: int = Field(
        40, ge=1, le=1_000_000, description="public requests a client may make at once"
    )
    rate_limit_clients: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="client addresses the rate limit remembers (least recently seen dropped "
        "first; an IPv6 client is its /64)",
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client for the rate limit (empty: the peer address is the client)",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {net!r}") from None
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


class DatabaseConfig(_Section):
    url: str = Field(
        "sqlite+aiosqlite:///citygate.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://...",
    )
    echo: bool = Field(False, description="log every SQL statement (debugging only)")

    @field_validator("url")
    @classmethod
    def _supported(cls, v: str) -> str:
        if not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class MqttConfig(_Section):
    host: str = Field("127.0.0.1", description="broker host")
    port: Port = Field(1883, description="broker port (8883 is usual with TLS)")
    username: str | None = Field(None, description="broker user name")
    password: SecretStr | None = Field(None, description="broker password (environment only)")
    tls: bool = Field(False, description="connect with TLS; never falls back to plaintext")
    ca_file: Path | None = Field(
        None, description="CA bundle to verify the broker (default: system)"
    )
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = Field(None, description="client key for mutual TLS")
    client_id: str = Field("citygate", min_length=1, max_length=64, description="MQTT client id")
    shared_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="MQTT 5 shared subscription group: instances with the same group share load",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive")
    reconnect_max_s: float = Field(
        4.0,
        gt=0,
        le=300,
        description="longest wait between reconnect attempts (jittered): a broker that is "
        "back is found within about this long",
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "5", description="MQTT protocol version; shared subscriptions want 5"
    )
    session_expiry_s: int = Field(
        86400, ge=0, description="persistent session lifetime at the broker (QoS 1 kept offline)"
    )
    chirpstack_topic: str = Field(
        "application/+/device/+/event/+", description="ChirpStack v4 integration events"
    )
    tts_topic: str = Field("v3/+/devices/+/up", description="The Things Stack v3 uplinks")
    nbiot_topic: str = Field("nbiot/+/up", description="NB-IoT sensors' binary frames")
    carpark_topic: str = Field(
        "citygate/carpark/+/counts", description="car-park controllers' entry/exit counts (JSON)"
    )
    max_payload_bytes: int = Field(65536, gt=0, description="larger messages are rejected")
    receive_maximum: int = Field(
        2000,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum: uplinks the broker may send before their PUBACKs "
        "(which wait for the commit of their state). On 3.1.1 the broker's own "
        "max_inflight_messages decides: raise it from mosquitto's 20",
    )

    @model_validator(mode="after")
    def _tls_files(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file given but tls = false: set tls = true")
        return self


class TownConfig(_Section):
    file: Path | None = Field(None, description="town file (TOML); default: shipped sample town")
    timezone: str = Field(
        "Asia/Shanghai",
        description="the town's time zone (IANA name), used when the town file names none",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        zone_named(v)  # ValueError: unknown time zone
        return v


class TariffsConfig(_Section):
    file: Path | None = Field(
        None, description="posted tariffs (TOML); default: the shipped sample tariffs"
    )
    max_stay_days: int = Field(
        366,
        gt=0,
        le=3660,
        description="stays longer than this are not priced (a quote answers 422)",
    )


class OccupancyConfig(_Section):
    silence_factor: float = Field(
        2.5, ge=1.0, le=100, description="heartbeat periods of silence before comms_lost"
    )
    controller_timeout_s: int = Field(
        900, gt=0, description="car-park controller silence before its counts go stale"
    )
    sweep_interval_s: float = Field(5.0, gt=0, description="how often silence is checked")
    persist_interval_s: float = Field(
        1.0, gt=0, le=60, description="write-behind interval of states when nothing waits on it"
    )
    commit_delay_s: float = Field(
        0.005,
        ge=0,
        le=1,
        description="how long a write-behind commit waits to gather more uplinks before it "
        "runs; their PUBACKs go out when it has committed",
    )
    shared: Literal["auto", "on", "off"] = Field(
        "auto",
        description="several instances share the berths: each uplink is decided under its "
        "berth row's lock in PostgreSQL and every instance follows (docs/operations.md); "
        "auto = on with PostgreSQL and an [mqtt] shared_group",
    )


class BusConfig(_Section):
    queue_size: int = Field(10_000, ge=10, description="per-subscriber queue bound")


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    json_format: bool = Field(False, alias="json", description="one JSON object per line")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TelemetryConfig(_Section):
    url: str | None = Field(
        None,
        description="InfluxDB base URL (http:// or https://); unset = keep points in the spool",
    )
    mode: Literal["v2", "v1"] = Field(
        "v2", description="v2: /api/v2/write (InfluxDB 2.x/3.x, 1.8+); v1: /write (InfluxDB 1.x)"
    )
    org: str = Field("", description="v2 organisation")
    bucket: str = Field("citygate", description="v2 bucket")
    database: str = Field("citygate", description="v1 database")
    retention_policy: str = Field("", description="v1 retention policy (empty = default)")
    token: SecretStr | None = Field(None, description="v2 API token (environment only)")
    username: str | None = Field(None, description="v1 user name")
    password: SecretStr | None = Field(None, description="v1 password (environment only)")
    ca_file: Path | None = Field(None, description="CA bundle to verify an https:// server")
    gzip: bool = Field(True, description="gzip request bodies")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a write slower than this is retried")
    batch_size: int = Field(5000, ge=1, le=100_000, description="points per write")
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="a batch is written at the latest after this long"
    )
    replay_rate: float = Field(
        50_000, gt=0, description="points/s at most when replaying a backlog after an outage"
    )
    spool_dir: Path = Field(Path("telemetry-spool"), description="where the durable spool lives")
    spool_max_bytes: int = Field(
        512 * 2**20, ge=2**20, description="spool size limit (default holds > 72 h of the town)"
    )
    spool_sync: Literal["normal", "full"] = Field(
        "normal",
        description="normal: durable against a process crash (kill -9); full: also against "
        "power loss, at the cost of an fsync per batch that stalls a busy machine",
    )
    spool_policy: Literal["drop_oldest", "drop_newest"] = Field(
        "drop_oldest", description="when the spool is full: keep the newest or the oldest points"
    )
    health_interval_s: float = Field(
        60.0, gt=0, description="how often the gateway writes its own health as points"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class SessionsConfig(_Section):
    plate_dedup_s: int = Field(
        300,
        ge=0,
        le=86400,
        description="a second read of the same plate and lane within this is a duplicate",
    )
    min_plate_confidence: float = Field(
        0.0, ge=0, le=1, description="plate reads below this confidence are rejected (counted)"
    )


class LanesConfig(_Section):
    gates: Literal["modbus", "none"] = Field(
        "modbus",
        description="modbus: command the lanes' barrier gates over their buses; none: no gate "
        "is driven here (every raise fails at once and the lane asks for an operator; on "
        "PostgreSQL it is relayed to the instance that drives the gate's bus)",
    )
    poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often each gate controller's state is read"
    )
    recheck_s: float = Field(
        1.0, gt=0, le=60, description="how often lanes waiting for a payment re-price the stay"
    )
    serial_ports: dict[str, str] = Field(
        default_factory=dict,
        description="this host's device for a serial port the town's lanes name, e.g. "
        '{ "/dev/ttyUSB0" = "/dev/serial/by-id/usb-FTDI_..." }: the town (and its lanes) is '
        "shared by every instance, the device name is the host's",
    )

    @field_validator("serial_ports")
    @classmethod
    def _absolute_devices(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [
            f"{k} = {v}" for k, v in value.items() if not (k.startswith("/") and v.startswith("/"))
        ]
        if bad:
            raise ValueError(f"serial ports are absolute device paths: {', '.join(bad[:3])}")
        return value


class PaymentsConfig(_Section):
    provider: Literal["external", "fake"] = Field(
        "external",
        description="external: the app's payment backend collects the money and records it "
        "here with its transaction reference (provider_ref); fake: an in-memory provider for "
        "demos and tests (records payments no one paid)",
    )


class EnforcementConfig(_Section):
    file: Path | None = Field(
        None, description="enforcement rules (TOML); default: the shipped sample rules"
    )
    sweep_interval_s: float = Field(
        60.0, gt=0, description="how often long stays (zombie cars, no-parking) are checked"
    )


class CasesConfig(_Section):
    url: str | None = Field(
        None,
        description="case system endpoint receiving reports (POST JSON); unset = reports stay "
        "in the outbox until it is set",
    )
    secret: SecretStr | None = Field(
        None, description="shared HMAC-SHA256 secret for reports and callbacks (environment only)"
    )
    ca_file: Path | None = Field(None, description="CA bundle to verify an https:// case system")
    timeout_s: float = Field(
        10.0, gt=0, le=120, description="a delivery slower than this is retried"
    )
    max_backoff_s: float = Field(
        300.0,
        gt=0,
        description="longest wait between delivery attempts while the case system is down",
    )
    callback_tolerance_s: int = Field(
        300,
        ge=1,
        description="signed callbacks older or newer than this are refused (replay guard)",
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class OcppConfig(_Section):
    enabled: bool = Field(True, description="run the OCPP central system for the chargers")
    host: str = Field("127.0.0.1", description="address the OCPP websocket server binds to")
    port: Port = Field(9000, description="OCPP port: ws(s)://host:port/ocpp/{charge_point_id}")
    tls_cert: Path | None = Field(
        None, description="PEM certificate: wss:// (security profile 2) with tls_key"
    )
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert")
    tls_handshake_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a charger must finish its TLS handshake within this long of connecting, "
        "else the connection is closed (only with tls_cert)",
    )
    heartbeat_s: int = Field(
        300, ge=10, le=86400, description="heartbeat interval given to chargers at boot"
    )
    silence_factor: float = Field(
        2.0, ge=1.0, le=100, description="heartbeat periods of silence before a probe"
    )
    durable_reply_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="how long the answer to a transaction message (start, stop, a meter value "
        "of a transaction) waits for its record to be committed; past it the charger gets a "
        "CallError InternalError and sends the message again",
    )
    command_timeout_s: float = Field(
        30.0, gt=0, le=300, description="how long a command waits for the charger's answer"
    )
    probe_timeout_s: float = Field(
        10.0, gt=0, le=300, description="how long a silent charger has to answer its probe"
    )
    watch_interval_s: float = Field(
        5.0, gt=0, le=300, description="how often silent chargers, outages and faults are checked"
    )
    faulted_report_after_s: int = Field(
        3600, ge=60, description="a charger faulted this long raises a maintenance report"
    )
    offline_report_after_s: int = Field(
        3600, ge=60, description="a charger offline this long raises a maintenance report"
    )
    tariff_file: Path | None = Field(
        None, description="posted charging tariff (TOML); default: the shipped sample"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> OcppConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


class CamerasConfig(_Section):
    evidence_dir: Path = Field(
        Path("camera-evidence"), description="where plate cameras' pictures are kept as evidence"
    )
    max_body_bytes: int = Field(
        4_194_304,
        gt=0,
        le=64 * 1_048_576,
        description="larger camera pushes get 413 (replaces [api] max_body_bytes on /cameras/)",
    )
    max_image_bytes: int = Field(
        1_048_576, gt=0, description="a larger picture is not kept (the read is; counted)"
    )
    max_total_bytes: int = Field(
        2 * 1024**3, gt=0, description="evidence kept at most; the oldest pictures go first"
    )
    max_age_days: int = Field(90, ge=1, le=3650, description="pictures older than this are pruned")
    prune_interval_s: float = Field(600.0, gt=0, description="how often evidence is pruned")
    clock_ahead_s: int = Field(
        300,
        ge=0,
        description="a read timed further ahead than this is kept with its receive time (flagged)",
    )
    max_offline_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="a read timed older than this (a camera clock far off) is kept with its "
        "receive time (flagged)",
    )


class BodycamsConfig(_Section):
    """The GB/T 28181 signalling platform the officers' body cams register with (no media)."""

    enabled: bool = Field(True, description="run the SIP platform for the body cams")
    host: str = Field("127.0.0.1", description="address the SIP listeners (UDP and TCP) bind to")
    sip_port: Port = Field(5060, description="SIP port, UDP and TCP alike (0 = pick a free one)")
    advertised_host: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9.:\[\]-]+$",
        description="the address cams reach the platform at, put in the Via and Contact of its "
        "requests (a NAT's public address); default: the bound host, or when bound to 0.0.0.0 "
        "the local address the route to each cam leaves from",
    )
    platform_id: str = Field(
        "62072500082000000001",
        pattern=r"^[0-9]{20}$",
        description="the platform's 20-digit GB/T 28181 id (area 62072500, industry 08, "
        "type 200 central signalling server)",
    )
    realm: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="digest realm; default: the first 10 digits of platform_id",
    )
    keepalive_interval_s: float = Field(
        60.0, gt=0, le=3600, description="the cams' keepalive interval"
    )
    keepalive_count: int = Field(
        3, ge=1, le=100, description="missed keepalives before a cam is shown offline"
    )
    position_interval_s: int = Field(
        5, ge=1, le=3600, description="MobilePosition interval asked in the SUBSCRIBE"
    )
    register_expires_min_s: int = Field(
        60, ge=1, description="a shorter registration Expires gets 423 Interval Too Brief"
    )
    register_expires_max_s: int = Field(
        3600, ge=1, description="a longer registration Expires is granted this long"
    )
    nonce_ttl_s: float = Field(300.0, gt=0, le=86400, description="how long a nonce is good")
    subscription_expires_s: int = Field(
        600, ge=30, le=86400, description="MobilePosition SUBSCRIBE Expires (refreshed before)"
    )
    max_message_bytes: int = Field(
        65536, ge=1024, le=1_048_576, description="larger SIP messages are refused (counted)"
    )
    per_source_rate_per_s: float = Field(
        50.0,
        gt=0,
        description="messages per second one source address (host and port) may send, "
        "dropped before parsing past it",
    )
    per_source_burst: int = Field(200, ge=1, description="burst allowed above that rate")
    per_device_rate_per_s: float = Field(
        20.0, gt=0, description="messages per second a registered cam may send from its address"
    )
    per_device_burst: int = Field(100, ge=1, description="burst allowed above that rate")
    per_host_rate_per_s: float = Field(
        200.0,
        gt=0,
        description="messages per second from one host that are not a registered cam's (all "
        "unregistered cams behind a NAT share it)",
    )
    per_host_burst: int = Field(1000, ge=1, description="burst allowed above that rate")
    auth_failures_before_slowdown: int = Field(
        5, ge=1, le=1000, description="failed digests in a row before a cam is slowed down"
    )
    slowdown_s: float = Field(
        60.0, ge=0, le=86400, description="how long a slowed-down cam gets 403 without challenge"
    )
    query_timeout_s: float = Field(
        32.0, gt=0, le=300, description="how long a query to a cam waits for its answer"
    )
    persist_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often the cams' live state is written to the database"
    )
    persist_routine_s: float = Field(
        15.0,
        ge=0,
        le=300,
        description="a routine change (a keepalive's time, a new position) is written once "
        "it is this old; the API writes everything before it answers",
    )

    @property
    def effective_realm(self) -> str:
        return self.realm or self.platform_id[:10]

    @model_validator(mode="after")
    def _expires(self) -> BodycamsConfig:
        if self.register_expires_min_s > self.register_expires_max_s:
            raise ValueError("register_expires_min_s must not exceed register_expires_max_s")
        return self


class DronesConfig(_Section):
    """The patrol drones: presence, alert rules, commands, and the two links' settings (DJI
    Cloud API over the [mqtt] broker, MAVLink over UDP)."""

    enabled: bool = Field(True, description="run the drone service (state, alerts, commands)")
    presence_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="a drone silent this long is shown with link lost"
    )
    link_lost_after_s: float = Field(
        30.0, gt=0, le=3600, description="a drone silent this long raises the link_lost alert"
    )
    low_battery_percent: float = Field(
        30.0, ge=0, le=100, description="below this battery level the low_battery alert is raised"
    )
    battery_hysteresis: float = Field(
        5.0, ge=0, le=50, description="percentage points above the threshold that clear it"
    )
    area_margin_m: float = Field(
        15.0,
        ge=0,
        le=1000,
        description="metres outside its patrol area before left_area is raised (and inside "
        "before it clears): a drone on the boundary does not flap",
    )
    speaker_max_chars: int = Field(
        200, ge=1, le=2000, description="longest loudspeaker text an operator may send"
    )
    default_volume: int = Field(
        80, ge=0, le=100, description="loudspeaker volume when the request gives none (0-100)"
    )
    command_timeout_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description="how long a command may take (every retry of the link included) before it "
        "is recorded as timeout; the API waits this long for the outcome",
    )
    command_retries: int = Field(
        0,
        ge=0,
        le=5,
        description="times the service asks the link again (same command id: never run twice) "
        "after a timeout outcome",
    )
    recent_commands: int = Field(
        10, ge=1, le=100, description="commands shown per drone on GET /api/v1/drones/{id}"
    )
    persist_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often the drones' live state is written to the database"
    )
    dji_share_group: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="MQTT shared-subscription group for the DJI topics ($share/GROUP/...); "
        "None: every instance subscribes plainly",
    )
    dji_ntp_server_host: str = Field(
        "",
        max_length=253,
        pattern=r"^[A-Za-z0-9.:\[\]-]*$",
        description="NTP server (host or IP, port 123) a dock is told to set its clock from "
        "when it asks for its config; empty: none named",
    )
    dji_app_id: str = Field(
        "", max_length=64, description="DJI developer app id a dock's config request is told"
    )
    dji_app_key: SecretStr | None = Field(
        None, description="DJI developer app key for a dock's config request (environment only)"
    )
    dji_app_license: SecretStr | None = Field(
        None,
        description="DJI developer app license for a dock's config request (environment only)",
    )
    dji_reply_timeout_s: float = Field(
        10.0, gt=0, le=300, description="how long a DJI service call waits for services_reply"
    )
    dji_retries: int = Field(
        2, ge=0, le=10, description="DJI service call retries (new tid, same bid) after no reply"
    )
    mavlink_host: str = Field(
        "127.0.0.1",
        description="address the MAVLink UDP endpoint binds to (0.0.0.0 for vehicles or radio "
        "bridges on the network)",
    )
    mavlink_port: Port = Field(14550, description="MAVLink UDP port (0 = pick a free one)")
    mavlink_link_timeout_s: float = Field(
        5.0, gt=0, le=600, description="no HEARTBEAT for this long: the vehicle's link is lost"
    )
    mavlink_ack_timeout_s: float = Field(
        1.5, gt=0, le=120, description="how long a COMMAND_LONG waits for its COMMAND_ACK"
    )
    mavlink_retries: int = Field(
        3, ge=0, le=10, description="COMMAND_LONG resends (confirmation counted up) after no ack"
    )
    mavlink_position_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="GLOBAL_POSITION_INT stream interval asked (SET_MESSAGE_INTERVAL)",
    )
    mavlink_status_interval_s: float = Field(
        5.0, gt=0, le=60, description="SYS_STATUS stream interval asked (SET_MESSAGE_INTERVAL)"
    )

    @model_validator(mode="after")
    def _timeouts(self) -> DronesConfig:
        if self.presence_timeout_s > self.link_lost_after_s:
            raise ValueError("presence_timeout_s must not exceed link_lost_after_s")
        if self.low_battery_percent + self.battery_hysteresis > 100:
            raise ValueError("low_battery_percent + battery_hysteresis must not exceed 100")
        return self


class BulkImportConfig(_Section):
    max_file_bytes: int = Field(
        4_194_304,
        gt=0,
        le=1_073_741_824,
        description="a bulk import file (CSV or TOML; `citygate import`, POST /api/v1/import) "
        "larger than this is refused whole (the API answers 413)",
    )
    max_rows: int = Field(
        20_000, gt=0, le=1_000_000, description="a bulk import file with more rows is refused whole"
    )


class DemoConfig(_Section):
    embedded_broker: bool = Field(
        False, description="start a local broker (Mosquitto if installed, else in-process)"
    )
    broker: Literal["auto", "mosquitto", "amqtt"] = Field(
        "auto",
        description="which embedded broker: auto (Mosquitto if installed, else amqtt "
        "in-process), or force one",
    )


class CommissioningConfig(_Section):
    """Thresholds of ``citygate commission`` and ``POST /api/v1/commission/{id}``."""

    min_rssi_dbm: float = Field(
        -115.0,
        ge=-150,
        le=0,
        description="a sensor's last uplink must be received at least this strong",
    )
    min_snr_db: float = Field(
        -10.0,
        ge=-30,
        le=30,
        description="a LoRaWAN sensor's last uplink must have at least this SNR",
    )
    min_battery_pct: float = Field(
        20.0,
        ge=0,
        le=100,
        description="a sensor's battery (network server's report) must be at least this",
    )
    min_battery_mv: int = Field(
        3000,
        ge=0,
        le=10_000,
        description="a sensor's battery voltage (its heartbeat), where no percentage is reported",
    )
    max_last_seen_age_s: float = Field(
        900.0, gt=0, le=7 * 86400, description="a sensor must have been heard within this long"
    )
    max_first_status_age_s: float = Field(
        3600.0,
        gt=0,
        le=7 * 86400,
        description="its berth's status must have been reported within this long",
    )
    heartbeat_grace: float = Field(
        2.0,
        ge=1,
        le=100,
        description="a charger must have been heard within its heartbeat interval times this",
    )
    max_test_push_age_s: float = Field(
        900.0,
        gt=0,
        le=7 * 86400,
        description="a plate camera's test push must have been received within this long",
    )
    gate_timeout_s: float = Field(
        3.0,
        gt=0,
        le=60,
        description="how long a gate controller probe waits for the bus and for each answer",
    )


class RetentionConfig(_Section):
    audit_days: int = Field(
        730,
        ge=0,
        le=36500,
        description="audit entries older than this many days are pruned (0 = kept for ever; "
        "otherwise at least 180: network logs are kept six months or more)",
    )
    changes_days: int = Field(
        30,
        ge=1,
        le=36500,
        description="changes of the change feed older than this many days are pruned (never "
        "one of the newest changes_keep)",
    )
    changes_keep: int = Field(
        10_000, ge=1, le=10_000_000, description="the newest changes of the feed always kept"
    )
    interval_s: float = Field(3600.0, gt=0, le=7 * 86400, description="how often to prune")
    batch: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="rows deleted per transaction (short transactions: writers get in between)",
    )

    @field_validator("audit_days")
    @classmethod
    def _six_months(cls, v: int) -> int:
        if 0 < v < 180:
            raise ValueError("must be 0 (kept for ever) or at least 180 days")
        return v


class Settings(_Section):
    api: ApiConfig = ApiConfig()
    database: DatabaseConfig = DatabaseConfig()
    mqtt: MqttConfig = MqttConfig()
    town: TownConfig = TownConfig()
    tariffs: TariffsConfig = TariffsConfig()
    occupancy: OccupancyConfig = OccupancyConfig()
    bus: BusConfig = BusConfig()
    log: LogConfig = LogConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    sessions: SessionsConfig = SessionsConfig()
    lanes: LanesConfig = LanesConfig()
    payments: PaymentsConfig = PaymentsConfig()
    enforcement: EnforcementConfig = EnforcementConfig()
    cases: CasesConfig = CasesConfig()
    ocpp: OcppConfig = OcppConfig()
    cameras: CamerasConfig = CamerasConfig()
    bodycams: BodycamsConfig = BodycamsConfig()
    drones: DronesConfig = DronesConfig()
    retention: RetentionConfig = RetentionConfig()
    bulk_import: BulkImportConfig = BulkImportConfig()
    commissioning: CommissioningConfig = CommissioningConfig()
    demo: DemoConfig = DemoConfig()

    @model_validator(mode="after")
    def _shared_needs_postgres(self) -> Settings:
        if self.occupancy.shared == "on" and not self.database.url.startswith("postgresql"):
            raise ValueError("occupancy.shared = on needs a PostgreSQL [database] url")
        return self

    @property
    def shared_berths(self) -> bool:
        """Whether uplinks are decided under row locks (several instances, one database)."""
        o = self.occupancy.shared
        postgres = self.database.url.startswith("postgresql")
        return o == "on" or (o == "auto" and postgres and self.mqtt.shared_group is not None)


# Keys that must never be written in a config file (they may leak with it).
SECRET_KEYS = {
    ("mqtt", "password"),
    ("telemetry", "token"),
    ("telemetry", "password"),
    ("cases", "secret"),
    ("drones", "dji_app_key"),
    ("drones", "dji_app_license"),
}


class ConfigError(Exception):
    """Bad configuration; the message names every offending key."""


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            continue
        section, key = rest.split("__", 1)
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def _coerce(value: str) -> Any:
    """Environment values are strings; TOML literals (true, 42, "x") are honoured."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


@dataclass(frozen=True)
class ConfigSource:
    """The file a command uses and how it was found (for the one line every command prints)."""

    path: Path | None
    found_by: str  # "--config", CONFIG_ENV, "./citygate.toml", "./.demo/citygate.toml", "none"

    def describe(self) -> str:
        if self.path is None:
            return f"no config file (searched {SEARCH_ORDER}): defaults + environment"
        return f"config {self.path} (from {self.found_by})"


def find_config(
    explicit: Path | None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    skip: tuple[Path, ...] = (),
    use_env: bool = True,
) -> ConfigSource:
    """The search order: ``--config``, ``$CITYGATE_CONFIG``, ``./citygate.toml``,
    ``./.demo/citygate.toml``. A file named explicitly (flag or variable) must exist: a typo
    is an error, never a silent fall-through to another file. *skip* leaves out candidates
    found by looking, and *use_env* False ignores ``$CITYGATE_CONFIG`` (the demo reads only
    the file it is given: it must not run on a deployment's database, nor read its own file)."""
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    named: list[tuple[Path, str]] = []
    if explicit is not None:
        named.append((explicit, "--config"))
    elif use_env and env.get(CONFIG_ENV):
        named.append((Path(env[CONFIG_ENV]), f"${CONFIG_ENV}"))
    for path, how in named:
        full = path if path.is_absolute() else here / path
        if not full.is_file():
            raise ConfigError(f"{path} (from {how}): no such file")
        return ConfigSource(full.resolve(), how)
    for rel in (LOCAL_CONFIG, DEMO_CONFIG):
        full = here / rel
        if rel in skip or not full.is_file():
            continue
        return ConfigSource(full.resolve(), f"./{rel}")
    return ConfigSource(None, "none")


def _path_keys(settings_cls: type[BaseModel] = Settings) -> set[tuple[str, str]]:
    """(section, key) of every key holding a file or directory path."""
    out = set()
    for section, field in settings_cls.model_fields.items():
        sub = field.annotation
        assert isinstance(sub, type) and issubclass(sub, BaseModel)
        for key, f in sub.model_fields.items():
            if f.annotation in (Path, Path | None):
                out.add((section, f.alias or key))
    return out


PATH_KEYS = _path_keys()


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a file are relative to the file's directory (the SQLite file of
    ``[database] url`` too); environment values stay relative to the working directory."""
    for section, key in PATH_KEYS:
        sect = data.get(section)
        if isinstance(sect, dict) and isinstance(sect.get(key), str):
            value = Path(sect[key]).expanduser()
            sect[key] = str(value if value.is_absolute() else base / value)
    db = data.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        url: str = db["url"]
        if url.startswith(SQLITE_PREFIX):
            rest = url[len(SQLITE_PREFIX) :]
            file, sep, query = rest.partition("?")
            if file and file != ":memory:" and not Path(file).is_absolute():
                db["url"] = f"{SQLITE_PREFIX}{base / file}{sep}{query}"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read *path* (optional), apply environment overrides, validate. Raises ConfigError."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for section, key in SECRET_KEYS:
            sect = data.get(section)
            if isinstance(sect, dict) and key in sect:
                raise ConfigError(
                    f"{path}: [{section}] {key} is a secret: set it in the environment as "
                    f"{ENV_PREFIX}{section.upper()}__{key.upper()}, not in the file"
                )
        _resolve_paths(data, path.resolve().parent)
    for section, keys in _env_overrides(env).items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key, value in keys.items():
            target[key] = _coerce(value) if (section, key) not in SECRET_KEYS else value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"]
            key = f"[{loc[0]}] {'.'.join(str(p) for p in loc[1:])}" if len(loc) > 1 else str(loc[0])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"  {key.strip()}: {msg}")
        raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(lines)) from exc


def describe(settings_cls: type[BaseModel] = Settings) -> list[tuple[str, str, str, str]]:
    """(section, key, default, description) for every key: the source of the config docs."""
    rows: list[tuple[str, str, str, str]] = []
    for section, field in settings_cls.model_fields.items():
        sub = field.annotation
        assert isinstance(sub, type) and issubclass(sub, BaseModel)
        for key, f in sub.model_fields.items():
            name = f.alias or key
            default = f.get_default(call_default_factory=True)
            shown = "(secret, env only)" if (section, name) in SECRET_KEYS else repr(default)
            rows.append((section, name, shown, f.description or ""))
    return rows


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted (they may hold "/" or ".")
        return (
            "{ "
            + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def settings_to_toml(settings: Settings, base: Path, header: str = "") -> str:
    """The keys of *settings* that differ from the defaults, as a TOML file in *base* (paths
    under *base* written relative to it). Secrets are never written: they stay in the
    environment they came from."""
    base = base.resolve()
    data = settings.model_dump(exclude_defaults=True, by_alias=True, exclude_none=True)
    # Where the data lives is always written: a default is relative to the reader's working
    # directory, a value in the file to the file's.
    data.setdefault("database", {})["url"] = settings.database.url
    data.setdefault("telemetry", {})["spool_dir"] = settings.telemetry.spool_dir
    data.setdefault("cameras", {})["evidence_dir"] = settings.cameras.evidence_dir

    def shown(section: str, key: str, value: Any) -> Any:
        if (section, key) in PATH_KEYS:
            p = Path(value).resolve()
            return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)
        if (section, key) == ("database", "url") and str(value).startswith(SQLITE_PREFIX):
            file, sep, query = str(value)[len(SQLITE_PREFIX) :].partition("?")
            if file and file != ":memory:":
                p = Path(file).resolve()
                rel = str(p.relative_to(base)) if p.is_relative_to(base) else str(p)
                return f"{SQLITE_PREFIX}{rel}{sep}{query}"
        return value

    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for section, values in data.items():
        keys = {k: v for k, v in values.items() if (section, k) not in SECRET_KEYS}
        if not keys:
            continue
        lines.append(f"\n[{section}]")
        for key, value in keys.items():
            lines.append(f"{key} = {_toml_value(shown(section, key, value))}")
    return "\n".join(lines).lstrip("\n") + "\n"
