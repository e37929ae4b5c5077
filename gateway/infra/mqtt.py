"""The gateway's MQTT connection settings as the transport takes them (``[mqtt]``), for every
client the gateway opens: the uplinks, the DJI docks' link, the demo's simulators."""

from __future__ import annotations

from drivers.mqtt.transport import MqttParams
from gateway.config import Settings

__all__ = ["mqtt_params"]


def mqtt_params(
    settings: Settings, client_id: str | None = None, clean: bool = False
) -> MqttParams:
    m = settings.mqtt
    return MqttParams(
        host=m.host,
        port=m.port,
        client_id=client_id or m.client_id,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        tls=m.tls,
        ca_file=m.ca_file,
        cert_file=m.cert_file,
        key_file=m.key_file,
        protocol=m.protocol,
        keepalive_s=m.keepalive_s,
        session_expiry_s=m.session_expiry_s,
        clean=clean,
    )
