"""``citygate simulate``: drive the town's berth sensors and car-park counters over real MQTT.

The simulator exists so that anyone can watch vacancies change without a street full of
sensors: every sensor of the town file publishes what its network would deliver (ChirpStack v4
or The Things Stack v3 JSON for LoRaWAN, binary frames for NB-IoT, JSON counts for entry/exit
controllers), built with the project's own encoders so the gateway's parsers must accept them.

Modules: :mod:`~gateway.demo.options` (options, stats, message types),
:mod:`~gateway.demo.rhythm` (the daily rhythm), :mod:`~gateway.demo.payloads` (one
builder per envelope), :mod:`~gateway.demo.town_sim` (the pure, seeded state machine),
:mod:`~gateway.demo.pacing` (clock and rate limit) and :mod:`~gateway.demo.runner`
(the asyncio loop that publishes). The town's chargers: :mod:`~gateway.demo.ocpp` (simulated
OCPP chargers, shared with the tests and the bench) and :mod:`~gateway.demo.chargers` (the
demo's fleet of them).
"""

from gateway.demo.options import Fault, MessageKind, Outgoing, SimStats, SimulatorOptions
from gateway.demo.pacing import SimClock, TokenBucket
from gateway.demo.payloads import (
    Radio,
    carpark_counts,
    chirpstack_uplink,
    nbiot_uplink,
    tts_site,
    tts_uplink,
)
from gateway.demo.rhythm import occupancy_probability
from gateway.demo.runner import run_simulator
from gateway.demo.town_sim import TownSimulation

__all__ = [
    "Fault",
    "MessageKind",
    "Outgoing",
    "Radio",
    "SimClock",
    "SimStats",
    "SimulatorOptions",
    "TokenBucket",
    "TownSimulation",
    "carpark_counts",
    "chirpstack_uplink",
    "nbiot_uplink",
    "occupancy_probability",
    "run_simulator",
    "tts_site",
    "tts_uplink",
]
