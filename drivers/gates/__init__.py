"""Barrier gate controllers over Modbus TCP and Modbus RTU (RS-485).

- ``registers``: the register map of a controller model, its read plan, decoding (pure).
- ``bus``: bus URLs and bus timing (pure).
- ``models``: the sample maps shipped as TOML (examples: no vendor publishes a map).
- ``hub``: ``ModbusHub``, one per physical bus (one lock, frame gap, reconnect with backoff).
- ``controller``: ``GateController``, a confirmed, at-most-once command per decision, and a
  polling task that never dies.
"""
