"""OCPP 2.0.1 (and 2.1, whose charger-sent messages we use are a superset): what a charger
sends in normal life and in trouble, answered and turned into events.

``connector_id`` in events is the EVSE id. Transactions come as TransactionEvent
Started/Updated/Ended with a per-transaction seqNo: a re-sent one (same seqNo) is answered
again without a second event; queued ones (``offline``) keep the charger's timestamps.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ocpp.v21 import call as call21
from ocpp.v21 import call_result as call_result21
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from charging.ocpp.rpc import Endpoint, iso, on
from charging.ocpp.values import energy_wh
from events import (
    ChargerBooted,
    ChargerHeartbeat,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    now_utc,
)

__all__ = ["CentralSystem21", "CentralSystem201"]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class CentralSystem201(Endpoint):
    _ocpp_version = "2.0.1"
    _call = call
    _call_result = call_result
    _actions = frozenset(a.value for a in Action)

    @on("BootNotification")
    def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        now = now_utc()
        self.publish(
            ChargerBooted(
                device_id=self.charger_id,
                ts=now,
                vendor=charging_station["vendor_name"],
                model=charging_station["model"],
                serial=_text(charging_station.get("serial_number")),
                firmware=_text(charging_station.get("firmware_version")),
                reason=reason,
            )
        )
        return call_result.BootNotification(
            current_time=iso(now),
            interval=self.backend.heartbeat_interval(self.charger_id),
            status="Accepted",
        )

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        now = now_utc()
        self.publish(ChargerHeartbeat(device_id=self.charger_id, ts=now))
        return call_result.Heartbeat(current_time=iso(now))

    @on("StatusNotification")
    def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> Any:
        self.publish(
            ConnectorStatusChanged(
                device_id=self.charger_id,
                ts=self.stamp(timestamp, now_utc()),
                connector_id=evse_id,
                status=connector_status,
                # An EVSE with several connectors (CCS + CHAdeMO) reports each one.
                info=None if connector_id == 1 else f"connector {connector_id}",
            )
        )
        return call_result.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list[Any], **_: Any) -> Any:
        self.publish_meter(evse_id, None, meter_value, now_utc())
        return call_result.MeterValues()

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return call_result.Authorize(id_token_info=await self._token_info(id_token))

    @on("TransactionEvent")
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[Any] | None = None,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        received = now_utc()
        tx: str = transaction_info["transaction_id"]
        evse_id = evse.get("id") if evse else None
        if isinstance(evse_id, int):
            self.ledger.place(tx, evse_id)
            connector = evse_id
        else:
            known = self.ledger.connector(tx)
            connector = 0 if known is None else known  # 0: not seen by this process
        info = None if id_token is None else await self._token_info(id_token)
        answer = call_result.TransactionEvent(id_token_info=info)
        if self.ledger.seen(tx, seq_no):
            self.problem("duplicate", f"TransactionEvent {tx} seqNo {seq_no} re-sent")
            return answer
        ts = self.stamp(timestamp, received)
        if event_type == "Started":
            self.publish(
                ChargingStarted(
                    device_id=self.charger_id,
                    ts=ts,
                    connector_id=connector,
                    transaction_id=tx,
                    id_tag=None if id_token is None else _text(id_token.get("id_token")),
                    meter_start_wh=energy_wh(meter_value, "Transaction.Begin"),
                )
            )
            self.publish_meter(connector, tx, meter_value, received)
        elif event_type == "Ended":
            self.publish_meter(connector, tx, meter_value, received)
            if self.ledger.end(tx):
                self.publish(
                    ChargingEnded(
                        device_id=self.charger_id,
                        ts=ts,
                        connector_id=connector,
                        transaction_id=tx,
                        meter_stop_wh=energy_wh(meter_value, "Transaction.End"),
                        reason=_text(transaction_info.get("stopped_reason")) or "Local",
                    )
                )
        else:
            self.publish_meter(connector, tx, meter_value, received)
        return answer

    @on("NotifyEvent")
    def on_notify_event(self, event_data: list[dict[str, Any]], **_: Any) -> Any:
        received = now_utc()
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
            ts = self.stamp(event.get("timestamp"), received)
            self.notice(
                "notify",
                status,
                json.dumps({k: v for k, v in detail.items() if v is not None}, ensure_ascii=False),
                ts=ts,
                severity=severity if isinstance(severity, int) else None,
            )
            self._problem(component, variable, where, event, ts)
        return call_result.NotifyEvent()

    def _problem(
        self,
        component: dict[str, Any],
        variable: dict[str, Any],
        where: dict[str, Any],
        event: dict[str, Any],
        ts: datetime,
    ) -> None:
        """2.0.1 StatusNotification carries no error code: a fault's codes come as a
        NotifyEvent raising the ``Problem`` variable of an EVSE or connector. That becomes a
        Faulted status with the component/variable as error code and the techCode as vendor
        code, so inspectors see why (the charger's own StatusNotification follows later)."""
        evse = where.get("id")
        raised = str(event.get("actual_value", "")).strip().lower() == "true"
        if (
            variable.get("name") != "Problem"
            or not isinstance(evse, int)
            or evse < 1
            or not raised
            or event.get("cleared")
        ):
            return
        self.publish(
            ConnectorStatusChanged(
                device_id=self.charger_id,
                ts=ts,
                connector_id=evse,
                status="Faulted",
                error_code=f"{component.get('name')}/Problem"[:50],
                vendor_error_code=(
                    str(event["tech_code"])[:50] if event.get("tech_code") else None
                ),
                info=(str(event["tech_info"])[:200] if event.get("tech_info") else None),
            )
        )

    @on("SecurityEventNotification")
    def on_security_event_notification(
        self, type: str, timestamp: str, tech_info: str | None = None, **_: Any
    ) -> Any:
        self.notice("security", type, tech_info or "", ts=self.stamp(timestamp, now_utc()))
        return call_result.SecurityEventNotification()

    @on("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> Any:
        shown = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        detail = {"message_id": message_id, "data": (shown or "")[:200]}
        self.notice("data_transfer", vendor_id, json.dumps(detail, ensure_ascii=False))
        return call_result.DataTransfer(status="UnknownVendorId")

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("firmware", status)
        return call_result.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def on_log_status_notification(self, status: str, **_: Any) -> Any:
        self.notice("log", status)
        return call_result.LogStatusNotification()

    @on("NotifyReport")
    def on_notify_report(
        self,
        request_id: int,
        seq_no: int,
        tbc: bool = False,
        report_data: list[Any] | None = None,
        **_: Any,
    ) -> Any:
        # The answer to a GetBaseReport/GetReport: acknowledged; its inventory is not an event.
        detail = {
            "request_id": request_id,
            "seq_no": seq_no,
            "tbc": tbc,
            "items": len(report_data or []),
        }
        self.notice("report", "received", json.dumps(detail))
        return call_result.NotifyReport()

    async def _token_info(self, id_token: dict[str, Any]) -> dict[str, str]:
        """idTokenInfo for a token: a charger set to free vend (NoAuthorization) is not asked
        about; every other token goes to the backend."""
        if id_token.get("type") == "NoAuthorization":
            return {"status": "Accepted"}
        status = await self.backend.authorize(self.charger_id, str(id_token.get("id_token", "")))
        return {"status": status}


class CentralSystem21(CentralSystem201):
    """OCPP 2.1: the 2.0.1 handlers, validated against the 2.1 schemas (the answers we give
    have the same shape); 2.1-only messages answer NotSupported."""

    _ocpp_version = "2.1"
    _call = call21
    _call_result = call_result21
    _actions = frozenset(a.value for a in Action21)
