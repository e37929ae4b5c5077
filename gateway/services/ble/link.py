"""The BLE edge: scan for configurable berth sensors and configure one over GATT, with bleak's
public API (``BleakScanner``, ``BleakClient``). The backend is pluggable (bleak's ``backend=``
argument): the platform's by default, an in-memory one in the tests (there is no radio there).

``configure`` finds the sensor by its advertisement, connects with retries (exponential
backoff with jitter, ``drivers.backoff``), writes each value with a response, reads every
written value back, and reports each check; all of it under one overall deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from drivers.backoff import Backoff
from drivers.ble import advert
from drivers.ble.charmap import (
    BATTERY_LEVEL_UUID,
    CONFIG_SERVICE_UUID,
    FIRMWARE_UUID,
    RECALIBRATE_UUID,
    BleValueError,
    ModelMap,
    decode_firmware,
    get_model,
)
from drivers.ble.plan import Check, Request, plan, recalibrated, verify
from gateway.services.ble.errors import BleFailure, adapter_problem, scan_problem

__all__ = ["Backend", "ConfigureReport", "Retry", "ScannedSensor", "configure", "scan"]

log = logging.getLogger("citygate.ble")


@dataclass(frozen=True)
class Backend:
    """Which bleak backends to use (None: the platform's) and extra arguments for them
    (``adapter`` for BlueZ: ``hci0``)."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None

    def kwargs(self) -> dict[str, Any]:
        out = dict(self.options)
        if self.adapter:
            out["bluez"] = {"adapter": self.adapter}
        return out


@dataclass(frozen=True)
class Retry:
    """Connection attempts and their pacing; ``rng`` is the jitter's random source."""

    attempts: int = 4
    connect_timeout_s: float = 10.0
    base_s: float = 0.5
    cap_s: float = 4.0
    rng: random.Random = field(default_factory=random.Random)


@dataclass(frozen=True)
class ScannedSensor:
    address: str
    name: str | None
    model: str | None
    rssi: int
    battery_percent: int | None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "name": self.name, "model": self.model, "rssi": self.rssi,
            "battery_percent": self.battery_percent, "problem": self.problem,
        }  # fmt: skip


@dataclass
class ConfigureReport:
    address: str
    model: str
    rssi: int | None = None
    attempts: int = 0
    firmware: str | None = None
    battery_percent: int | None = None
    before: dict[str, int | None] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "model": self.model, "rssi": self.rssi,
            "attempts": self.attempts, "firmware": self.firmware,
            "battery_percent": self.battery_percent, "before": self.before,
            "checks": [
                {"name": c.name, "requested": c.requested, "read_back": c.read_back,
                 "ok": c.ok, "detail": c.detail}
                for c in self.checks
            ],
            "ok": self.ok,
        }  # fmt: skip


def _sensor(device: BLEDevice, ad: AdvertisementData) -> ScannedSensor | None:
    parsed = advert.parse(ad.service_uuids, ad.manufacturer_data)
    if parsed is None:
        return None
    return ScannedSensor(device.address, ad.local_name or device.name, parsed.model, ad.rssi,
                         parsed.battery_percent, parsed.problem)  # fmt: skip


async def scan(timeout_s: float, backend: Backend) -> list[ScannedSensor]:
    """Every configurable sensor heard within *timeout_s*, strongest signal first."""
    try:
        async with BleakScanner(
            service_uuids=[CONFIG_SERVICE_UUID], backend=backend.scanner, **backend.kwargs()
        ) as scanner:
            await asyncio.sleep(timeout_s)  # the listening window itself
        found = scanner.discovered_devices_and_advertisement_data
    except (BleakError, OSError) as exc:
        raise scan_problem(exc) from exc
    sensors = [s for d, ad in found.values() if (s := _sensor(d, ad)) is not None]
    return sorted(sensors, key=lambda s: (-s.rssi, s.address))


async def _find(
    address: str, timeout_s: float, backend: Backend
) -> tuple[BLEDevice, AdvertisementData]:
    wanted = address.lower()
    try:
        async with BleakScanner(
            service_uuids=[CONFIG_SERVICE_UUID], backend=backend.scanner, **backend.kwargs()
        ) as scanner:
            async with asyncio.timeout(timeout_s):
                async for device, ad in scanner.advertisement_data():
                    if device.address.lower() == wanted:
                        return device, ad
    except TimeoutError:
        pass
    except (BleakError, OSError) as exc:
        raise scan_problem(exc) from exc
    raise BleFailure(
        "not_found",
        f"no configurable sensor {address} heard in {timeout_s:g} s",
        "check the address (`citygate ble scan` lists the sensors in range), move closer, "
        "or wake the sensor (a magnet on its reed switch) and try again",
    )


async def _connect(device: BLEDevice, retry: Retry, backend: Backend) -> tuple[BleakClient, int]:
    backoff = Backoff(base=retry.base_s, cap=retry.cap_s, rng=retry.rng)
    last = ""
    for attempt in range(1, retry.attempts + 1):
        client = BleakClient(
            device, timeout=retry.connect_timeout_s, backend=backend.client, **backend.kwargs()
        )
        try:
            async with asyncio.timeout(retry.connect_timeout_s):
                await client.connect()
            return client, attempt
        except (BleakError, OSError, TimeoutError) as exc:
            problem = adapter_problem(exc)
            if problem is not None:
                raise problem from exc
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.info("ble connect %s attempt %d/%d failed: %s",
                     device.address, attempt, retry.attempts, last)  # fmt: skip
        if attempt < retry.attempts:
            await asyncio.sleep(backoff.next_delay())
    raise BleFailure(
        "connect_failed",
        f"could not connect to {device.address} in {retry.attempts} attempts (last: {last})",
        "move closer to the sensor, make sure no other phone or laptop is connected to it, "
        "and try again (--attempts raises the number of tries)",
    )


