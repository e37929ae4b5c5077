"""Payload builders: one per envelope the gateway ingests (ChirpStack v4, The Things Stack v3,
NB-IoT binary frames, car-park counts), plus the networks' stable identities."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from drivers.sensors import bosch, nwave
from drivers.sensors.registry import CODECS
from gateway.directory.town import SiteKind, Town

# ChirpStack / TTS identities: stable infrastructure, not seeded traffic.
_NS = uuid.UUID("6f1c2e4a-9b57-4d0e-8c3a-2a7f5e1d9b40")
TENANT_ID: Final = str(uuid.uuid5(_NS, "chirpstack/tenant/citygate"))
TTS_APP: Final = "shandan-parking"
TTS_TENANT: Final = "citygate"
_PROFILE_NAMES: Final = {nwave.MODEL: "Nwave NPS405", bosch.MODEL: "Bosch PLS TPS110"}
_GATEWAYS: Final = (
    ("ac1f09fffe0a1001", "shandan-gw-gulou"),
    ("ac1f09fffe0a1002", "shandan-gw-xicheng"),
    ("ac1f09fffe0a1003", "shandan-gw-dongcheng"),
    ("ac1f09fffe0a1004", "shandan-gw-nancheng"),
)
_CN470_BASE_HZ: Final = 470_300_000  # CN470-510 uplink channel 0; 200 kHz spacing
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True, slots=True)
class Radio:
    """One receiving gateway's view of an uplink."""

    gateway_id: str  # EUI, 16 hex
    gateway_name: str  # TTS gateway id
    rssi: int
    snr: float


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def chirpstack_uplink(
    *,
    application_id: str,
    dev_eui: str,
    device_name: str,
    profile_name: str,
    dev_addr: str,
    f_cnt: int,
    f_port: int,
    data: bytes,
    time: float,
    dedup_id: str,
    radio: Sequence[Radio],
    frequency: int,
    spreading_factor: int,
    data_b64: str | None = None,
) -> tuple[str, bytes]:
    """A ChirpStack v4 ``event/up`` as its MQTT integration publishes it (protobuf-JSON,
    camelCase; ``fCnt`` 0 is omitted like protobuf does). *data_b64* overrides the encoded
    payload, to send broken base64."""
    doc: dict[str, Any] = {
        "deduplicationId": dedup_id,
        "time": _utc(time).isoformat(timespec="microseconds"),
        "deviceInfo": {
            "tenantId": TENANT_ID,
            "tenantName": "citygate",
            "applicationId": application_id,
            "applicationName": "shandan-parking",
            "deviceProfileId": str(uuid.uuid5(_NS, f"chirpstack/profile/{profile_name}")),
            "deviceProfileName": profile_name,
            "deviceName": device_name,
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
        },
        "devAddr": dev_addr,
        "adr": True,
        "dr": 12 - spreading_factor,  # CN470: DR0 = SF12 .. DR5 = SF7
        "fPort": f_port,
        "data": base64.b64encode(data).decode() if data_b64 is None else data_b64,
        "rxInfo": [
            {"gatewayId": r.gateway_id, "rssi": r.rssi, "snr": r.snr, "crcStatus": "CRC_OK"}
            for r in radio
        ],
        "txInfo": {
            "frequency": frequency,
            "modulation": {
                "lora": {
                    "bandwidth": 125000,
                    "spreadingFactor": spreading_factor,
                    "codeRate": "CR_4_5",
                }
            },
        },
    }
    if f_cnt:
        doc["fCnt"] = f_cnt
    topic = f"application/{application_id}/device/{dev_eui}/event/up"
    return topic, _json(doc)


def tts_uplink(
    *,
    device_id: str,
    dev_eui: str,
    dev_addr: str,
    f_cnt: int,
    f_port: int,
    data: bytes,
    time: float,
    correlation_ids: Sequence[str],
    radio: Sequence[Radio],
    frequency: int,
    spreading_factor: int,
    app: str = TTS_APP,
    tenant: str = TTS_TENANT,
    data_b64: str | None = None,
) -> tuple[str, bytes]:
    """A The Things Stack v3 ``up`` message (snake_case, DevEUI upper-case, 64-bit numbers as
    strings, ``f_cnt`` 0 omitted)."""
    stamp = _utc(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    up: dict[str, Any] = {
        "f_port": f_port,
        "frm_payload": base64.b64encode(data).decode() if data_b64 is None else data_b64,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": r.gateway_name, "eui": r.gateway_id.upper()},
                "time": stamp,
                "rssi": r.rssi,
                "channel_rssi": r.rssi,
                "snr": r.snr,
            }
            for r in radio
        ],
        "settings": {
            "data_rate": {
                "lora": {
                    "bandwidth": 125000,
                    "spreading_factor": spreading_factor,
                    "coding_rate": "4/5",
                }
            },
            "frequency": str(frequency),
        },
        "received_at": stamp,
    }
    if f_cnt:
        up["f_cnt"] = f_cnt
    doc = {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": app},
            "dev_eui": dev_eui.upper(),
            "dev_addr": dev_addr.upper(),
        },
        "correlation_ids": list(correlation_ids),
        "received_at": stamp,
        "uplink_message": up,
    }
    return f"v3/{app}@{tenant}/devices/{device_id}/up", _json(doc)


def nbiot_uplink(device_id: str, frame: bytes) -> tuple[str, bytes]:
    """NB-IoT sensors publish their raw binary frame on ``nbiot/{device_id}/up``."""
    return f"nbiot/{device_id}/up", frame


def carpark_counts(
    site_id: str,
    *,
    time: datetime,
    seq: int,
    entered: int,
    exited: int,
    occupied: int | None = None,
) -> tuple[str, bytes]:
    """A car-park controller's report (``CarParkCountMessage`` in
    gateway/services/parking/ingest.py); the time keeps the controller's local offset, as such
    controllers send it."""
    doc: dict[str, Any] = {
        "time": time.isoformat(timespec="seconds"),
        "seq": seq,
        "entered": entered,
        "exited": exited,
    }
    if occupied is not None:
        doc["occupied"] = occupied
    return f"citygate/carpark/{site_id}/counts", _json(doc)


def _ulid(t: float, rng: random.Random) -> str:
    """A ULID (TTS correlation ids use them): 48-bit ms time + 80 random bits, Crockford."""
    value = (int(t * 1000) & (2**48 - 1)) << 80 | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def tts_site(town: Town) -> str | None:
    """The on-street segment whose sensors go through The Things Stack instead of ChirpStack:
    the last (by id) whose sensors are all LoRaWAN, so both network servers carry traffic."""
    berth_site = {b.id: b.site for b in town.berths}
    transports: dict[str, set[str]] = {}
    for s in town.sensors:
        codec = CODECS.get(s.model)
        site = berth_site.get(s.berth)
        if codec is not None and site is not None:
            transports.setdefault(site, set()).add(codec.transport)
    candidates = [
        site.id
        for site in town.sites
        if site.kind is SiteKind.ON_STREET and transports.get(site.id) == {"lorawan"}
    ]
    return max(candidates) if candidates else None
