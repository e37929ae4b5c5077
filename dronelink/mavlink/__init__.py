"""MAVLink vehicles (ArduPilot, PX4) over UDP via pymavlink, as a ``DroneLink``.

- ``wire``: the one module that touches pymavlink (bytes ↔ typed frames).
- ``modes``, ``decode``: pure tables and bounds (frames → report fields).
- ``commands``: the pure retry policy of one COMMAND_LONG.
- ``core``: vehicles, link state and stream-rate requests, without sockets or clocks.
- ``link``: ``MavlinkLink``, the asyncio UDP transport.
"""

from dronelink.mavlink.core import Vehicle
from dronelink.mavlink.link import MavlinkLink

__all__ = ["MavlinkLink", "Vehicle"]
