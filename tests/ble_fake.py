"""An in-memory BLE world for the tests: bleak backends (``BaseBleakScanner``,
``BaseBleakClient``) over simulated berth sensors with GATT servers, so the real
``BleakScanner`` / ``BleakClient`` code path runs above them. This is the one fake the house
rules allow: there is no radio here.

A ``SimSensor`` advertises every ``Radio.adv_interval_s`` while a scan runs and serves its GATT
table as raw bytes (it checks lengths and ranges itself, from its own table below, as firmware
would). It can simulate a write that is acknowledged but not kept (``stuck``), connection
attempts that fail before one succeeds (``fail_connects``), a connection that never completes
(``hang_connect``), a recalibration that never finishes, and the radio can have no adapter.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from gateway.services.ble.link import Backend

SERVICE = "c17e0001-6a1d-4b2e-9f3c-8d5e2a7b1c40"
HEARTBEAT = "c17e0101-6a1d-4b2e-9f3c-8d5e2a7b1c40"
SENSITIVITY = "c17e0102-6a1d-4b2e-9f3c-8d5e2a7b1c40"
RECALIBRATE = "c17e0103-6a1d-4b2e-9f3c-8d5e2a7b1c40"
CALIBRATIONS = "c17e0104-6a1d-4b2e-9f3c-8d5e2a7b1c40"
BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"
INFO_SERVICE = "0000180a-0000-1000-8000-00805f9b34fb"
FIRMWARE = "00002a26-0000-1000-8000-00805f9b34fb"

# The firmware's own view of its table (written from docs/ble.md, not from drivers.ble):
# model -> (code, heartbeat struct, heartbeat unit s, heartbeat range on the wire,
#           sensitivity range, recalibrate command, has Battery Service, advertises battery)
FIRMWARE_TABLE: dict[str, tuple[int, str, int, tuple[int, int], tuple[int, int], int, bool, bool]]
FIRMWARE_TABLE = {
    "nwave-nps405": (1, "<I", 1, (60, 172_800), (1, 10), 0x01, True, True),
    "bosch-tps110": (2, "<H", 60, (10, 2880), (1, 5), 0xA5, True, False),
    "nbiot-geomag": (3, "<I", 1, (300, 604_800), (1, 100), 0x5A, False, True),
}


@dataclass
class SimSensor:
    address: str
    model: str
    rssi: int = -60
    battery_percent: int = 87
    firmware: str = "2.3.1"
    heartbeat_s: int = 86_400
    sensitivity: int = 3
    calibrations: int = 0
    name: str | None = None
    stuck: set[str] = field(default_factory=set)  # uuids whose writes are acked, not kept
    fail_connects: int = 0
    hang_connect: bool = False
    hang_reads: bool = False  # connected, then never answers a read
    config_service: bool = True  # False: advertises the service, but its GATT table lacks it
    recalibration_finishes: bool = True
    manufacturer_data: bytes | None = None  # None: as the firmware table says
    # what happened, for the tests to look at
    connect_attempts: int = 0
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    connected: bool = False

    @property
    def table(self) -> tuple[int, str, int, tuple[int, int], tuple[int, int], int, bool, bool]:
        return FIRMWARE_TABLE[self.model]

    def advertisement(self) -> AdvertisementData:
        code, *_, advertises_battery = self.table
        data = self.manufacturer_data
        if data is None:
            data = bytes((1, code, self.battery_percent if advertises_battery else 0xFF))
        return AdvertisementData(
            local_name=self.name, manufacturer_data={0xFFFF: data}, service_data={},
            service_uuids=[SERVICE], tx_power=None, rssi=self.rssi, platform_data=(),
        )  # fmt: skip

    def uuids(self) -> list[tuple[str, list[tuple[str, list[str]]]]]:
        """Services and their characteristics with properties."""
        services = [] if not self.config_service else [
            (SERVICE, [(HEARTBEAT, ["read", "write"]), (SENSITIVITY, ["read", "write"]),
                       (RECALIBRATE, ["write"]), (CALIBRATIONS, ["read"])]),
        ]  # fmt: skip
        services.append((INFO_SERVICE, [(FIRMWARE, ["read"])]))
        if self.table[6]:
            services.append((BATTERY_SERVICE, [(BATTERY, ["read"])]))
        return services

    def read(self, uuid: str) -> bytes:
        _, hb_struct, hb_unit, *_ = self.table
        if uuid == HEARTBEAT:
            return struct.pack(hb_struct, self.heartbeat_s // hb_unit)
        if uuid == SENSITIVITY:
            return bytes((self.sensitivity,))
        if uuid == CALIBRATIONS:
            return struct.pack("<H", self.calibrations % 0x10000)
        if uuid == BATTERY:
            return bytes((self.battery_percent,))
        if uuid == FIRMWARE:
            return self.firmware.encode()
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)

    def write(self, uuid: str, data: bytes) -> None:
        self.writes.append((uuid, data))
        _, hb_struct, hb_unit, hb_range, s_range, command, *_ = self.table
        if uuid == HEARTBEAT:
            if len(data) != struct.calcsize(hb_struct):
                raise BleakGATTProtocolError(
                    BleakGATTProtocolErrorCode.INVALID_ATTRIBUTE_VALUE_LENGTH
                )
            (raw,) = struct.unpack(hb_struct, data)
            if not hb_range[0] <= raw <= hb_range[1]:
                raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED)
            if uuid not in self.stuck:
                self.heartbeat_s = raw * hb_unit
        elif uuid == SENSITIVITY:
            if len(data) != 1:
                raise BleakGATTProtocolError(
                    BleakGATTProtocolErrorCode.INVALID_ATTRIBUTE_VALUE_LENGTH
                )
            if not s_range[0] <= data[0] <= s_range[1]:
                raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED)
            if uuid not in self.stuck:
                self.sensitivity = data[0]
        elif uuid == RECALIBRATE:
            if data != bytes((command,)):
                raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED)
            if self.recalibration_finishes and uuid not in self.stuck:
                # the baseline takes a moment: the counter moves after the write's response
                asyncio.get_running_loop().call_later(0.02, self._calibrated)
        else:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)

    def _calibrated(self) -> None:
        self.calibrations += 1


@dataclass
class Radio:
    """The air around the technician's laptop."""

    sensors: dict[str, SimSensor] = field(default_factory=dict)
    adapter: bool = True
    adv_interval_s: float = 0.01
    scan_error: BaseException | None = None  # raised when a scan starts
    scans: int = 0
    options_seen: list[dict[str, Any]] = field(default_factory=list)  # bleak's backend kwargs

    def add(self, sensor: SimSensor) -> SimSensor:
        self.sensors[sensor.address.upper()] = sensor
        return sensor

    def backend(self) -> Backend:
        return Backend(FakeScanner, FakeClient, {"radio": self})

    def check_adapter(self) -> None:
        if not self.adapter:
            raise BleakBluetoothNotAvailableError(
                "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
            )


