"""LoRaWAN network-server envelopes (ChirpStack v4, The Things Stack v3) as the gateway
ingests them: (topic, payload) into ``parse_chirpstack`` / ``parse_tts``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from drivers.lorawan.envelopes import EnvelopeError, parse_chirpstack, parse_tts
from fuzz.core import Reasons, Target
from fuzz.mutate import hostile_bytes, hostile_json, mostly

EUI = "0101010101010101"
_CS_APP = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device"
CS_TOPICS = [f"{_CS_APP}/{EUI}/event/{e}" for e in ("up", "up", "up", "status", "join", "ack")]
TTS_TOPICS = ["v3/citygate-parking@shandan/devices/berth-0042/up", "v3/app/devices/d1/up"]

_RX = [
    {"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -101, "snr": 3.5},
    {"gatewayId": "0016c001f153a14d", "uplinkId": 4217106256, "rssi": -87, "snr": 7.25},
]
CS_DOCS: list[dict[str, Any]] = [
    {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-11-28T01:02:03.123456789+00:00",
        "deviceInfo": {"applicationId": "17c82e96", "deviceName": "berth-0042", "devEui": EUI},
        "devAddr": "00189440",
        "fCnt": 10,
        "fPort": 1,
        "data": "lQ==",
        "rxInfo": _RX,
    },
    {"deviceInfo": {"devEui": EUI}, "fPort": 2, "fCnt": "4294967295", "data": "AQID"},
    {"deviceInfo": {"devEui": EUI}, "joinServerContext": {"sessionKeyId": "ab"}, "data": "AA=="},
    {"deviceInfo": {"devEui": EUI}, "time": "2026-11-28T09:02:03+08:00", "margin": 7,
     "batteryLevel": 87.5, "externalPowerSource": False},
    {"deviceInfo": {"devEui": EUI}, "devAddr": "01ab2c3d", "time": "2026-11-28T01:02:03Z"},
]  # fmt: skip
TTS_DOCS: list[dict[str, Any]] = [
    {
        "end_device_ids": {"device_id": "berth-0042", "dev_eui": EUI},
        "correlation_ids": ["as:up:01H", "ns:uplink:01H"],
        "received_at": "2026-11-28T01:02:03.123456789Z",
        "uplink_message": {
            "f_port": 1,
            "f_cnt": 10,
            "frm_payload": "lQ==",
            "rx_metadata": [{"rssi": -90, "channel_rssi": -90, "snr": 7.5}],
            "received_at": "2026-11-28T01:02:03.1Z",
        },
    },
    {"end_device_ids": {"dev_eui": EUI}, "uplink_message": {"f_port": 3, "frm_payload": ""}},
]


def _topics(samples: list[str]) -> st.SearchStrategy[str]:
    """Mostly the real topics (the payload is what is fuzzed), else damaged ones."""
    damaged = hostile_bytes([t.encode() for t in samples], max_random=80)
    return mostly(st.sampled_from(samples), damaged.map(lambda b: b.decode("utf-8", "replace")))


def _rejection(parse: Any, case: tuple[str, bytes]) -> Reasons:
    try:
        parse(*case)
    except EnvelopeError as exc:
        return (exc.reason,)
    return ()


def check_chirpstack(case: tuple[str, bytes]) -> Reasons:
    return _rejection(parse_chirpstack, case)


def check_tts(case: tuple[str, bytes]) -> Reasons:
    return _rejection(parse_tts, case)


TARGETS = (
    Target(
        "lorawan.chirpstack",
        "drivers.lorawan.envelopes.parse_chirpstack",
        st.tuples(_topics(CS_TOPICS), hostile_json(CS_DOCS)),
        check_chirpstack,
    ),
    Target(
        "lorawan.tts",
        "drivers.lorawan.envelopes.parse_tts",
        st.tuples(_topics(TTS_TOPICS), hostile_json(TTS_DOCS)),
        check_tts,
    ),
)
