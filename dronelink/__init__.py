"""Drone ground stations: DJI Cloud API over MQTT and MAVLink over UDP (later issue)."""