async def _read_optional(client: BleakClient, uuid: str) -> bytearray | None:
    if client.services.get_characteristic(uuid) is None:
        return None
    return await client.read_gatt_char(uuid)


async def _session(
    client: BleakClient, model: ModelMap, request: Request, report: ConfigureReport,
    recalibration_timeout_s: float, poll_s: float,
) -> None:  # fmt: skip
    if client.services.get_service(CONFIG_SERVICE_UUID) is None:
        raise BleFailure(
            "device_error",
            f"{report.address} has no citygate configuration service ({CONFIG_SERVICE_UUID})",
            "this sensor's firmware does not speak the citygate profile: see docs/ble.md",
        )
    firmware = await _read_optional(client, FIRMWARE_UUID)
    report.firmware = None if firmware is None else decode_firmware(firmware)
    if model.gatt_battery:
        battery = await _read_optional(client, BATTERY_LEVEL_UUID)
        if battery is not None and len(battery) == 1 and battery[0] <= 100:
            report.battery_percent = battery[0]
    specs = (model.heartbeat, model.sensitivity, model.calibrations)
    for spec in specs:
        report.before[spec.name] = spec.decode(await client.read_gatt_char(spec.uuid))
    for write in plan(model, request):
        await client.write_gatt_char(write.spec.uuid, write.data, response=True)
        report.checks.append(verify(write, await client.read_gatt_char(write.spec.uuid)))
    if request.recalibrate:
        before = report.before["calibrations"] or 0
        counter = model.calibrations
        await client.write_gatt_char(
            RECALIBRATE_UUID, bytes((model.recalibrate_command,)), response=True
        )
        after = before
        loop = asyncio.get_running_loop()
        deadline = loop.time() + recalibration_timeout_s
        while True:  # the sensor counts a recalibration when it has finished one
            after = counter.decode(await client.read_gatt_char(counter.uuid))
            if recalibrated(before, after) or loop.time() >= deadline:
                break
            await asyncio.sleep(poll_s)
        done = recalibrated(before, after)
        detail = "" if done else (f"calibration counter still {after} after "
                                  f"{recalibration_timeout_s:g} s")  # fmt: skip
        report.checks.append(Check("recalibrate", (before + 1) % 0x10000, after, done, detail))


async def configure(
    address: str,
    request: Request,
    backend: Backend,
    *,
    model: str | None = None,
    scan_timeout_s: float = 10.0,
    timeout_s: float = 60.0,
    retry: Retry | None = None,
    recalibration_timeout_s: float = 10.0,
    poll_s: float = 0.2,
) -> ConfigureReport:
    """Find *address*, write *request* and read every written value back, within *timeout_s*.

    A value the model does not take is a ``BleValueError`` raised before connecting; every
    other failure is a ``BleFailure``. A read-back that differs is not an exception: it is a
    failed ``Check`` in the report (``report.ok`` is False).
    """
    retry = retry or Retry()
    if model is not None:
        plan(get_model(model), request)  # refuse bad values before any radio work
    try:
        async with asyncio.timeout(timeout_s):
            device, ad = await _find(address, min(scan_timeout_s, timeout_s), backend)
            parsed = advert.parse(ad.service_uuids, ad.manufacturer_data)
            chosen = model or (parsed.model if parsed else None)
            if chosen is None:
                why = parsed.problem if parsed else "it does not say"
                raise BleValueError(
                    f"the advertisement of {address} does not say its model ({why}): "
                    "give it with --model"
                )
            if model is not None and parsed and parsed.model and parsed.model != model:
                log.warning("ble %s advertises model %s; using --model %s",
                            address, parsed.model, model)  # fmt: skip
            model_map = get_model(chosen)
            plan(model_map, request)  # the advertised model's limits, still before connecting
            report = ConfigureReport(device.address, model_map.model, ad.rssi)
            report.battery_percent = parsed.battery_percent if parsed else None  # GATT's wins
            client, report.attempts = await _connect(device, retry, backend)
            try:
                await _session(client, model_map, request, report,
                               recalibration_timeout_s, poll_s)  # fmt: skip
            except BleValueError as exc:
                raise BleFailure("device_error", f"{address}: {exc}",
                                 "is --model right? `citygate ble scan` shows what the "
                                 "sensor advertises") from exc  # fmt: skip
            except BleakError as exc:
                raise BleFailure("device_error", f"{address}: GATT error: {exc}",
                                 "try again; if it persists, check the firmware against "
                                 "docs/ble.md") from exc  # fmt: skip
            finally:
                try:  # also after the deadline: leave the sensor free for the next client
                    async with asyncio.timeout(5.0):
                        await client.disconnect()
                except (BleakError, OSError, TimeoutError) as exc:
                    log.info("ble disconnect %s: %r", address, exc)
    except TimeoutError:
        raise BleFailure(
            "timeout",
            f"configuring {address} did not finish within {timeout_s:g} s",
            "move closer to the sensor and try again (--timeout gives it longer)",
        ) from None
    return report
