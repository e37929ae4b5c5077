"""Why a BLE operation failed, in words a field technician can act on.

Every failure is a ``BleFailure`` with a stable ``code`` (the CLI maps each to its own exit
code), a message saying what happened and a hint saying what to do next. ``adapter_problem``
recognises the ways bleak says there is no usable Bluetooth on this machine: on Linux it
talks to BlueZ over the D-Bus system bus, so a machine without D-Bus raises
``FileNotFoundError`` (no socket), one without bluetoothd a D-Bus ``ServiceUnknown`` error,
and one without an adapter (or with it powered off) ``BleakBluetoothNotAvailableError``.
"""

from __future__ import annotations

from typing import Final, Literal

from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError
from bleak.exc import BleakBluetoothNotAvailableReason as R

__all__ = ["BleFailure", "FailureCode", "adapter_problem", "scan_problem"]

FailureCode = Literal[
    "not_found",
    "no_adapter",
    "verify_failed",
    "connect_failed",
    "timeout",
    "device_error",
    "bluetooth_error",
]

_NO_STACK: Final = (
    "install and start BlueZ (`apt-get install bluez`, `systemctl start bluetooth`), "
    "then check the adapter with `bluetoothctl list`"
)
_REASONS: Final = {
    R.NO_BLUETOOTH: ("no Bluetooth adapter found",
                     "plug in a BLE adapter (a USB dongle) and check `bluetoothctl list`"),
    R.NO_BLE_CENTRAL_ROLE: ("the Bluetooth adapter cannot act as a BLE central",
                            "use a Bluetooth 4.0+ (BLE) adapter"),
    R.POWERED_OFF: ("the Bluetooth adapter is powered off",
                    "turn it on: `bluetoothctl power on` (and `rfkill unblock bluetooth`)"),
    R.DENIED_BY_SYSTEM: ("access to Bluetooth was denied by the system",
                         "run as a user allowed to use BlueZ (group `bluetooth`) or as root"),
    R.DENIED_BY_USER: ("access to Bluetooth was denied",
                       "allow this program to use Bluetooth"),
}  # fmt: skip


class BleFailure(Exception):
    """A BLE operation that did not succeed: ``code``, what happened, what to do next."""

    def __init__(self, code: FailureCode, message: str, hint: str) -> None:
        super().__init__(message)
        self.code: FailureCode = code
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


def adapter_problem(exc: BaseException) -> BleFailure | None:
    """A ``no_adapter`` failure if *exc* says there is no usable Bluetooth here, else None."""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        message, hint = _REASONS.get(
            exc.reason, (f"Bluetooth is not available ({exc.args[0]})", _NO_STACK)
        )
        return BleFailure("no_adapter", message, hint)
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        if name in ("org.freedesktop.DBus.Error.ServiceUnknown",
                    "org.freedesktop.DBus.Error.NameHasNoOwner"):  # fmt: skip
            return BleFailure("no_adapter", "the Bluetooth service (bluetoothd) is not running",
                              _NO_STACK)  # fmt: skip
        if name == "org.bluez.Error.NotReady":
            return BleFailure("no_adapter", "the Bluetooth adapter is not ready (powered off?)",
                              _REASONS[R.POWERED_OFF][1])  # fmt: skip
        if name == "org.freedesktop.DBus.Error.AccessDenied":
            return BleFailure("no_adapter", "access to BlueZ was denied",
                              _REASONS[R.DENIED_BY_SYSTEM][1])  # fmt: skip
        return None
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return BleFailure(
            "no_adapter",
            f"no Bluetooth stack on this machine: the D-Bus system bus is not there ({exc})",
            _NO_STACK,
        )
    if isinstance(exc, PermissionError):
        return BleFailure("no_adapter", f"access to the D-Bus system bus was denied ({exc})",
                          _REASONS[R.DENIED_BY_SYSTEM][1])  # fmt: skip
    return None


def scan_problem(exc: BaseException) -> BleFailure:
    """What a failed scan says: no adapter, or another Bluetooth error in words."""
    problem = adapter_problem(exc)
    if problem is not None:
        return problem
    if isinstance(exc, BleakDBusError) and exc.dbus_error == "org.bluez.Error.InProgress":
        return BleFailure("bluetooth_error", "another program is scanning on this adapter",
                          "stop it (`bluetoothctl scan off`) or wait, then try again")  # fmt: skip
    return BleFailure("bluetooth_error", f"Bluetooth error while scanning: {exc}",
                      "try again; `bluetoothctl show` says how the adapter is")  # fmt: skip
