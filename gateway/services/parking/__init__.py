"""Parking services: sensor ingest, state persistence, sessions, payments, quotes, enforcement."""
