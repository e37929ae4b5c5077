"""OCPP 2.0.1 (and 2.1, whose charger-sent messages we use are a superset): what a charger
sends in normal life and in trouble, answered and turned into events.

Pure functions of (context, payload). ``connector_id`` in events is the EVSE id. Transactions
come as TransactionEvent Started/Updated/Ended with a per-transaction seqNo: a re-sent one
(same seqNo) is answered again without a second event; queued ones (``offline``) keep the
charger's timestamps. OCPP 2.1 chargers get these handlers, validated against the 2.1 schemas
(the answers have the same shape); 2.1-only messages answer NotSupported.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action

from drivers.ocpp.handlers import MAX_CONNECTORS, Context, Handler, boot_accepted, heartbeat
from drivers.ocpp.values import energy_wh
from events import (
    ChargerBooted,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
)

__all__ = ["ACTIONS21", "ACTIONS201", "HANDLERS201"]

ACTIONS201 = frozenset(a.value for a in Action)
ACTIONS21 = frozenset(a.value for a in Action21)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def boot_notification(
    ctx: Context, charging_station: dict[str, Any], reason: str, **_: Any
) -> dict[str, Any]:
    ctx.publish(
        ChargerBooted(
            device_id=ctx.charger_id,
            ts=ctx.now,
            vendor=charging_station["vendor_name"],
            model=charging_station["model"],
            serial=_text(charging_station.get("serial_number")),
            firmware=_text(charging_station.get("firmware_version")),
            reason=reason,
        )
    )
    return boot_accepted(ctx)


def status_notification(
    ctx: Context,
    timestamp: str,
    connector_status: str,
    evse_id: int,
    connector_id: int,
    **_: Any,
) -> dict[str, Any]:
    ctx.connector(evse_id, what="evseId")
    ctx.publish(
        ConnectorStatusChanged(
            device_id=ctx.charger_id,
            ts=ctx.stamp(timestamp),
            connector_id=evse_id,
            status=connector_status,
            # An EVSE with several connectors (CCS + CHAdeMO) reports each one.
            info=None if connector_id == 1 else f"connector {connector_id}",
        )
    )
    return {}


def meter_values(ctx: Context, evse_id: int, meter_value: list[Any], **_: Any) -> dict[str, Any]:
    ctx.connector(evse_id, what="evseId")
    ctx.publish_meter(evse_id, None, meter_value)
    return {}


def _token_info(ctx: Context, id_token: dict[str, Any]) -> dict[str, str]:
    """idTokenInfo for a token: a charger set to free vend (NoAuthorization) is not asked
    about; every other token goes to the backend."""
    if id_token.get("type") == "NoAuthorization":
        return {"status": "Accepted"}
    return {"status": ctx.backend.authorize(ctx.charger_id, str(id_token.get("id_token", "")))}


def authorize(ctx: Context, id_token: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {"idTokenInfo": _token_info(ctx, id_token)}


def transaction_event(
    ctx: Context,
    event_type: str,
    timestamp: str,
    trigger_reason: str,
    seq_no: int,
    transaction_info: dict[str, Any],
    meter_value: list[Any] | None = None,
    evse: dict[str, Any] | None = None,
    id_token: dict[str, Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    tx: str = transaction_info["transaction_id"]
    evse_id = evse.get("id") if evse else None
    if isinstance(evse_id, int):
        ctx.connector(evse_id, what="evse.id", zero=False)
        ctx.ledger.place(tx, evse_id)
        connector = evse_id
    else:
        known = ctx.ledger.connector(tx)
        connector = 0 if known is None else known  # 0: not seen by this process
    ctx.in_window(timestamp)  # before the seqNo is taken: a refused event may come again
    answer: dict[str, Any] = {} if id_token is None else {"idTokenInfo": _token_info(ctx, id_token)}
    if ctx.ledger.seen(tx, seq_no):
        ctx.problem("duplicate", f"TransactionEvent {tx} seqNo {seq_no} re-sent")
        return answer
    ts = ctx.stamp(timestamp)
    if event_type == "Started":
        ctx.publish(
            ChargingStarted(
                device_id=ctx.charger_id,
                ts=ts,
                connector_id=connector,
                transaction_id=tx,
                id_tag=None if id_token is None else _text(id_token.get("id_token")),
                meter_start_wh=energy_wh(meter_value, "Transaction.Begin"),
            )
        )
        ctx.publish_meter(connector, tx, meter_value)
    elif event_type == "Ended":
        ctx.publish_meter(connector, tx, meter_value)
        if ctx.ledger.end(tx):
            ctx.publish(
                ChargingEnded(
                    device_id=ctx.charger_id,
                    ts=ts,
                    connector_id=connector,
                    transaction_id=tx,
                    meter_stop_wh=energy_wh(meter_value, "Transaction.End"),
                    reason=_text(transaction_info.get("stopped_reason")) or "Local",
                )
            )
    else:
        ctx.publish_meter(connector, tx, meter_value)
    return answer


def notify_event(ctx: Context, event_data: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
    for event in event_data:
        component = event.get("component") or {}
        variable = event.get("variable") or {}
        where = component.get("evse") or {}
        status = f"{component.get('name')}/{variable.get('name')}={event.get('actual_value')}"
        detail = {
            "event_id": event.get("event_id"),
            "evse_id": where.get("id"),
            "connector_id": where.get("connector_id"),
            "trigger": event.get("trigger"),
            "cleared": event.get("cleared", False),
            "tech_code": event.get("tech_code"),
            "tech_info": event.get("tech_info"),
            "transaction_id": event.get("transaction_id"),
        }
        severity = event.get("severity")  # OCPP 2.1 only
        ts = ctx.stamp(event.get("timestamp"))
        ctx.notice(
            "notify",
            status,
            json.dumps({k: v for k, v in detail.items() if v is not None}, ensure_ascii=False),
            ts=ts,
            severity=severity if isinstance(severity, int) else None,
        )
        _problem(ctx, component, variable, where, event, ts)
    return {}


def _problem(
    ctx: Context,
    component: dict[str, Any],
    variable: dict[str, Any],
    where: dict[str, Any],
    event: dict[str, Any],
    ts: datetime,
) -> None:
    """2.0.1 StatusNotification carries no error code: a fault's codes come as a NotifyEvent
    raising the ``Problem`` variable of an EVSE or connector. That becomes a Faulted status
    with the component/variable as error code and the techCode as vendor code, so inspectors
    see why (the charger's own StatusNotification follows later)."""
    evse = where.get("id")
    raised = str(event.get("actual_value", "")).strip().lower() == "true"
    if (
        variable.get("name") != "Problem"
        or not isinstance(evse, int)
        or evse < 1
        or evse > (ctx.backend.connector_count(ctx.charger_id) or MAX_CONNECTORS)
        or not raised
        or event.get("cleared")
    ):
        return
    ctx.publish(
        ConnectorStatusChanged(
            device_id=ctx.charger_id,
            ts=ts,
            connector_id=evse,
            status="Faulted",
            error_code=f"{component.get('name')}/Problem"[:50],
            vendor_error_code=(str(event["tech_code"])[:50] if event.get("tech_code") else None),
            info=(str(event["tech_info"])[:200] if event.get("tech_info") else None),
        )
    )


def security_event_notification(
    ctx: Context, type: str, timestamp: str, tech_info: str | None = None, **_: Any
) -> dict[str, Any]:
    ctx.notice("security", type, tech_info or "", ts=ctx.stamp(timestamp))
    return {}


def data_transfer(
    ctx: Context, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
) -> dict[str, Any]:
    shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    detail = {"message_id": message_id, "data": (shown or "")[:200]}
    ctx.notice("data_transfer", vendor_id, json.dumps(detail, ensure_ascii=False))
    return {"status": "UnknownVendorId"}


def _status_notice(notice: str) -> Handler:
    def handle(ctx: Context, status: str, **_: Any) -> dict[str, Any]:
        ctx.notice(notice, status)
        return {}

    return handle


def notify_report(
    ctx: Context,
    request_id: int,
    seq_no: int,
    tbc: bool = False,
    report_data: list[Any] | None = None,
    **_: Any,
) -> dict[str, Any]:
    # The answer to a GetBaseReport/GetReport: acknowledged; its inventory is not an event.
    detail = {
        "request_id": request_id,
        "seq_no": seq_no,
        "tbc": tbc,
        "items": len(report_data or []),
    }
    ctx.notice("report", "received", json.dumps(detail))
    return {}


HANDLERS201: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "MeterValues": meter_values,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "NotifyEvent": notify_event,
    "SecurityEventNotification": security_event_notification,
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": _status_notice("firmware"),
    "LogStatusNotification": _status_notice("log"),
    "NotifyReport": notify_report,
}
