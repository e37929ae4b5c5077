"""The bytes a lane's LED display and voice module take, framed per module model.

The camera (Vzenith ``serialData``) only carries bytes to its RS-485 port; what those bytes
must look like is the display module's own protocol, and no public one covers the makers'
modules. So, as for gate controllers, the framing is configuration per model: a TOML file
(``drivers/cameras/displays/*.toml``, or a technician's own) says the encoding, how lines are
carried (joined, or one frame per line with a line-select header), the frame's prefix and
suffix, a length field and a checksum. ``text-crlf`` (lines joined by CRLF, GB18030) is what
text-mode modules take; ``example-framed`` shows every field and is an example to copy, not a
maker's protocol. Pure: text in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from drivers.tomlmodels import load_model, shipped_model_of, shipped_names

__all__ = [
    "DisplayModelError",
    "Frame",
    "Framing",
    "checksum",
    "display_model",
    "display_model_names",
    "frame_text",
    "load_display_model",
]

MAX_TEXT = 64  # characters of one line or one voice text (the modules' usual limit)


def _hex(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError('hex bytes as a string, e.g. "AA 55"')
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"not hex bytes: {value!r}") from None


HexBytes = Annotated[bytes, BeforeValidator(_hex)]


class Frame(BaseModel):
    """One frame: ``prefix [length] header body [checksum] suffix``.

    ``length`` counts ``header + body`` (what most modules count); ``checksum`` covers
    ``[length] header body``. ``header`` may hold ``{line}`` (the 1-based line number) as the
    byte ``NN`` in hex, e.g. ``"01 {line}"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: HexBytes = b""
    header: str = ""
    suffix: HexBytes = b""

    @field_validator("header")
    @classmethod
    def _header_is_hex(cls, value: str) -> str:
        _hex(value.replace("{line}", "01"))
        return value

    length: Literal["none", "u8", "u16be", "u16le"] = "none"
    checksum: Literal["none", "sum8", "xor8", "crc16_modbus"] = "none"


class Framing(BaseModel):
    """A display module model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=40)
    description: str = ""
    encoding: Literal["gb18030", "gb2312", "ascii"] = "gb18030"
    lines: Literal["joined", "per_line"] = "joined"
    joiner: HexBytes = b"\r\n"  # between lines when joined
    display: Frame = Frame()
    voice: Frame = Frame()


class DisplayModelError(ValueError):
    """A display model that cannot be used (unknown, bad TOML, invalid)."""


def checksum(kind: str, data: bytes) -> bytes:
    """The checksum bytes of *data*: ``sum8``/``xor8`` one byte, ``crc16_modbus`` two
    (little-endian, as Modbus sends it)."""
    if kind == "none":
        return b""
    if kind == "sum8":
        return bytes([sum(data) & 0xFF])
    if kind == "xor8":
        x = 0
        for b in data:
            x ^= b
        return bytes([x])
    if kind == "crc16_modbus":
        crc = 0xFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        return crc.to_bytes(2, "little")
    raise ValueError(f"unknown checksum {kind!r}")


def _length(kind: str, n: int) -> bytes:
    if kind == "none":
        return b""
    if kind == "u8":
        return bytes([min(n, 0xFF)])
    return min(n, 0xFFFF).to_bytes(2, "big" if kind == "u16be" else "little")


def _frame(f: Frame, body: bytes, line: int = 0) -> bytes:
    header = bytes.fromhex(f.header.replace("{line}", f"{line:02x}")) if f.header else b""
    covered = _length(f.length, len(header) + len(body)) + header + body
    return f.prefix + covered + checksum(f.checksum, covered) + f.suffix


def _encode(framing: Framing, text: str) -> bytes:
    return text[:MAX_TEXT].encode(framing.encoding, "replace")


def frame_text(framing: Framing, lines: Sequence[str], voice: str | None) -> tuple[bytes, bytes]:
    """``(display bytes, voice bytes)`` for *lines* and *voice* (empty when nothing to send).
    Lines beyond 255 or characters the encoding lacks cannot break a frame: lines are capped,
    unknown characters become ``?``."""
    shown = [line for line in lines[:8] if line]
    if not shown:
        display = b""
    elif framing.lines == "joined":
        text = framing.joiner.join(_encode(framing, line) for line in shown)
        display = _frame(framing.display, text[: MAX_TEXT * 4])
    else:
        display = b"".join(
            _frame(framing.display, _encode(framing, line), i) for i, line in enumerate(shown, 1)
        )
    said = _frame(framing.voice, _encode(framing, voice)) if voice else b""
    return display, said


def display_model_names() -> list[str]:
    """The shipped display models, by name."""
    return shipped_names("drivers.cameras", "displays")


@cache
def display_model(name: str) -> Framing:
    """The shipped display model *name*."""
    return shipped_model_of(
        Framing, "drivers.cameras", "displays", name, "display model", DisplayModelError
    )


def load_display_model(path: Path) -> Framing:
    """A display model from a TOML file of the same shape as the shipped ones."""
    return load_model(Framing, path, DisplayModelError)
