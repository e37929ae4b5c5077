"""Simulated OCPP 2.0.1 and 2.1 chargers (the ``ocpp`` library's ChargePoints)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from gateway.demo.ocpp.base import SimCharger, Tx, _silenceable, iso, on


def _sampled2(
    energy_wh: float | None, power_w: float | None, soc_pct: float | None, context: str
) -> list[dict[str, Any]]:
    """OCPP 2.0.1 sampled values: numbers; energy in kWh as Wh x 10^3 (the multiplier)."""
    out: list[dict[str, Any]] = []
    if energy_wh is not None:
        out.append(
            {
                "value": energy_wh / 1000,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit_of_measure": {"unit": "Wh", "multiplier": 3},
            }
        )
    if power_w is not None:
        out.append(
            {
                "value": power_w,
                "context": context,
                "measurand": "Power.Active.Import",
                "unit_of_measure": {"unit": "W"},
            }
        )
    if soc_pct is not None:
        out.append({"value": soc_pct, "context": context, "measurand": "SoC", "location": "EV"})
    return out


class _Handlers2:
    """The charger's answers to 2.0.1/2.1 commands; ``result`` is the version's call_result."""

    sim: Charger201
    result: Any

    @on("RequestStartTransaction")
    def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **kw: Any
    ) -> Any:
        self.sim.record(
            "RequestStartTransaction",
            id_token=id_token,
            remote_start_id=remote_start_id,
            evse_id=evse_id,
        )
        return self.result.RequestStartTransaction(
            status=self.sim.answer("RequestStartTransaction", "Accepted")
        )

    @on("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **kw: Any) -> Any:
        self.sim.record("RequestStopTransaction", transaction_id=transaction_id)
        return self.result.RequestStopTransaction(
            status=self.sim.answer("RequestStopTransaction", "Accepted")
        )

    @on("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **kw: Any) -> Any:
        self.sim.record("Reset", type=type, evse_id=evse_id)
        return self.result.Reset(status=self.sim.answer("Reset", "Accepted"))

    @on("ChangeAvailability")
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        self.sim.record("ChangeAvailability", operational_status=operational_status, evse=evse)
        return self.result.ChangeAvailability(
            status=self.sim.answer("ChangeAvailability", "Accepted")
        )

    @on("UnlockConnector")
    def on_unlock_connector(self, evse_id: int, connector_id: int, **kw: Any) -> Any:
        self.sim.record("UnlockConnector", evse_id=evse_id, connector_id=connector_id)
        return self.result.UnlockConnector(status=self.sim.answer("UnlockConnector", "Unlocked"))

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        self.sim.record("TriggerMessage", requested_message=requested_message, evse=evse)
        status = self.sim.answer("TriggerMessage", "Accepted")
        if status == "Accepted":
            self.sim.later(self.sim.triggered_message(requested_message, (evse or {}).get("id")))
        return self.result.TriggerMessage(status=status)

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.record("GetVariables", get_variable_data=get_variable_data)
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            result = {"component": item["component"], "variable": item["variable"]}
            if key in self.sim.variables:
                result.update(attribute_status="Accepted", attribute_value=self.sim.variables[key])
            elif any(c == key[0] for c, _ in self.sim.variables):
                result["attribute_status"] = "UnknownVariable"
            else:
                result["attribute_status"] = "UnknownComponent"
            results.append(result)
        return self.result.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.record("SetVariables", set_variable_data=set_variable_data)
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            known = key in self.sim.variables
            if key == ("SecurityCtrlr", "BasicAuthPassword"):
                # Write-only: used from the next connection on.
                status = self.sim.answer("SetVariables", "Accepted")
                if status in ("Accepted", "RebootRequired"):
                    self.sim.password = item["attribute_value"]
            elif known:
                self.sim.variables[key] = item["attribute_value"]
                status = "Accepted"
            else:
                status = "UnknownVariable"
            results.append(
                {
                    "component": item["component"],
                    "variable": item["variable"],
                    "attribute_status": status,
                }
            )
        return self.result.SetVariables(set_variable_result=results)


class _ChargePoint201(_Handlers2, ChargePoint201):  # type: ignore[misc]
    result = result201


class _ChargePoint21(_Handlers2, ChargePoint21):  # type: ignore[misc]
    result = result21


class Charger201(SimCharger):
    """An OCPP 2.0.1 charger; connector numbers are EVSE ids (each EVSE has connector 1)."""

    subprotocol = "ocpp2.0.1"
    charge_point_class = _silenceable(_ChargePoint201)
    calls: Any = call201

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.variables: dict[tuple[str, str], str] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
        }
        self._event_id = 0

    async def boot(self, reason: str = "PowerUp") -> Any:
        station = {
            "model": self.model,
            "vendor_name": self.vendor,
            "firmware_version": self.firmware,
        }
        if self.serial:
            station["serial_number"] = self.serial
        return await self.send(
            lambda q: self.calls.BootNotification(charging_station=station, reason=reason)
        )

    async def heartbeat(self) -> Any:
        return await self.send(lambda q: self.calls.Heartbeat())

    async def status(
        self, evse_id: int, status: str, *, connector_id: int = 1, timestamp: datetime | None = None
    ) -> Any:
        return await self.send(
            lambda q: self.calls.StatusNotification(
                timestamp=iso(timestamp),
                connector_status=status,
                evse_id=evse_id,
                connector_id=connector_id,
            )
        )

    async def notify_event(
        self,
        evse_id: int,
        *,
        component: str = "Connector",
        variable: str = "Problem",
        actual_value: str = "true",
        tech_code: str | None = None,
        tech_info: str | None = None,
        cleared: bool | None = None,
        severity: int | None = None,
        timestamp: datetime | None = None,
    ) -> Any:
        self._event_id += 1
        event: dict[str, Any] = {
            "event_id": self._event_id,
            "timestamp": iso(timestamp),
            "trigger": "Delta",
            "actual_value": actual_value,
            "event_notification_type": "HardWiredNotification",
            "component": {"name": component, "evse": {"id": evse_id, "connector_id": 1}},
            "variable": {"name": variable},
        }
        for key, value in (
            ("tech_code", tech_code),
            ("tech_info", tech_info),
            ("cleared", cleared),
        ):
            if value is not None:
                event[key] = value
        if severity is not None:
            event["severity"] = severity
        return await self.send(
            lambda q: self.calls.NotifyEvent(
                generated_at=iso(timestamp), seq_no=0, event_data=[event]
            )
        )

    async def fault(
        self, evse_id: int, tech_code: str = "GroundFailure", tech_info: str | None = None
    ) -> None:
        """A 2.0.1 fault: the connector goes Faulted and the Problem variable reports why."""
        await self.status(evse_id, "Faulted")
        await self.notify_event(evse_id, tech_code=tech_code, tech_info=tech_info)

    async def authorize(self, id_tag: str, type: str = "ISO14443") -> Any:
        return await self.send(
            lambda q: self.calls.Authorize(id_token={"id_token": id_tag, "type": type})
        )

    async def meter_values(
        self,
        evse_id: int,
        *,
        tx: Tx | None = None,
        energy_wh: float | None = None,
        power_w: float | None = None,
        soc_pct: float | None = None,
        context: str = "Sample.Periodic",
        sampled_value: list[dict[str, Any]] | None = None,
        timestamp: datetime | None = None,
    ) -> Any:
        stamp = iso(timestamp)
        values = sampled_value or _sampled2(energy_wh, power_w, soc_pct, context)
        if energy_wh is not None:
            self.energy_wh = energy_wh
        meter = [{"timestamp": stamp, "sampled_value": values}]
        if tx is None:
            return await self.send(
                lambda q: self.calls.MeterValues(evse_id=evse_id, meter_value=meter)
            )
        seq = tx.next_seq()
        return await self.send(
            lambda q: self.calls.TransactionEvent(
                event_type="Updated",
                timestamp=stamp,
                trigger_reason="MeterValuePeriodic",
                seq_no=seq,
                transaction_info={"transaction_id": tx.id, "charging_state": "Charging"},
                meter_value=meter,
                offline=q or None,
            ),
            queue=True,
        )

    async def start_transaction(
        self,
        evse_id: int,
        id_tag: str | None = None,
        *,
        meter_start: float | None = None,
        timestamp: datetime | None = None,
        tx_id: str | None = None,
    ) -> Tx:
        tx = Tx(evse_id, tx_id or uuid.uuid4().hex[:16])
        stamp = iso(timestamp)
        seq = tx.next_seq()
        meter = None
        if meter_start is not None:
            self.energy_wh = meter_start
            meter = [
                {
                    "timestamp": stamp,
                    "sampled_value": _sampled2(meter_start, None, None, "Transaction.Begin"),
                }
            ]
        await self.send(
            lambda q: self.calls.TransactionEvent(
                event_type="Started",
                timestamp=stamp,
                trigger_reason="Authorized" if id_tag else "CablePluggedIn",
                seq_no=seq,
                transaction_info={"transaction_id": tx.id, "charging_state": "Charging"},
                evse={"id": evse_id, "connector_id": 1},
                id_token=None if id_tag is None else {"id_token": id_tag, "type": "ISO14443"},
                meter_value=meter,
                offline=q or None,
            ),
            queue=True,
        )
        return tx

    async def stop_transaction(
        self,
        tx: Tx,
        *,
        meter_stop: float | None = None,
        reason: str = "Local",
        trigger_reason: str = "StopAuthorized",
        timestamp: datetime | None = None,
    ) -> Any:
        stamp = iso(timestamp)
        seq = tx.next_seq()
        meter = None
        if meter_stop is not None:
            self.energy_wh = meter_stop
            meter = [
                {
                    "timestamp": stamp,
                    "sampled_value": _sampled2(meter_stop, None, None, "Transaction.End"),
                }
            ]
        return await self.send(
            lambda q: self.calls.TransactionEvent(
                event_type="Ended",
                timestamp=stamp,
                trigger_reason=trigger_reason,
                seq_no=seq,
                transaction_info={"transaction_id": tx.id, "stopped_reason": reason},
                meter_value=meter,
                offline=q or None,
            ),
            queue=True,
        )

    async def security_event(
        self, type: str, tech_info: str | None = None, timestamp: datetime | None = None
    ) -> Any:
        return await self.send(
            lambda q: self.calls.SecurityEventNotification(
                type=type, timestamp=iso(timestamp), tech_info=tech_info
            )
        )

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> Any:
        return await self.send(
            lambda q: self.calls.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def firmware_status(self, status: str) -> Any:
        return await self.send(lambda q: self.calls.FirmwareStatusNotification(status=status))

    async def log_status(self, status: str, request_id: int | None = None) -> Any:
        return await self.send(
            lambda q: self.calls.LogStatusNotification(status=status, request_id=request_id)
        )

    async def triggered_message(self, message: str, evse_id: int | None) -> None:
        self.triggered.append(message)
        if message == "Heartbeat":
            await self.heartbeat()
        elif message == "BootNotification":
            await self.boot("Triggered")
        elif message == "StatusNotification":
            await self.status(evse_id or 1, "Available")
        elif message == "MeterValues":
            await self.meter_values(evse_id or 1, energy_wh=self.energy_wh, context="Trigger")


class Charger21(Charger201):
    """An OCPP 2.1 charger (the 2.0.1 messages, sent and validated as 2.1)."""

    subprotocol = "ocpp2.1"
    charge_point_class = _silenceable(_ChargePoint21)
    calls = call21
