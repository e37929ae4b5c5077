"""OCPP-J frames as the charger session hands them to the sans-I/O core: a short sequence of
frames into one fresh ``OcppConnection.receive`` for a protocol (1.6, 2.0.1, 2.1). The core
never raises: a refused frame is a counted problem (the rejection reason), while a failure
of a handler of ours (``Received.failures``) is a crash the core caught itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count
from typing import Any

from hypothesis import strategies as st

from drivers.ocpp.core import OcppConnection
from drivers.ocpp.handlers import IdTagStatus
from fuzz.core import Crash, Reasons, Target
from fuzz.mutate import hostile_json

NOW = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
_TS = "2026-12-01T08:30:00Z"


class Backend:
    """The synchronous decisions the core asks for, in memory."""

    def __init__(self) -> None:
        self._tx = count(100)

    def heartbeat_interval(self, charger_id: str) -> int:
        return 120

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        return "Accepted" if id_tag == "TAG1" else "Invalid"

    def new_transaction_id(self, charger_id: str) -> int:
        return next(self._tx)

    def connector_count(self, charger_id: str) -> int | None:
        return 2


_MV = [{"timestamp": _TS, "sampledValue": [
    {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"}]}]  # fmt: skip
FRAMES16: list[Any] = [
    [2, "b1", "BootNotification", {"chargePointVendor": "X", "chargePointModel": "Y"}],
    [2, "h1", "Heartbeat", {}],
    [2, "a1", "Authorize", {"idTag": "TAG1"}],
    [2, "s1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                     "status": "Charging", "timestamp": _TS}],
    [2, "t1", "StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000,
                                   "timestamp": _TS}],
    [2, "m1", "MeterValues", {"connectorId": 1, "transactionId": 100, "meterValue": _MV}],
    [2, "p1", "StopTransaction", {"transactionId": 100, "meterStop": 9000, "timestamp": _TS,
                                  "reason": "Local", "transactionData": _MV}],
    [3, "c1", {"status": "Accepted"}],
    [4, "c2", "NotImplemented", "no", {}],
]  # fmt: skip
FRAMES201: list[Any] = [
    [2, "b1", "BootNotification", {"reason": "PowerUp",
                                   "chargingStation": {"model": "Y", "vendorName": "X"}}],
    [2, "h1", "Heartbeat", {}],
    [2, "s1", "StatusNotification", {"timestamp": _TS, "connectorStatus": "Occupied",
                                     "evseId": 1, "connectorId": 1}],
    [2, "e1", "TransactionEvent", {"eventType": "Started", "timestamp": _TS,
                                   "triggerReason": "Authorized", "seqNo": 0,
                                   "transactionInfo": {"transactionId": "tx-1"},
                                   "idToken": {"idToken": "TAG1", "type": "ISO14443"},
                                   "evse": {"id": 1, "connectorId": 1}, "meterValue": _MV}],
    [2, "m1", "MeterValues", {"evseId": 1, "meterValue": _MV}],
    [2, "a1", "Authorize", {"idToken": {"idToken": "TAG1", "type": "ISO14443"}}],
]  # fmt: skip
_VARIABLE = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
_PROTOCOLS = {"ocpp1.6": FRAMES16, "ocpp2.0.1": FRAMES201, "ocpp2.1": FRAMES201}


def _case(protocol: str) -> st.SearchStrategy[tuple[str, list[bytes]]]:
    frames = _PROTOCOLS[protocol]
    valid = st.sampled_from([json.dumps(f).encode() for f in frames])
    return st.tuples(
        st.just(protocol), st.lists(hostile_json(frames) | valid, min_size=1, max_size=3)
    )


def check_core(case: tuple[str, list[bytes]]) -> Reasons:
    protocol, frames = case
    ids = count(1)
    conn = OcppConnection("CP1", protocol, Backend(), new_id=lambda: f"c{next(ids)}")
    # one call of ours in flight, so the charger's answers (c1) are matched, not unexpected
    if protocol == "ocpp1.6":
        conn.call("GetConfiguration", {})
    else:
        conn.call("GetVariables", {"getVariableData": [_VARIABLE]})
    reasons: list[str] = []
    for frame in frames:
        # websockets hands text frames over as str (valid UTF-8), binary frames as bytes
        out = conn.receive(frame.decode("utf-8", "replace") if len(frame) % 2 else frame, NOW)
        if out.failures or any(r == "internal_error" for r, _ in out.problems):
            raise Crash(f"the core caught a bug of its own: {out.failures or out.problems}")
        reasons.extend(r for r, _ in out.problems)
    return reasons


TARGETS = (
    Target(
        "ocpp.frames",
        "drivers.ocpp.core.OcppConnection.receive",
        st.one_of(*(_case(p) for p in _PROTOCOLS)),
        check_core,
    ),
)
