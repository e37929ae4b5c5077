"""DJI Cloud API messages as the link takes them off MQTT: a short sequence of (topic, payload)
into one fresh ``DjiLink`` (no broker: its dispatch is sans-I/O). The envelope is read first
(``dronelink.dji.envelope.parse``), then the osd merge, topology, events and requests cores;
the link never raises and counts every refusal by reason, which is what is counted here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from drivers.mqtt.transport import MqttParams
from dronelink.dji.link import DjiLink
from fuzz.core import Reasons, Target
from fuzz.mutate import hostile_bytes, hostile_json, mostly

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
DOCK, AIR = "4TADKCM0010016", "1581F5BKD225D00A0001"
TOPICS = [
    f"thing/product/{DOCK}/osd", f"thing/product/{AIR}/osd", f"thing/product/{DOCK}/state",
    f"thing/product/{DOCK}/events", f"sys/product/{DOCK}/status",
    f"thing/product/{DOCK}/services_reply", f"thing/product/{DOCK}/requests",
    f"thing/product/{DOCK}/services",
]  # fmt: skip


def _env(method: str, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    doc = {"tid": "6a7bfe89-c386-4043-b600-b518e10096cc", "bid": "42a1", "method": method,
           "timestamp": 1_700_000_000_000, "gateway": DOCK, "data": data}  # fmt: skip
    doc.update(kw)
    return doc


DOCS = [
    _env("", {"latitude": 38.78, "longitude": 101.08, "height": 1500.5, "mode_code": 0,
              "drone_in_dock": 1, "drone_charge_state": {"state": 1, "capacity_percent": 80},
              "cover_state": 0, "sub_device": {"device_sn": AIR, "device_online_status": 1}}),
    _env("", {"latitude": 38.79, "longitude": 101.07, "height": 1620.0, "elevation": 60.0,
              "mode_code": 5, "battery": {"capacity_percent": 73}, "horizontal_speed": 4.2,
              "attitude_head": 90}, gateway=DOCK),
    _env("update_topo", {"domain": "3", "type": 119, "sub_devices": [{"sn": AIR, "type": 89}]}),
    _env("speaker_tts_play_start_progress", {"result": 0, "output": {
        "status": "in_progress", "progress": {"percent": 50, "step_key": "tts"}}}, need_reply=1),
    _env("return_home_info", {"planned_path_points": []}, need_reply=1),
    _env("hms", {"list": [{"level": 1, "code": "0x16100083"}]}, need_reply=1),
    _env("config", {"config_type": "json", "config_scope": "product"}),
    _env("speaker_tts_play_start", {"result": 0}),
]  # fmt: skip

_damaged_topic = hostile_bytes([t.encode() for t in TOPICS], max_random=60)
_topic = mostly(st.sampled_from(TOPICS), _damaged_topic.map(lambda b: b.decode("utf-8", "replace")))
_message = st.tuples(_topic, hostile_json(DOCS))
_valid = st.tuples(st.sampled_from(TOPICS), st.sampled_from([json.dumps(d).encode() for d in DOCS]))


def _ignore(_: object) -> None:
    pass


def check_link(messages: list[tuple[str, bytes]]) -> Reasons:
    link = DjiLink(MqttParams("127.0.0.1", 1, "fuzz"), None, _ignore, _ignore, _ignore, lambda: T0)
    for name, payload in messages:
        link._on_message(name, payload)
    reasons: list[str] = []
    for reason, n in link.counts.items():
        reasons.extend([reason] * n)
    return reasons


TARGETS = (
    Target(
        "dji.messages",
        "dronelink.dji.link.DjiLink._on_message (envelope.parse, osd, topology, events)",
        st.lists(_message | _valid, min_size=1, max_size=3),
        check_link,
    ),
)
