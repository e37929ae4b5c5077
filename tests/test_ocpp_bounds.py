"""The sans-I/O core bounds what a charger's values may be, at the edge: timestamps in a sane
window, meter registers non-negative and below a terawatt-hour, connector/EVSE ids within the
charger's registered count. An absurd value gets the OCPP CallError (the whole CALL is refused
and counted, nothing of it is kept, its transaction place is not taken so a corrected re-send
is accepted); an absurd meter sample inside a message costs that sample only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.ocpp import OcppConnection
from drivers.ocpp.handlers import iso
from drivers.ocpp.values import meter_samples
from events import ChargingEnded, ChargingStarted, ConnectorStatusChanged, MeterSample
from tests.test_ocpp_core import Policy

NOW = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
TS = "2026-12-01T08:00:00Z"


def conn(protocol: str = "ocpp1.6", connectors: int | None = 2) -> OcppConnection:
    policy = Policy()
    policy.connectors = connectors
    return OcppConnection("CP1", protocol, policy)


def call(c: OcppConnection, action: str, payload: dict[str, Any]) -> tuple[list[Any], Any]:
    out = c.receive(json.dumps([2, "u1", action, payload]), NOW)
    assert len(out.replies) == 1
    return json.loads(out.replies[0]), out


def refused(c: OcppConnection, action: str, payload: dict[str, Any], reason: str) -> None:
    reply, out = call(c, action, payload)
    assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    assert out.events == []
    assert reason in [r for r, _ in out.problems]


def status16(connector: int = 1, ts: str = TS) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "errorCode": "NoError",
        "status": "Available",
        "timestamp": ts,
    }


@pytest.mark.parametrize(
    "ts",
    [
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        iso(NOW + timedelta(days=1, minutes=1)),
        "9999-12-31T23:59:59Z",
    ],
)
@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
def test_absurd_timestamps_are_refused(protocol: str, ts: str) -> None:
    c = conn(protocol)
    if protocol == "ocpp1.6":
        payload = status16(ts=ts)
    else:
        payload = {"timestamp": ts, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    refused(c, "StatusNotification", payload, "timestamp_out_of_range")
    # The window's edges and a late, back-dated message are fine; the connection still answers.
    for good in (
        "2000-01-01T00:00:00Z",
        iso(NOW - timedelta(days=300)),
        iso(NOW + timedelta(hours=23)),
    ):
        payload["timestamp"] = good
        reply, out = call(c, "StatusNotification", payload)
        assert reply[0] == 3 and [type(e) for e in out.events] == [ConnectorStatusChanged]


def test_absurd_meter_registers_are_refused_and_the_corrected_resend_accepted() -> None:
    c = conn()
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": -2147483648, "timestamp": TS}
    refused(c, "StartTransaction", start, "meter_out_of_range")
    refused(c, "StartTransaction", {**start, "meterStart": 10**12}, "meter_out_of_range")
    refused(c, "StartTransaction", {**start, "meterStart": 0, "timestamp": "0001-01-01T00:00:00Z"},
            "timestamp_out_of_range")  # fmt: skip
    reply, out = call(c, "StartTransaction", {**start, "meterStart": 1000})
    assert reply[2]["transactionId"] == 101  # no id was spent on the refused ones
    assert isinstance(out.events[0], ChargingStarted) and out.events[0].meter_start_wh == 1000.0
    stop = {"meterStop": -1, "timestamp": TS, "transactionId": 101}
    refused(c, "StopTransaction", stop, "meter_out_of_range")
    refused(c, "StopTransaction", {**stop, "meterStop": 2000, "timestamp": "0001-01-01T00:00:00Z"},
            "timestamp_out_of_range")  # fmt: skip
    reply, out = call(c, "StopTransaction", {**stop, "meterStop": 2000})
    assert reply[0] == 3  # the transaction was not closed by the refused stops
    assert [type(e) for e in out.events] == [ChargingEnded]


@pytest.mark.parametrize("connectors", [2, None])  # registered count, or unknown (max 64)
def test_connector_ids_beyond_the_charger_are_refused(connectors: int | None) -> None:
    c = conn(connectors=connectors)
    top = 64 if connectors is None else connectors
    for bad in (top + 1, 2147483648):
        refused(c, "StatusNotification", status16(bad), "connector_out_of_range")
        mv = [{"timestamp": TS, "sampledValue": [{"value": "1"}]}]
        refused(c, "MeterValues", {"connectorId": bad, "meterValue": mv}, "connector_out_of_range")
    start = {"connectorId": 0, "idTag": "TAG1", "meterStart": 0, "timestamp": TS}
    refused(c, "StartTransaction", start, "connector_out_of_range")  # 0 is the charger itself
    for good in (0, top):
        reply, out = call(c, "StatusNotification", status16(good))
        assert reply[0] == 3 and out.events[0].connector_id == good


def test_evse_ids_201_are_bounded_and_a_refused_event_keeps_its_seqno() -> None:
    c = conn("ocpp2.0.1", connectors=2)
    refused(c, "StatusNotification",
            {"timestamp": TS, "connectorStatus": "Faulted", "evseId": 3, "connectorId": 1},
            "connector_out_of_range")  # fmt: skip
    mv = [{"timestamp": TS, "sampledValue": [{"value": 1.0}]}]
    refused(c, "MeterValues", {"evseId": 2147483648, "meterValue": mv}, "connector_out_of_range")
    started = {
        "eventType": "Started", "timestamp": "0001-01-01T00:00:00Z", "triggerReason": "Authorized",
        "seqNo": 0, "transactionInfo": {"transactionId": "T-1"}, "evse": {"id": 1},
    }  # fmt: skip
    refused(c, "TransactionEvent", started, "timestamp_out_of_range")
    refused(c, "TransactionEvent", {**started, "timestamp": TS, "evse": {"id": 9}},
            "connector_out_of_range")  # fmt: skip
    reply, out = call(c, "TransactionEvent", {**started, "timestamp": TS})
    assert reply[0] == 3 and [type(e) for e in out.events] == [ChargingStarted]  # not "duplicate"
    # A Problem raised on an EVSE the charger does not have makes no phantom Faulted connector.
    event = {
        "eventId": 1, "timestamp": TS, "trigger": "Alerting", "actualValue": "true",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "EVSE", "evse": {"id": 7}}, "variable": {"name": "Problem"},
    }  # fmt: skip
    reply, out = call(c, "NotifyEvent", {"generatedAt": TS, "seqNo": 0, "eventData": [event]})
    assert reply[0] == 3 and not [e for e in out.events if isinstance(e, ConnectorStatusChanged)]


def test_an_absurd_sample_costs_that_sample_only() -> None:
    window = (datetime(2000, 1, 1, tzinfo=UTC), NOW + timedelta(days=1))
    meter_value = [
        {"timestamp": TS, "sampled_value": [{"value": "-5", "unit": "Wh"}]},
        {"timestamp": TS, "sampled_value": [{"value": "2e12", "unit": "Wh"}]},
        {"timestamp": TS, "sampled_value": [{"value": "1e13", "unit": "W",
                                             "measurand": "Power.Active.Import"}]},
        {"timestamp": "0001-01-01T00:00:00Z", "sampled_value": [{"value": "7", "unit": "Wh"}]},
        {"timestamp": TS, "sampled_value": [{"value": "1.5", "unit": "kWh"}]},
    ]  # fmt: skip
    samples, problems = meter_samples("CP1", 1, "7", meter_value, NOW, window)
    assert [s.energy_wh for s in samples] == [1500.0]
    assert problems.count("meter_out_of_range") == 3 and "timestamp_out_of_range" in problems
    # Through the core: the good sample is kept, the message answered.
    c = conn()
    mv = [{"timestamp": m["timestamp"], "sampledValue": m["sampled_value"]} for m in meter_value]
    reply, out = call(c, "MeterValues", {"connectorId": 1, "transactionId": 7, "meterValue": mv})
    assert reply[0] == 3 and [type(e) for e in out.events] == [MeterSample]
    assert ("meter_out_of_range", "") in out.problems
