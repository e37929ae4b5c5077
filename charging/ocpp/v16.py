"""OCPP 1.6J: what a charger sends in normal life and in trouble, answered and turned into
events (core profile, firmware and diagnostics, and the security whitepaper's notifications).

Transaction messages may arrive late, back-dated and more than once (a charger re-sends what
it queued offline or did not get an answer to): they are accepted in order, keep the charger's
timestamps, and a re-sent Start/StopTransaction is answered again without a second event.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from charging.ocpp.rpc import Endpoint, iso, on
from events import (
    ChargerBooted,
    ChargerHeartbeat,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    now_utc,
)

__all__ = ["CentralSystem16"]


class CentralSystem16(Endpoint):
    _ocpp_version = "1.6"
    _call = call
    _call_result = call_result
    _actions = frozenset(a.value for a in Action)

    @on(Action.boot_notification)
    def on_boot_notification(
        self,
        charge_point_vendor: str,
        charge_point_model: str,
        charge_point_serial_number: str | None = None,
        charge_box_serial_number: str | None = None,
        firmware_version: str | None = None,
        **_: Any,
    ) -> Any:
        now = now_utc()
        self.publish(
            ChargerBooted(
                device_id=self.charger_id,
                ts=now,
                vendor=charge_point_vendor,
                model=charge_point_model,
                serial=charge_point_serial_number or charge_box_serial_number,
                firmware=firmware_version,
            )
        )
        return call_result.BootNotification(
            current_time=iso(now),
            interval=self.backend.heartbeat_interval(self.charger_id),
            status="Accepted",
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        now = now_utc()
        self.publish(ChargerHeartbeat(device_id=self.charger_id, ts=now))
        return call_result.Heartbeat(current_time=iso(now))

    @on(Action.status_notification)
    def on_status_notification(
        self,
        connector_id: int,
        error_code: str,
        status: str,
        timestamp: str | None = None,
        info: str | None = None,
        vendor_error_code: str | None = None,
        **_: Any,
    ) -> Any:
        self.publish(
            ConnectorStatusChanged(
                device_id=self.charger_id,
                ts=self.stamp(timestamp, now_utc()),
                connector_id=connector_id,
                status=status,
                error_code=None if error_code == "NoError" else error_code,
                vendor_error_code=vendor_error_code or None,
                info=info or None,
            )
        )
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[Any],
        transaction_id: int | None = None,
        **_: Any,
    ) -> Any:
        tx = None if transaction_id is None else str(transaction_id)
        if tx is not None and connector_id > 0:
            self.ledger.place(tx, connector_id)
        self.publish_meter(connector_id, tx, meter_value, now_utc())
        return call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any) -> Any:
        status = await self.backend.authorize(self.charger_id, id_tag)
        return call_result.Authorize(id_tag_info={"status": status})

    @on(Action.start_transaction)
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: str,
        **_: Any,
    ) -> Any:
        status = await self.backend.authorize(self.charger_id, id_tag)
        fingerprint = ("start", connector_id, id_tag, meter_start, timestamp)
        tx = self.ledger.start_answered(fingerprint)
        if tx is not None:
            self.problem("duplicate", f"StartTransaction re-sent: transaction {tx}")
        else:
            tx = str(self.backend.new_transaction_id(self.charger_id))
            self.ledger.started(tx, connector_id, fingerprint)
            self.publish(
                ChargingStarted(
                    device_id=self.charger_id,
                    ts=self.stamp(timestamp, now_utc()),
                    connector_id=connector_id,
                    transaction_id=tx,
                    id_tag=id_tag,
                    meter_start_wh=float(meter_start),
                )
            )
        return call_result.StartTransaction(transaction_id=int(tx), id_tag_info={"status": status})

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[Any] | None = None,
        **_: Any,
    ) -> Any:
        tx = str(transaction_id)
        known = self.ledger.connector(tx)
        connector = 0 if known is None else known  # 0: not seen by this process, look it up
        if self.ledger.end(tx):
            received = now_utc()
            self.publish_meter(connector, tx, transaction_data, received)
            self.publish(
                ChargingEnded(
                    device_id=self.charger_id,
                    ts=self.stamp(timestamp, received),
                    connector_id=connector,
                    transaction_id=tx,
                    meter_stop_wh=float(meter_stop),
                    reason=reason or "Local",  # OCPP 1.6: absent means Local
                )
            )
        else:
            self.problem("duplicate", f"StopTransaction re-sent: transaction {tx}")
        if id_tag is None:
            return call_result.StopTransaction()
        status = await self.backend.authorize(self.charger_id, id_tag)
        return call_result.StopTransaction(id_tag_info={"status": status})

    @on(Action.data_transfer)
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> Any:
        detail = json.dumps({"message_id": message_id, "data": (data or "")[:200]})
        self.notice("data_transfer", vendor_id, detail)
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("firmware", status)
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("diagnostics", status)
        return call_result.DiagnosticsStatusNotification()

    # -- security whitepaper (1.6 security extension) --------------------------------------------

    @on(Action.security_event_notification)
    def on_security_event_notification(
        self, type: str, timestamp: str, tech_info: str | None = None, **_: Any
    ) -> Any:
        self.notice("security", type, tech_info or "", ts=self.stamp(timestamp, now_utc()))
        return call_result.SecurityEventNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("firmware", status)
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("log", status)
        return call_result.LogStatusNotification()