# A phone nearby: advertises, but is no berth sensor (the scan filters it out).
PHONE = AdvertisementData(
    local_name="phone", manufacturer_data={0x004C: b"\x02\x15"}, service_data={},
    service_uuids=["0000fe9f-0000-1000-8000-00805f9b34fb"], tx_power=None, rssi=-40,
    platform_data=(),
)  # fmt: skip


class FakeScanner(BaseBleakScanner):
    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        radio: Radio,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio = radio
        radio.options_seen.append(kwargs)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._radio.check_adapter()
        self._radio.scans += 1
        if self._radio.scan_error is not None:
            raise self._radio.scan_error
        self.seen_devices = {}
        self._task = asyncio.create_task(self._air())

    async def _air(self) -> None:
        while True:
            self._hear("11:22:33:44:55:66", PHONE)
            for sensor in list(self._radio.sensors.values()):
                self._hear(sensor.address, sensor.advertisement())
            await asyncio.sleep(self._radio.adv_interval_s)

    def _hear(self, address: str, ad: AdvertisementData) -> None:
        if not self.is_allowed_uuid(ad.service_uuids):
            return
        device = self.create_or_update_device(address, address, ad.local_name, None, ad)
        self.call_detection_callbacks(device, ad)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class FakeClient(BaseBleakClient):
    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        radio: Radio,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._radio = radio
        radio.options_seen.append(kwargs)
        self._sensor: SimSensor | None = None

    @property
    def mtu_size(self) -> int:
        return 23

    @property
    def name(self) -> str:
        return self.address

    @property
    def is_connected(self) -> bool:
        return self._sensor is not None and self._sensor.connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        self._radio.check_adapter()
        sensor = self._radio.sensors.get(self.address.upper())
        if sensor is None:
            raise BleakDeviceNotFoundError(self.address)
        sensor.connect_attempts += 1
        if sensor.hang_connect:
            await asyncio.wait_for(asyncio.Event().wait(), self._timeout)  # as BlueZ times out
        if sensor.fail_connects > 0:
            sensor.fail_connects -= 1
            raise BleakError("le-connection-abort-by-local")
        sensor.connected = True
        self._sensor = sensor
        self.services = self._gatt(sensor)

    @staticmethod
    def _gatt(sensor: SimSensor) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        handle = 1
        for service_uuid, chars in sensor.uuids():
            service = BleakGATTService(None, handle, service_uuid)
            collection.add_service(service)
            handle += 1
            for uuid, props in chars:
                char = BleakGATTCharacteristic(None, handle, uuid, props, lambda: 20, service)  # type: ignore[arg-type]
                collection.add_characteristic(char)
                handle += 2
        return collection

    def _live(self) -> SimSensor:
        if self._sensor is None or not self._sensor.connected:
            raise BleakError("Not connected")
        return self._sensor

    async def disconnect(self) -> None:
        if self._sensor is not None:
            self._sensor.connected = False

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    async def unpair(self) -> None:
        raise NotImplementedError

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        sensor = self._live()
        if sensor.hang_reads:
            await asyncio.Event().wait()
        return bytearray(sensor.read(characteristic.uuid))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await asyncio.sleep(0)
        self._live().write(characteristic.uuid, bytes(data))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.REQUEST_NOT_SUPPORTED)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.REQUEST_NOT_SUPPORTED)
