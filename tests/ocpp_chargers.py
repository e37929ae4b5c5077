"""Simulated chargers for tests and benches: the ``ocpp`` library's own ChargePoint classes,
playing the charger, over real websockets.

A :class:`Charger16` or :class:`Charger201` (or :class:`Charger21`) connects with a chosen
subprotocol and basic-auth password, then boots, beats, reports status, meter values,
transactions and faults, and answers the central system's commands with the library's
handlers (recording each one). While disconnected it queues transaction messages, as real
chargers do, and delivers them in order (back-dated, ``offline`` on 2.0.1) when it
reconnects; an OCPP 1.6 transaction started offline gets its id on delivery.

    async with Charger16(url, "CP-1", "secret") as cp:
        await cp.boot()
        tx = await cp.start_transaction(1, "TAG1", meter_start=1000)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

DEFAULT = object()  # "the charger's own subprotocol"


def iso(ts: datetime | None = None) -> str:
    ts = (ts or datetime.now(UTC)).astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class ChargerOffline(ConnectionError):
    """A message that is not queued while offline (only transaction messages are)."""


@dataclass
class Tx:
    """A transaction as the charger knows it. OCPP 1.6: ``id`` is the central system's number
    (``None`` until a StartTransaction queued offline is delivered); 2.0.1: the charger's own."""

    connector_id: int
    id: int | str | None = None
    seq: int = 0

    def next_seq(self) -> int:
        seq, self.seq = self.seq, self.seq + 1
        return seq


Build = Callable[[bool], Any]  # queued? -> the library's call payload
After = Callable[[Any], None]  # what to do with the answer


@dataclass
class _Queued:
    build: Build
    after: After | None


class SimCharger:
    """What both versions share: connection, receive loop, offline queue, command record."""

    subprotocol = ""
    charge_point_class: type[Any] = object

    def __init__(
        self,
        base_url: str,
        charger_id: str,
        password: str | None = None,
        *,
        subprotocols: Any = DEFAULT,
        ssl_context: ssl.SSLContext | None = None,
        vendor: str = "SimVendor",
        model: str = "Sim-22",
        serial: str | None = "SN-0001",
        firmware: str = "1.0.0",
        response_timeout: float = 10,
        open_timeout: float = 5,
        ping_interval: float | None = 20,
    ) -> None:
        self.url = base_url.rstrip("/") + "/" + quote(charger_id, safe="")
        self.charger_id = charger_id
        self.password = password
        self.subprotocols: list[str] | None = (
            [self.subprotocol] if subprotocols is DEFAULT else subprotocols
        )
        self.ssl_context = ssl_context
        self.vendor, self.model, self.serial, self.firmware = vendor, model, serial, firmware
        self.response_timeout = response_timeout
        # Defaults as before (5 s; websockets' 20 s pings); a bench of thousands may change them.
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ws: ClientConnection | None = None
        self.cp: Any = None
        self.queue: list[_Queued] = []
        self.received: list[tuple[str, dict[str, Any]]] = []  # commands: (action, params)
        self.answers: dict[str, str] = {}  # action -> status to answer with
        self.silent = False  # True: commands get no answer at all
        self.ignored: list[str] = []  # commands received while silent
        self.triggered: list[str] = []  # messages sent because of a TriggerMessage
        self.energy_wh = 0.0
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- connection -------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self.ws is not None

    async def connect(self) -> None:
        """Open the websocket, start answering commands, deliver the queue in order."""
        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.charger_id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.ws = await connect(
            self.url,
            subprotocols=self.subprotocols,  # type: ignore[arg-type]
            additional_headers=headers,
            ssl=self.ssl_context,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
        )
        self.cp = self.charge_point_class(self.charger_id, self.ws, self.response_timeout)
        self.cp.sim = self
        self._loop = asyncio.create_task(self._receive())
        queued, self.queue = self.queue, []
        for item in queued:
            await self._deliver(item, queued=True)

    async def _receive(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.cp.start()

    async def disconnect(self) -> None:
        """Close the websocket cleanly; the charger is offline until :meth:`connect`."""
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close()
        await self._stop_tasks()

    async def drop(self) -> None:
        """Lose the connection without a close handshake (a cut cable)."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.transport.abort()
        await self._stop_tasks()

    async def wait_closed(self) -> None:
        """Wait until the central system closes the connection."""
        if self._loop is not None:
            await self._loop
        self.ws = None

    async def _stop_tasks(self) -> None:
        tasks = [*self._tasks, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._loop = None

    async def __aenter__(self) -> SimCharger:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, build: Build, after: After | None = None, *, queue: bool = False) -> Any:
        """Send a message (built when it is sent). Offline: queue it if *queue* (transaction
        messages), else raise :class:`ChargerOffline`."""
        item = _Queued(build, after)
        if self.ws is None:
            if not queue:
                raise ChargerOffline(f"{self.charger_id} is offline")
            self.queue.append(item)
            return None
        return await self._deliver(item, queued=False)

    async def _deliver(self, item: _Queued, *, queued: bool) -> Any:
        answer = await self.cp.call(item.build(queued), suppress=False)
        if item.after is not None:
            item.after(answer)
        return answer

    def later(self, coro: Any) -> None:
        """Run *coro* after the current handler answered (never call from inside one)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answer(self, action: str, default: str) -> str:
        return self.answers.get(action, default)

    def record(self, action: str, **params: Any) -> None:
        self.received.append((action, params))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def triggered_message(self, message: str, connector_id: int | None) -> None:
        raise NotImplementedError


def _silenceable(cls: type[Any]) -> type[Any]:
    """A ChargePoint class whose charger can be told to ignore the central system's calls."""

    class Silenceable(cls):  # type: ignore[misc, valid-type]
        sim: SimCharger

        async def route_message(self, raw_msg: str) -> None:
            if self.sim.silent:
                with contextlib.suppress(ValueError, IndexError, TypeError):
                    if json.loads(raw_msg)[0] == 2:
                        self.sim.ignored.append(raw_msg)
                        return
            await super().route_message(raw_msg)

    return Silenceable


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


# -- OCPP 1.6 ---------------------------------------------------------------------------------


class _ChargePoint16(ChargePoint16):
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


# -- OCPP 2.0.1 / 2.1 -------------------------------------------------------------------------


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
            if known:
                self.sim.variables[key] = item["attribute_value"]
            results.append(
                {
                    "component": item["component"],
                    "variable": item["variable"],
                    "attribute_status": "Accepted" if known else "UnknownVariable",
                }
            )
        return self.result.SetVariables(set_variable_result=results)


class _ChargePoint201(_Handlers2, ChargePoint201):
    result = result201


class _ChargePoint21(_Handlers2, ChargePoint21):
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


@dataclass
class Fleet:
    """Many simulated chargers at once (benches, fleet tests)."""

    chargers: list[SimCharger] = field(default_factory=list)

    async def connect(self) -> None:
        await asyncio.gather(*(c.connect() for c in self.chargers))

    async def disconnect(self) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.chargers), return_exceptions=True)
