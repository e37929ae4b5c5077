"""What configuring a sensor writes and how its read-back is judged (sans-I/O).

``Request`` is what the technician asked for; ``plan`` turns it into the writes for one model
(refusing a value that model does not take, before anything is sent); ``verify`` compares what
was read back after each write. The I/O edge (``gateway.services.ble``) only moves the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.ble.charmap import MODELS, BleValueError, CharSpec, ModelMap

__all__ = ["Check", "Request", "Write", "check_any_model", "plan", "recalibrated", "verify"]


@dataclass(frozen=True, slots=True)
class Request:
    heartbeat_s: int | None = None
    sensitivity: int | None = None
    recalibrate: bool = False

    @property
    def empty(self) -> bool:
        return self.heartbeat_s is None and self.sensitivity is None and not self.recalibrate


@dataclass(frozen=True, slots=True)
class Write:
    """One value to write and read back."""

    spec: CharSpec
    value: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one write: ``read_back`` is None when the read-back did not decode."""

    name: str
    requested: int
    read_back: int | None
    ok: bool
    detail: str = ""


def plan(model: ModelMap, request: Request) -> list[Write]:
    """The writes of *request* on *model*, every value checked first (``BleValueError``)."""
    writes: list[Write] = []
    for spec, value in ((model.heartbeat, request.heartbeat_s),
                        (model.sensitivity, request.sensitivity)):  # fmt: skip
        if value is not None:
            writes.append(Write(spec, value, spec.encode(value)))
    return writes


def check_any_model(request: Request) -> None:
    """Refuse values that no known model accepts (used before the model is known)."""
    for name, value in (("heartbeat", request.heartbeat_s), ("sensitivity", request.sensitivity)):
        if value is None:
            continue
        errors: list[str] = []
        for m in MODELS.values():
            spec: CharSpec = getattr(m, name)
            try:
                spec.check(value)
            except BleValueError:
                errors.append(f"{m.model} {spec.describe()}")
            else:
                break
        else:
            raise BleValueError(f"{name} {value} is out of range for every model: "
                                + "; ".join(errors))  # fmt: skip


def verify(write: Write, data: bytes | bytearray) -> Check:
    """Did the value read back after *write* equal what was written?"""
    name = write.spec.name
    try:
        got = write.spec.decode(data)
    except BleValueError as exc:
        return Check(name, write.value, None, False, str(exc))
    if got != write.value:
        return Check(name, write.value, got, False, f"wrote {write.value}, read back {got}")
    return Check(name, write.value, got, True)


def recalibrated(before: int, after: int) -> bool:
    """The calibration counter moved on (uint16, so it may wrap)."""
    return (after - before) % 0x10000 != 0
