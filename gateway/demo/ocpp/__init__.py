"""Simulated OCPP chargers, shared by the demo, the tests and the benches: the ``ocpp``
library's own ChargePoint classes, playing the charger, over real websockets.

A :class:`Charger16` or :class:`Charger201` (or :class:`Charger21`) connects with a chosen
subprotocol and basic-auth password, then boots, beats, reports status, meter values,
transactions and faults, and answers the central system's commands with the library's
handlers (recording each one). While disconnected it queues transaction messages, as real
chargers do, and delivers them in order (back-dated, ``offline`` on 2.0.1) when it
reconnects; an OCPP 1.6 transaction started offline gets its id on delivery. A charger told a
new password (1.6 ``AuthorizationKey``, 2.0.1 ``SecurityCtrlr.BasicAuthPassword``) uses it
from its next connection on, as real ones do.

    async with Charger16(url, "CP-1", "secret") as cp:
        await cp.boot()
        tx = await cp.start_transaction(1, "TAG1", meter_start=1000)
"""

from gateway.demo.ocpp.base import ChargerOffline, Fleet, SimCharger, Tx, iso
from gateway.demo.ocpp.v16 import Charger16
from gateway.demo.ocpp.v201 import Charger21, Charger201

__all__ = [
    "Charger16",
    "Charger21",
    "Charger201",
    "ChargerOffline",
    "Fleet",
    "SimCharger",
    "Tx",
    "iso",
]
