"""Which physical bus a gate controller hangs on, from its URL, and the bus timing that follows.

``tcp://host:port`` is Modbus TCP (a controller with Ethernet, or a serial server in TCP mode);
``serial:///dev/ttyX?baudrate=9600&parity=N&stopbits=1`` is Modbus RTU on RS-485. Both take
``timeout_ms`` (per request) and ``gap_ms`` (silence between frames). Pure: parsing only.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "BusSpec",
    "BusUrlError",
    "SerialBus",
    "TcpBus",
    "canonical_bus_url",
    "char_time",
    "frame_gap",
    "parse_bus_url",
]

Ms = Annotated[float, Field(ge=0, le=60_000)]


class BusUrlError(ValueError):
    """A bus URL that cannot be used (the message says why)."""


class _Bus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_ms: Ms = 1000.0
    gap_ms: Ms | None = None  # None: the default for the bus (RTU: 3.5 character times)


class TcpBus(_Bus):
    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"


class SerialBus(_Bus):
    kind: Literal["serial"] = "serial"
    device: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=4_000_000)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def url(self) -> str:
        return (
            f"serial://{self.device}?baudrate={self.baudrate}&parity={self.parity}"
            f"&stopbits={self.stopbits}"
        )


BusSpec = TcpBus | SerialBus


def parse_bus_url(url: str) -> BusSpec:
    """The bus *url* names; unknown schemes, parameters or values are refused."""
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        if parts.scheme == "tcp":
            if not parts.hostname:
                raise BusUrlError(f"{url!r}: tcp://host:port needs a host")
            if parts.path not in ("", "/"):
                raise BusUrlError(f"{url!r}: no path after tcp://host:port")
            fields: dict[str, object] = {"host": parts.hostname, **query}
            if parts.port is not None:
                fields["port"] = parts.port
            return TcpBus.model_validate(fields)
        if parts.scheme == "serial":
            device = parts.path
            if parts.netloc or not device.startswith("/"):
                raise BusUrlError(f"{url!r}: serial:///dev/ttyX (three slashes, an absolute path)")
            if "parity" in query:
                query["parity"] = query["parity"].upper()[:1]
            ints = ("bytesize", "stopbits")
            fields = {"device": device, **{k: int(v) if k in ints else v for k, v in query.items()}}
            return SerialBus.model_validate(fields)
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, BusUrlError):
            raise
        raise BusUrlError(f"{url!r}: {_reason(exc)}") from None
    raise BusUrlError(f"{url!r}: the scheme must be tcp:// or serial://")


def canonical_bus_url(url: str) -> str:
    """*url* in the one spelling of its bus and settings (``tcp://HOST:1/`` and
    ``tcp://host:1`` are one bus): lower-case host, the port always, the serial line's
    settings always and in one order, the timings only when they are not the defaults. Two
    URLs name the same bus with the same settings exactly when these strings are equal, and
    the spelling parses back to the same bus. Raises ``BusUrlError`` as ``parse_bus_url``."""
    spec = parse_bus_url(url)
    timing = []
    if spec.timeout_ms != _Bus.model_fields["timeout_ms"].default:
        timing.append(f"timeout_ms={spec.timeout_ms:g}")
    if spec.gap_ms is not None:
        timing.append(f"gap_ms={spec.gap_ms:g}")
    if isinstance(spec, TcpBus):
        host = spec.host.lower()
        host = f"[{host}]" if ":" in host else host
        query = "&".join(timing)
        return f"tcp://{host}:{spec.port}" + (f"?{query}" if query else "")
    line = [f"baudrate={spec.baudrate}", f"bytesize={spec.bytesize}", f"parity={spec.parity}",
            f"stopbits={spec.stopbits}"]  # fmt: skip
    return f"serial://{spec.device}?" + "&".join(line + timing)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)


def char_time(bus: SerialBus) -> float:
    """Seconds one character takes on the line: start bit, data bits, parity, stop bits."""
    bits = 1 + bus.bytesize + (bus.parity != "N") + bus.stopbits
    return bits / bus.baudrate


def frame_gap(bus: BusSpec) -> float:
    """The silence to keep between the end of one frame and the next request, in seconds.

    RTU marks the end of a frame by 3.5 character times of silence; above 19200 baud the
    serial-line spec (Modbus over serial line 1.02, 2.5.1.1) fixes it at 1.75 ms. TCP frames
    carry their length, so none is needed unless configured (slow serial servers).
    """
    if bus.gap_ms is not None:
        return bus.gap_ms / 1000
    if isinstance(bus, TcpBus):
        return 0.0
    if bus.baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(bus)
