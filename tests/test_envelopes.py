"""ChirpStack v4 and The Things Stack v3 envelope parsing, including hostile input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.lorawan.envelopes import (
    MAX_PAYLOAD_BYTES,
    EnvelopeError,
    JoinNotice,
    StatusReport,
    Uplink,
    parse_chirpstack,
    parse_tts,
)

EUI = "0101010101010101"
CS_TOPIC = f"application/17c82e96-be03-4f38-aef3-f83d48582d97/device/{EUI}/event/up"
TTS_TOPIC = "v3/citygate-parking@shandan/devices/berth-0042/up"


def cs_up(**overrides: Any) -> dict[str, Any]:
    """A ChirpStack v4 uplink event as its MQTT integration publishes it."""
    doc: dict[str, Any] = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-11-28T01:02:03.123456789+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "berths",
            "deviceProfileName": "nwave-nps405",
            "deviceName": "berth-0042",
            "devEui": EUI,
            "tags": {"site": "shimin-dating"},
        },
        "devAddr": "00189440",
        "adr": True,
        "dr": 5,
        "fCnt": 10,
        "fPort": 1,
        "confirmed": True,
        "data": "lQ==",
        "rxInfo": [
            {"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -101, "snr": 3.5},
            {"gatewayId": "0016c001f153a14d", "uplinkId": 4217106256, "rssi": -87, "snr": 7.25},
            {"gatewayId": "0016c001f153a14e", "uplinkId": 4217106257, "snr": 9.0},
        ],
        "txInfo": {"frequency": 486300000, "modulation": {"lora": {"spreadingFactor": 7}}},
    }
    doc.update(overrides)
    return doc


def tts_up(**overrides: Any) -> dict[str, Any]:
    """A The Things Stack v3 uplink message as its MQTT server publishes it."""
    up: dict[str, Any] = {
        "session_key_id": "AXA50...",
        "f_port": 2,
        "f_cnt": 4711,
        "frm_payload": "ANPY",
        "rx_metadata": [
            {"gateway_ids": {"gateway_id": "gw-a"}, "rssi": -112, "channel_rssi": -112, "snr": -4},
            {"gateway_ids": {"gateway_id": "gw-b"}, "channel_rssi": -95, "snr": 6.5},
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 9}}},
        "received_at": "2026-11-28T01:02:03.5Z",
    }
    doc: dict[str, Any] = {
        "end_device_ids": {
            "device_id": "berth-0042",
            "application_ids": {"application_id": "citygate-parking"},
            "dev_eui": "70B3D57ED0000042",
            "dev_addr": "260B1234",
        },
        "correlation_ids": [
            "as:up:01JD7X0000000000000000000A",
            "gs:uplink:01JD7X0000000000000000000B",
            "ns:uplink:01JD7X0000000000000000000C",
        ],
        "received_at": "2026-11-28T01:02:04Z",
        "uplink_message": up,
    }
    for key, value in overrides.items():
        if key in up:
            up[key] = value
        else:
            doc[key] = value
    return doc


def enc(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def reason_of(fn: Any, topic: str, payload: bytes) -> str:
    with pytest.raises(EnvelopeError) as err:
        fn(topic, payload)
    return str(err.value.reason)


# ------------------------------------------------------------------ ChirpStack


def test_chirpstack_uplink() -> None:
    assert parse_chirpstack(CS_TOPIC, enc(cs_up())) == Uplink(
        network="chirpstack",
        dev_eui=EUI,
        f_port=1,
        f_cnt=10,
        data=b"\x95",
        time=datetime(2026, 11, 28, 1, 2, 3, 123456, tzinfo=UTC),
        rssi=-87.0,
        snr=7.25,
        dedup_id="3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T01:02:03.123456789Z", datetime(2026, 11, 28, 1, 2, 3, 123456, tzinfo=UTC)),
        ("2026-11-28T09:02:03+08:00", datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-28T01:02:03.5z", datetime(2026, 11, 28, 1, 2, 3, 500000, tzinfo=UTC)),
        ("2026-11-27T20:32:03.1-05:00", datetime(2026, 11, 28, 1, 32, 3, 100000, tzinfo=UTC)),
    ],
)
def test_rfc3339_times(text: str, expected: datetime) -> None:
    up = parse_chirpstack(CS_TOPIC, enc(cs_up(time=text)))
    assert isinstance(up, Uplink)
    assert up.time == expected
    assert up.time is not None
    assert up.time.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2026-11-28T01:02:03", "2026-13-01T00:00:00Z", "yesterday", "2026-11-28T25:00:00Z"]
)
def test_bad_times(text: str) -> None:
    assert reason_of(parse_chirpstack, CS_TOPIC, enc(cs_up(time=text))) == "bad_field"


def test_protobuf_defaults_for_absent_fields() -> None:
    doc = cs_up()
    for key in ("fPort", "fCnt", "data", "time", "rxInfo", "deduplicationId", "deviceInfo"):
        del doc[key]
    up = parse_chirpstack(CS_TOPIC, enc(doc))
    assert up == Uplink("chirpstack", EUI, None, 0, b"", None, None, None, None)


def test_body_dev_eui_wins_but_must_agree_with_topic() -> None:
    upper = cs_up(deviceInfo={"devEui": EUI.upper()})
    assert parse_chirpstack(CS_TOPIC.replace(EUI, EUI.upper()), enc(upper)).dev_eui == EUI
    other = cs_up(deviceInfo={"devEui": "0202020202020202"})
    assert reason_of(parse_chirpstack, CS_TOPIC, enc(other)) == "bad_field"


def test_chirpstack_status_event() -> None:
    topic = CS_TOPIC.replace("/event/up", "/event/status")
    doc = {"deviceInfo": {"devEui": EUI}, "margin": 7, "batteryLevel": 81.5}
    assert parse_chirpstack(topic, enc(doc)) == StatusReport(EUI, None, 81.5, 7, False)
    ext = {"externalPowerSource": True, "time": "2026-11-28T01:02:03Z"}
    status = parse_chirpstack(topic, enc(ext))
    assert status == StatusReport(EUI, datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC), None, 0, True)
    unavailable = parse_chirpstack(topic, enc({"batteryLevelUnavailable": True, "margin": -3}))
    assert unavailable == StatusReport(EUI, None, None, -3, False)
    assert parse_chirpstack(topic, b"{}") == StatusReport(EUI, None, 0.0, 0, False)


def test_chirpstack_join_event() -> None:
    topic = CS_TOPIC.replace("/event/up", "/event/join")
    doc = {"deviceInfo": {"devEui": EUI}, "devAddr": "00AB12CD", "time": "2026-11-28T01:02:03Z"}
    join = parse_chirpstack(topic, enc(doc))
    assert join == JoinNotice(EUI, datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC), "00ab12cd")
    assert parse_chirpstack(topic, b"{}") == JoinNotice(EUI, None, None)
    assert reason_of(parse_chirpstack, topic, enc({"devAddr": "xyz"})) == "bad_field"


@pytest.mark.parametrize("event", ["ack", "txack", "log", "location", "integration"])
def test_chirpstack_other_events_unsupported(event: str) -> None:
    topic = CS_TOPIC.replace("/event/up", f"/event/{event}")
    assert reason_of(parse_chirpstack, topic, b"{}") == "unsupported_event"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "application/1/device/0101010101010101/event",
        "application/1/device/0101010101010101/event/up/extra",
        "application/1/devices/0101010101010101/event/up",
        "application/1/device/01010101/event/up",
        "application/1/device/zz01010101010101/event/up",
        "application//device/0101010101010101/event/up",
        "application/+/device/0101010101010101/event/up",
        "v3/app@t/devices/dev/up",
    ],
)
def test_chirpstack_bad_topics(topic: str) -> None:
    assert reason_of(parse_chirpstack, topic, enc(cs_up())) == "bad_topic"


# ------------------------------------------------------------------ The Things Stack


def test_tts_uplink() -> None:
    assert parse_tts(TTS_TOPIC, enc(tts_up())) == Uplink(
        network="tts",
        dev_eui="70b3d57ed0000042",
        f_port=2,
        f_cnt=4711,
        data=bytes.fromhex("00d3d8"),
        time=datetime(2026, 11, 28, 1, 2, 3, 500000, tzinfo=UTC),
        rssi=-95.0,  # from channel_rssi: gw-b sent no rssi
        snr=6.5,
        dedup_id="ns:uplink:01JD7X0000000000000000000C",
    )


def test_tts_single_tenant_topic_and_fallbacks() -> None:
    doc = tts_up(correlation_ids=["as:up:X", "gs:uplink:Y"])
    del doc["uplink_message"]["received_at"]
    up = parse_tts("v3/citygate-parking/devices/berth-0042/up", enc(doc))
    assert up.dedup_id == "as:up:X"
    assert up.time == datetime(2026, 11, 28, 1, 2, 4, tzinfo=UTC)


def test_tts_minimal_uplink() -> None:
    doc = {"end_device_ids": {"dev_eui": "70B3D57ED0000042"}, "uplink_message": {}}
    assert parse_tts(TTS_TOPIC, enc(doc)) == Uplink(
        "tts", "70b3d57ed0000042", None, 0, b"", None, None, None, None
    )


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"uplink_message": {}}, "missing_field"),
        ({"end_device_ids": {"device_id": "berth-0042"}, "uplink_message": {}}, "missing_field"),
        ({"end_device_ids": {"dev_eui": "70B3D57ED0000042"}}, "missing_field"),
        (
            tts_up(end_device_ids={"device_id": "berth-9", "dev_eui": "70B3D57ED0000042"}),
            "bad_field",
        ),
        (tts_up(end_device_ids={"dev_eui": "70B3"}), "bad_field"),
        (tts_up(correlation_ids="as:up:X"), "bad_field"),
        (tts_up(frm_payload="AN*Y"), "bad_base64"),
        (tts_up(f_port=256), "bad_field"),
    ],
)
def test_tts_rejections(doc: dict[str, Any], reason: str) -> None:
    assert reason_of(parse_tts, TTS_TOPIC, enc(doc)) == reason


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("v3/citygate-parking@shandan/devices/berth-0042/join", "unsupported_event"),
        ("v3/citygate-parking@shandan/devices/berth-0042/down/queued", "unsupported_event"),
        ("v3/citygate-parking@shandan/devices/berth-0042", "bad_topic"),
        ("v2/citygate-parking/devices/berth-0042/up", "bad_topic"),
        ("v3/citygate-parking/device/berth-0042/up", "bad_topic"),
        (CS_TOPIC, "bad_topic"),
    ],
)
def test_tts_topics(topic: str, reason: str) -> None:
    assert reason_of(parse_tts, topic, enc(tts_up())) == reason


# ------------------------------------------------------------------ hostile input


def test_oversized_is_refused_before_parsing() -> None:
    assert reason_of(parse_chirpstack, CS_TOPIC, b"\xff" * (MAX_PAYLOAD_BYTES + 1)) == "oversized"
    padded = enc(cs_up()) + b" " * MAX_PAYLOAD_BYTES
    assert reason_of(parse_tts, TTS_TOPIC, padded) == "oversized"
    fits = enc(cs_up())
    assert parse_chirpstack(CS_TOPIC, fits + b" " * (MAX_PAYLOAD_BYTES - len(fits)))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (b"\xff\xfe\x00", "bad_json"),
        (b'{"fPort": NaN}', "bad_json"),
        (b'{"rssi": Infinity}', "bad_json"),
        (b"[" * 30000 + b"]" * 30000, "bad_json"),
        (b"1" * 5000, "bad_json"),
        (b"[]", "not_object"),
        (b'"up"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
    ],
)
def test_bad_json(payload: bytes, reason: str) -> None:
    assert reason_of(parse_chirpstack, CS_TOPIC, payload) == reason
    assert reason_of(parse_tts, TTS_TOPIC, payload) == reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"joinServerContext": {"sessionKeyId": "010203"}}, "encrypted"),
        (
            {
                "joinServerContext": {
                    "sessionKeyId": "010203",
                    "appSKey": {"kekLabel": "kek-1", "aesKey": "AAECAwQFBgcICQoLDA0ODw=="},
                }
            },
            "encrypted",
        ),
        ({"joinServerContext": {}}, "encrypted"),
        ({"joinServerContext": "yes"}, "bad_field"),
        ({"data": "!!!"}, "bad_base64"),
        ({"data": "qg="}, "bad_base64"),
        ({"data": "qg==\n"}, "bad_base64"),
        ({"data": "\u00e9\u00e9=="}, "bad_base64"),
        ({"data": 12}, "bad_field"),
        ({"fPort": "one"}, "bad_field"),
        ({"fPort": 256}, "bad_field"),
        ({"fPort": True}, "bad_field"),
        ({"fPort": 1.5}, "bad_field"),
        ({"fCnt": -1}, "bad_field"),
        ({"fCnt": 10**4000}, "bad_json"),  # beyond what the JSON parser represents
        ({"fCnt": "99999999999999999999999999"}, "bad_field"),
        ({"rxInfo": "gw"}, "bad_field"),
        ({"rxInfo": [1, 2]}, "bad_field"),
        ({"rxInfo": [{"rssi": "loud"}]}, "bad_field"),
        ({"rxInfo": [{"rssi": 10**4000}]}, "bad_json"),
        ({"rxInfo": [{"rssi": -90, "snr": [1]}]}, "bad_field"),
        ({"deviceInfo": ["devEui", EUI]}, "bad_field"),
        ({"deviceInfo": {"devEui": 101}}, "bad_field"),
        ({"time": 1764291723}, "bad_field"),
        ({"deduplicationId": {"id": 1}}, "bad_field"),
    ],
)
def test_wrong_types_are_bad_fields(overrides: dict[str, Any], reason: str) -> None:
    payload = json.dumps(cs_up(**overrides), allow_nan=True).encode()
    assert reason_of(parse_chirpstack, CS_TOPIC, payload) == reason


def test_overflowing_float_literal_is_refused() -> None:
    payload = b'{"rxInfo": [{"rssi": 1e400, "snr": 1}]}'
    assert reason_of(parse_chirpstack, CS_TOPIC, payload) == "bad_json"


def test_int_like_fields_from_protobuf_json_strings() -> None:
    up = parse_chirpstack(CS_TOPIC, enc(cs_up(fCnt="4294967295", fPort=2.0)))
    assert isinstance(up, Uplink)
    assert (up.f_cnt, up.f_port) == (4294967295, 2)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
CS_KEYS = ["deduplicationId", "time", "deviceInfo", "fCnt", "fPort", "data", "rxInfo"]
TTS_KEYS = ["end_device_ids", "correlation_ids", "received_at", "uplink_message"]
UP_KEYS = ["f_port", "f_cnt", "frm_payload", "rx_metadata", "received_at"]
CS_TOPICS = [CS_TOPIC.replace("/up", f"/{e}") for e in ("up", "status", "join", "ack")]


ENVELOPE_REASONS = {
    "oversized",
    "bad_json",
    "not_object",
    "missing_field",
    "bad_field",
    "bad_base64",
    "bad_topic",
    "unsupported_event",
}


def _parse_or_envelope_error(fn: Any, topic: str, payload: bytes) -> None:
    """Either a typed record or an EnvelopeError with a known reason; nothing else escapes."""
    reason = None
    try:
        result = fn(topic, payload)
    except EnvelopeError as exc:
        reason = exc.reason
    else:
        assert isinstance(result, Uplink | StatusReport | JoinNotice)
    assert reason is None or reason in ENVELOPE_REASONS


@given(st.binary(max_size=256), st.sampled_from([*CS_TOPICS, TTS_TOPIC]))
def test_arbitrary_bytes_only_raise_envelope_error(payload: bytes, topic: str) -> None:
    _parse_or_envelope_error(parse_chirpstack, topic, payload)
    _parse_or_envelope_error(parse_tts, topic, payload)


@given(json_values)
def test_arbitrary_json_only_raises_envelope_error(doc: Any) -> None:
    payload = json.dumps(doc).encode()
    for topic in CS_TOPICS:
        _parse_or_envelope_error(parse_chirpstack, topic, payload)
    _parse_or_envelope_error(parse_tts, TTS_TOPIC, payload)


@settings(max_examples=200)
@given(st.sampled_from(CS_KEYS), json_values, st.sampled_from(CS_TOPICS))
def test_chirpstack_field_mutations(key: str, value: Any, topic: str) -> None:
    _parse_or_envelope_error(parse_chirpstack, topic, enc(cs_up(**{key: value})))
    nested = cs_up(rxInfo=[{"rssi": value, "snr": value}], deviceInfo={"devEui": value})
    _parse_or_envelope_error(parse_chirpstack, topic, enc(nested))


@settings(max_examples=200)
@given(st.sampled_from(TTS_KEYS + UP_KEYS), json_values)
def test_tts_field_mutations(key: str, value: Any) -> None:
    _parse_or_envelope_error(parse_tts, TTS_TOPIC, enc(tts_up(**{key: value})))
    nested = tts_up(rx_metadata=[{"rssi": value, "channel_rssi": value, "snr": value}])
    _parse_or_envelope_error(parse_tts, TTS_TOPIC, enc(nested))


@given(st.text(max_size=80))
def test_arbitrary_topics(topic: str) -> None:
    _parse_or_envelope_error(parse_chirpstack, topic, enc(cs_up()))
    _parse_or_envelope_error(parse_tts, topic, enc(tts_up()))


def test_base64_data_round_trip() -> None:
    raw = bytes(range(256))
    up = parse_chirpstack(CS_TOPIC, enc(cs_up(data=base64.b64encode(raw).decode())))
    assert isinstance(up, Uplink)
    assert up.data == raw
