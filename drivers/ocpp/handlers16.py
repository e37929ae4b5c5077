"""OCPP 1.6J: what a charger sends in normal life and in trouble, answered and turned into
events (core profile, firmware and diagnostics, and the security whitepaper's notifications).

Pure functions of (context, payload). Transaction messages may arrive late, back-dated and more
than once (a charger re-sends what it queued offline or did not get an answer to): they are
accepted in order, keep the charger's timestamps, and a re-sent Start/StopTransaction is
answered again without a second event.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.v16.enums import Action

from drivers.ocpp.handlers import Context, Handler, boot_accepted, heartbeat
from events import (
    ChargerBooted,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
)

__all__ = ["ACTIONS16", "HANDLERS16"]

ACTIONS16 = frozenset(a.value for a in Action)  # every action OCPP 1.6 defines


def boot_notification(
    ctx: Context,
    charge_point_vendor: str,
    charge_point_model: str,
    charge_point_serial_number: str | None = None,
    charge_box_serial_number: str | None = None,
    firmware_version: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    ctx.publish(
        ChargerBooted(
            device_id=ctx.charger_id,
            ts=ctx.now,
            vendor=charge_point_vendor,
            model=charge_point_model,
            serial=charge_point_serial_number or charge_box_serial_number,
            firmware=firmware_version,
        )
    )
    return boot_accepted(ctx)


def status_notification(
    ctx: Context,
    connector_id: int,
    error_code: str,
    status: str,
    timestamp: str | None = None,
    info: str | None = None,
    vendor_error_code: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    ctx.connector(connector_id)
    ctx.publish(
        ConnectorStatusChanged(
            device_id=ctx.charger_id,
            ts=ctx.stamp(timestamp),
            connector_id=connector_id,
            status=status,
            error_code=None if error_code == "NoError" else error_code,
            vendor_error_code=vendor_error_code or None,
            info=info or None,
        )
    )
    return {}


def meter_values(
    ctx: Context,
    connector_id: int,
    meter_value: list[Any],
    transaction_id: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    ctx.connector(connector_id)
    tx = None if transaction_id is None else str(transaction_id)
    if tx is not None and connector_id > 0:
        ctx.ledger.place(tx, connector_id)
    ctx.publish_meter(connector_id, tx, meter_value)
    return {}


def authorize(ctx: Context, id_tag: str, **_: Any) -> dict[str, Any]:
    return {"idTagInfo": {"status": ctx.backend.authorize(ctx.charger_id, id_tag)}}


def start_transaction(
    ctx: Context, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
) -> dict[str, Any]:
    ctx.connector(connector_id, zero=False)
    ctx.meter(meter_start, "meterStart")
    ctx.in_window(timestamp)
    status = ctx.backend.authorize(ctx.charger_id, id_tag)
    fingerprint = ("start", connector_id, id_tag, meter_start, timestamp)
    tx = ctx.ledger.start_answered(fingerprint)
    if tx is not None:
        ctx.problem("duplicate", f"StartTransaction re-sent: transaction {tx}")
    else:
        tx = str(ctx.backend.new_transaction_id(ctx.charger_id))
        ctx.ledger.started(tx, connector_id, fingerprint)
        ctx.publish(
            ChargingStarted(
                device_id=ctx.charger_id,
                ts=ctx.stamp(timestamp),
                connector_id=connector_id,
                transaction_id=tx,
                id_tag=id_tag,
                meter_start_wh=float(meter_start),
            )
        )
    return {"transactionId": int(tx), "idTagInfo": {"status": status}}


def stop_transaction(
    ctx: Context,
    meter_stop: int,
    timestamp: str,
    transaction_id: int,
    reason: str | None = None,
    id_tag: str | None = None,
    transaction_data: list[Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    ctx.meter(meter_stop, "meterStop")
    ctx.in_window(timestamp)
    tx = str(transaction_id)
    known = ctx.ledger.connector(tx)
    connector = 0 if known is None else known  # 0: not seen by this process, look it up
    if ctx.ledger.end(tx):
        ctx.publish_meter(connector, tx, transaction_data)
        ctx.publish(
            ChargingEnded(
                device_id=ctx.charger_id,
                ts=ctx.stamp(timestamp),
                connector_id=connector,
                transaction_id=tx,
                meter_stop_wh=float(meter_stop),
                reason=reason or "Local",  # OCPP 1.6: absent means Local
            )
        )
    else:
        ctx.problem("duplicate", f"StopTransaction re-sent: transaction {tx}")
    if id_tag is None:
        return {}
    return {"idTagInfo": {"status": ctx.backend.authorize(ctx.charger_id, id_tag)}}


def data_transfer(
    ctx: Context, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
) -> dict[str, Any]:
    detail = json.dumps({"message_id": message_id, "data": (data or "")[:200]})
    ctx.notice("data_transfer", vendor_id, detail)
    return {"status": "UnknownVendorId"}


def _status_notice(notice: str) -> Handler:
    def handle(ctx: Context, status: str, **_: Any) -> dict[str, Any]:
        ctx.notice(notice, status)
        return {}

    return handle


def security_event_notification(
    ctx: Context, type: str, timestamp: str, tech_info: str | None = None, **_: Any
) -> dict[str, Any]:
    ctx.notice("security", type, tech_info or "", ts=ctx.stamp(timestamp))
    return {}


HANDLERS16: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "MeterValues": meter_values,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": _status_notice("firmware"),
    "DiagnosticsStatusNotification": _status_notice("diagnostics"),
    # security whitepaper (1.6 security extension)
    "SecurityEventNotification": security_event_notification,
    "SignedFirmwareStatusNotification": _status_notice("firmware"),
    "LogStatusNotification": _status_notice("log"),
}
