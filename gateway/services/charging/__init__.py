"""Charging services: the OCPP backend, the recorder and the watch loop."""
