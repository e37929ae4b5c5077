"""How bleak's ways of saying "no Bluetooth here" become a message and a next step."""

from __future__ import annotations

import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from gateway.services.ble.errors import adapter_problem, scan_problem

R = BleakBluetoothNotAvailableReason


@pytest.mark.parametrize(
    ("exc", "message", "hint"),
    [
        (FileNotFoundError(2, "No such file"), "D-Bus system bus", "apt-get install bluez"),
        (ConnectionRefusedError(111, "refused"), "D-Bus system bus", "systemctl start bluetooth"),
        (PermissionError(13, "denied"), "denied", "group `bluetooth`"),
        (BleakBluetoothNotAvailableError("No Bluetooth adapters found.", R.NO_BLUETOOTH),
         "no Bluetooth adapter found", "plug in a BLE adapter"),
        (BleakBluetoothNotAvailableError("off", R.POWERED_OFF), "powered off", "power on"),
        (BleakBluetoothNotAvailableError("x", R.NO_BLE_CENTRAL_ROLE), "central", "BLE) adapter"),
        (BleakBluetoothNotAvailableError("x", R.DENIED_BY_SYSTEM), "denied", "group `bluetooth`"),
        (BleakBluetoothNotAvailableError("huh", R.UNKNOWN), "not available (huh)", "bluetoothctl"),
        (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []), "bluetoothd", "bluez"),
        (BleakDBusError("org.bluez.Error.NotReady", []), "not ready", "bluetoothctl power on"),
        (BleakDBusError("org.freedesktop.DBus.Error.AccessDenied", []), "denied", "root"),
    ],
)  # fmt: skip
def test_no_adapter_in_words(exc: BaseException, message: str, hint: str) -> None:
    problem = adapter_problem(exc)
    assert problem is not None and problem.code == "no_adapter"
    assert message in problem.message and hint in problem.hint
    assert problem.as_dict() == {"code": "no_adapter", "message": problem.message,
                                 "hint": problem.hint}  # fmt: skip


@pytest.mark.parametrize(
    "exc",
    [BleakError("le-connection-abort-by-local"), BleakDBusError("org.bluez.Error.Failed", []),
     TimeoutError(), ValueError("x")],
)  # fmt: skip
def test_other_errors_are_not_a_missing_adapter(exc: BaseException) -> None:
    assert adapter_problem(exc) is None
    assert scan_problem(exc).code == "bluetooth_error"
