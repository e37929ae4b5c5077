"""A simulated OCPP 1.6J charger (the ``ocpp`` library's 1.6 ChargePoint)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from gateway.demo.ocpp.base import SimCharger, Tx, _silenceable, iso, on


def _sampled16(
    energy_wh: float | None,
    power_w: float | None,
    current_a: float | None,
    voltage_v: float | None,
    soc_pct: float | None,
    context: str,
) -> list[dict[str, Any]]:
    """OCPP 1.6 sampled values: strings, energy in kWh to exercise unit conversion."""
    out: list[dict[str, Any]] = []
    if energy_wh is not None:
        out.append(
            {
                "value": f"{energy_wh / 1000:.3f}",
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit": "kWh",
            }
        )
    if power_w is not None:
        out.append(
            {
                "value": f"{power_w:.0f}",
                "context": context,
                "measurand": "Power.Active.Import",
                "unit": "W",
            }
        )
    if current_a is not None:
        for phase in ("L1", "L2", "L3"):
            out.append(
                {
                    "value": f"{current_a:.1f}",
                    "context": context,
                    "measurand": "Current.Import",
                    "phase": phase,
                    "unit": "A",
                }
            )
    if voltage_v is not None:
        out.append(
            {"value": f"{voltage_v:.1f}", "context": context, "measurand": "Voltage", "unit": "V"}
        )
    if soc_pct is not None:
        out.append(
            {
                "value": f"{soc_pct:.0f}",
                "context": context,
                "measurand": "SoC",
                "location": "EV",
                "unit": "Percent",
            }
        )
    return out


class _ChargePoint16(ChargePoint16):  # type: ignore[misc]
    sim: Charger16

    @on("RemoteStartTransaction")
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **kw: Any) -> Any:
        self.sim.record("RemoteStartTransaction", id_tag=id_tag, connector_id=connector_id)
        return result16.RemoteStartTransaction(
            status=self.sim.answer("RemoteStartTransaction", "Accepted")
        )

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int, **kw: Any) -> Any:
        self.sim.record("RemoteStopTransaction", transaction_id=transaction_id)
        return result16.RemoteStopTransaction(
            status=self.sim.answer("RemoteStopTransaction", "Accepted")
        )

    @on("Reset")
    def on_reset(self, type: str, **kw: Any) -> Any:
        self.sim.record("Reset", type=type)
        return result16.Reset(status=self.sim.answer("Reset", "Accepted"))

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str, **kw: Any) -> Any:
        self.sim.record("ChangeAvailability", connector_id=connector_id, type=type)
        return result16.ChangeAvailability(status=self.sim.answer("ChangeAvailability", "Accepted"))

    @on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int, **kw: Any) -> Any:
        self.sim.record("UnlockConnector", connector_id=connector_id)
        return result16.UnlockConnector(status=self.sim.answer("UnlockConnector", "Unlocked"))

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **kw: Any
    ) -> Any:
        self.sim.record(
            "TriggerMessage", requested_message=requested_message, connector_id=connector_id
        )
        status = self.sim.answer("TriggerMessage", "Accepted")
        if status == "Accepted":
            self.sim.later(self.sim.triggered_message(requested_message, connector_id))
        return result16.TriggerMessage(status=status)

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **kw: Any) -> Any:
        self.sim.record("GetConfiguration", key=key)
        config = self.sim.config
        wanted = key or list(config)
        return result16.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": False, "value": config[k]} for k in wanted if k in config
            ],
            unknown_key=[k for k in wanted if k not in config] or None,
        )

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **kw: Any) -> Any:
        self.sim.record("ChangeConfiguration", key=key, value=value)
        if key == "AuthorizationKey":  # write-only: used from the next connection on
            status = self.sim.answer("ChangeConfiguration", "Accepted")
            if status in ("Accepted", "RebootRequired"):
                self.sim.password = value
            return result16.ChangeConfiguration(status=status)
        if key not in self.sim.config:
            return result16.ChangeConfiguration(status="NotSupported")
        self.sim.config[key] = value
        return result16.ChangeConfiguration(
            status=self.sim.answer("ChangeConfiguration", "Accepted")
        )


class Charger16(SimCharger):
    """An OCPP 1.6J charger; connector numbers are 1.6 connectorIds (0: the charger)."""

    subprotocol = "ocpp1.6"
    charge_point_class = _silenceable(_ChargePoint16)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config: dict[str, str] = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}

    async def boot(self) -> Any:
        return await self.send(
            lambda q: call16.BootNotification(
                charge_point_vendor=self.vendor,
                charge_point_model=self.model,
                charge_point_serial_number=self.serial,
                firmware_version=self.firmware,
            )
        )

    async def heartbeat(self) -> Any:
        return await self.send(lambda q: call16.Heartbeat())

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        *,
        vendor_error_code: str | None = None,
        vendor_id: str | None = None,
        info: str | None = None,
        timestamp: datetime | None = None,
    ) -> Any:
        return await self.send(
            lambda q: call16.StatusNotification(
                connector_id=connector_id,
                error_code=error_code,
                status=status,
                timestamp=iso(timestamp),
                info=info,
                vendor_id=vendor_id,
                vendor_error_code=vendor_error_code,
            )
        )

    async def fault(
        self,
        connector_id: int,
        error_code: str = "GroundFailure",
        vendor_error_code: str | None = None,
        **kw: Any,
    ) -> Any:
        return await self.status(
            connector_id, "Faulted", error_code, vendor_error_code=vendor_error_code, **kw
        )

    async def authorize(self, id_tag: str) -> Any:
        return await self.send(lambda q: call16.Authorize(id_tag=id_tag))

    async def meter_values(
        self,
        connector_id: int,
        *,
        tx: Tx | None = None,
        energy_wh: float | None = None,
        power_w: float | None = None,
        current_a: float | None = None,
        voltage_v: float | None = None,
        soc_pct: float | None = None,
        context: str = "Sample.Periodic",
        sampled_value: list[dict[str, Any]] | None = None,
        timestamp: datetime | None = None,
    ) -> Any:
        stamp = iso(timestamp)
        values = sampled_value or _sampled16(
            energy_wh, power_w, current_a, voltage_v, soc_pct, context
        )
        if energy_wh is not None:
            self.energy_wh = energy_wh
        return await self.send(
            lambda q: call16.MeterValues(
                connector_id=connector_id,
                transaction_id=None if tx is None else tx.id,
                meter_value=[{"timestamp": stamp, "sampled_value": values}],
            ),
            queue=tx is not None,
        )

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        *,
        meter_start: int = 0,
        timestamp: datetime | None = None,
    ) -> Tx:
        tx = Tx(connector_id)
        stamp = iso(timestamp)
        self.energy_wh = meter_start

        def after(answer: Any) -> None:
            tx.id = answer.transaction_id

        await self.send(
            lambda q: call16.StartTransaction(
                connector_id=connector_id, id_tag=id_tag, meter_start=meter_start, timestamp=stamp
            ),
            after,
            queue=True,
        )
        return tx

    async def stop_transaction(
        self,
        tx: Tx,
        *,
        meter_stop: int,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        timestamp: datetime | None = None,
    ) -> Any:
        stamp = iso(timestamp)
        self.energy_wh = meter_stop

        def build(queued: bool) -> Any:
            assert tx.id is not None, "the transaction's StartTransaction was not answered"
            return call16.StopTransaction(
                meter_stop=meter_stop,
                timestamp=stamp,
                transaction_id=tx.id,
                reason=reason,
                id_tag=id_tag,
                transaction_data=transaction_data,
            )

        return await self.send(build, queue=True)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> Any:
        return await self.send(
            lambda q: call16.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def firmware_status(self, status: str) -> Any:
        return await self.send(lambda q: call16.FirmwareStatusNotification(status=status))

    async def diagnostics_status(self, status: str) -> Any:
        return await self.send(lambda q: call16.DiagnosticsStatusNotification(status=status))

    async def security_event(
        self, type: str, tech_info: str | None = None, timestamp: datetime | None = None
    ) -> Any:
        return await self.send(
            lambda q: call16.SecurityEventNotification(
                type=type, timestamp=iso(timestamp), tech_info=tech_info
            )
        )

    async def triggered_message(self, message: str, connector_id: int | None) -> None:
        self.triggered.append(message)
        if message == "Heartbeat":
            await self.heartbeat()
        elif message == "BootNotification":
            await self.boot()
        elif message == "StatusNotification":
            await self.status(connector_id or 0, "Available")
        elif message == "MeterValues":
            await self.meter_values(connector_id or 1, energy_wh=self.energy_wh, context="Trigger")
