"""Simulated EV chargers for the demo: the town's chargers speak OCPP 1.6J to the gateway over
real websockets (the ``ocpp`` library's own ChargePoint), boot, report their connectors, answer
probes, and now and then charge a car with meter values.

Demo only: the gateway under demonstration provisions their passwords itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from ocpp import routing
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", routing.on(action))


def after(action: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", routing.after(action))


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _DemoCharger(ChargePoint):  # type: ignore[misc]
    """Answers what the central system may ask of a healthy public charger."""

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, **_: Any) -> None:
        if requested_message == "Heartbeat":
            await self.call(call.Heartbeat())


async def _charger(
    base_url: str,
    charger_id: str,
    password: str,
    connectors: int,
    stop: asyncio.Event,
    rng: random.Random,
    speed: float,
) -> None:
    token = base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    with contextlib.suppress(TimeoutError):  # staggered boots; none once the demo stops
        await asyncio.wait_for(stop.wait(), rng.uniform(0, 3))
    if stop.is_set():
        return
    async with connect(
        f"{base_url}/{charger_id}",
        subprotocols=[Subprotocol("ocpp1.6")],
        additional_headers={"Authorization": f"Basic {token}"},
        open_timeout=10,
    ) as ws:
        cp = _DemoCharger(charger_id, ws)
        receive = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                call.BootNotification(
                    charge_point_vendor="citygate-demo", charge_point_model="demo-charger"
                )
            )
            interval = max(10, int(boot.interval or 300))
            for n in range(1, connectors + 1):
                await cp.call(
                    call.StatusNotification(
                        connector_id=n, error_code="NoError", status="Available", timestamp=_now()
                    )
                )
            register = rng.randint(100_000, 5_000_000)
            while not stop.is_set():
                # A car arrives on a random connector, charges for a while, leaves.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.uniform(20, 120) / speed)
                if stop.is_set():
                    break
                n = rng.randint(1, connectors)
                await cp.call(
                    call.StatusNotification(
                        connector_id=n, error_code="NoError", status="Charging", timestamp=_now()
                    )
                )
                started = await cp.call(
                    call.StartTransaction(
                        connector_id=n, id_tag="DEMO-APP", meter_start=register, timestamp=_now()
                    )
                )
                for _ in range(rng.randint(2, 6)):
                    with contextlib.suppress(TimeoutError):  # the demo stopping ends the charge
                        await asyncio.wait_for(stop.wait(), min(interval, 30) / speed)
                    if stop.is_set():
                        break
                    register += rng.randint(500, 3_000)
                    await cp.call(
                        call.MeterValues(
                            connector_id=n,
                            transaction_id=started.transaction_id,
                            meter_value=[
                                {
                                    "timestamp": _now(),
                                    "sampled_value": [
                                        {
                                            "value": str(register),
                                            "measurand": "Energy.Active.Import.Register",
                                            "unit": "Wh",
                                        }
                                    ],
                                }
                            ],
                        )
                    )
                await cp.call(
                    call.StopTransaction(
                        meter_stop=register,
                        timestamp=_now(),
                        transaction_id=started.transaction_id,
                        reason="EVDisconnected",
                    )
                )
                await cp.call(
                    call.StatusNotification(
                        connector_id=n, error_code="NoError", status="Available", timestamp=_now()
                    )
                )
        finally:
            receive.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException):
                await receive


async def run_chargers(
    base_url: str,
    chargers: Mapping[str, tuple[str, int]],
    stop: asyncio.Event,
    *,
    speed: float = 1.0,
    seed: int = 56,
) -> None:
    """Run every charger (id -> (password, connectors)) until *stop*; one that loses its
    connection tries again after a pause, as a real one would."""
    rng = random.Random(seed)

    async def keep(charger_id: str, password: str, connectors: int) -> None:
        own = random.Random(rng.random())
        while not stop.is_set():
            try:
                await _charger(base_url, charger_id, password, connectors, stop, own, speed)
            except Exception as exc:
                log.debug("demo charger %s: %s: %s", charger_id, type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5)

    async with asyncio.TaskGroup() as tg:
        for charger_id, (password, connectors) in sorted(chargers.items()):
            tg.create_task(keep(charger_id, password, connectors))
