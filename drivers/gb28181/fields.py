"""Field readers for MANSCDP: numbers with bounds, device-local times, and the vendors'
battery and storage fields (names differ per firmware; none is in the standard).

A required field that is absent raises ``missing:<Field>``, a present one that is not a sane
value ``bad:<Field>``. Vendor extras are information: a value that makes no sense is left
out (kept raw in the extras), never a refusal of the whole message.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TypeVar

from drivers.gb28181.ids import is_device_id
from drivers.gb28181.xmlsafe import ManscdpError, child, local, text

__all__ = [
    "MAX_SUM",
    "Power",
    "child_or_root",
    "device_id_of",
    "device_id_text",
    "extras",
    "integer",
    "integer_text",
    "local_time",
    "number",
    "number_text",
    "power_of",
    "sn_of",
    "sn_text",
    "time_text",
]

T = TypeVar("T")
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_SN_MAX = 10**18
MAX_SUM = 1_000_000  # SumNum's parse-level sanity; the Catalog assembler bounds far lower
_NUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_INT = re.compile(r"[+-]?[0-9]{1,12}")
_SIZE = re.compile(r"\s*([+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}

BATTERY_NAMES = ("Battery", "BatteryLevel", "BatteryPercent", "Power", "Electricity")
STORAGE_TOTAL_NAMES = ("StorageCapacity", "TotalSpace", "TotalStorage", "Storage")
STORAGE_FREE_NAMES = ("FreeSpace", "StorageFree", "FreeStorage", "RemainSpace")
STORAGE_STATUS_NAMES = ("SDCard", "SDCardStatus", "StorageStatus", "TFCard")
_VENDOR = {n.lower() for n in (*BATTERY_NAMES, *STORAGE_TOTAL_NAMES, *STORAGE_FREE_NAMES)}
_VENDOR |= {n.lower() for n in STORAGE_STATUS_NAMES}
_SKIP = {"devicelist", "alarmstatus", "item"}  # subtrees that are not the device's own fields


def sn_of(root: ET.Element) -> int:
    """The ``SN`` (the query's serial number that the answer echoes)."""
    return sn_text(text(root, "SN", limit=40))


def sn_text(t: str | None) -> int:
    """``sn_of`` on the field's text (stripped, cut at 40; None when absent or empty)."""
    if t is None:
        raise ManscdpError("missing:SN")
    if not t.isascii() or not t.isdigit() or int(t) > _SN_MAX:
        raise ManscdpError("bad:SN", t[:24])
    return int(t)


def device_id_of(el: ET.Element, *names: str, required: bool = True) -> str | None:
    """A 20-digit id from the first of *names* present (default ``DeviceID``)."""
    names = names or ("DeviceID",)
    return device_id_text(text(el, *names, limit=40), names[0], required=required)


def device_id_text(t: str | None, name: str, *, required: bool = True) -> str | None:
    """``device_id_of`` on the field's text (*name*: the first name, for the reason)."""
    if t is None:
        if required:
            raise ManscdpError(f"missing:{name}")
        return None
    if not is_device_id(t):
        raise ManscdpError("bad_device_id", f"{name} {t[:24]!r}")
    return t


def number(
    el: ET.Element | None,
    name: str,
    lo: float,
    hi: float,
    *,
    required: bool = False,
    reason_name: str | None = None,
) -> float | None:
    """A finite number within ``[lo, hi]`` from child *name*; NaN and infinities refused."""
    return number_text(text(el, name, limit=40), reason_name or name, lo, hi, required=required)


def number_text(
    t: str | None, label: str, lo: float, hi: float, *, required: bool = False
) -> float | None:
    """``number`` on the field's text."""
    if t is None:
        if required:
            raise ManscdpError(f"missing:{label}")
        return None
    if _NUM.fullmatch(t) is None:
        raise ManscdpError(f"bad:{label}", f"{t[:24]!r} is not a number")
    v = float(t)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ManscdpError(f"bad:{label}", f"{t[:24]} outside {lo}..{hi}")
    return v


def integer(el: ET.Element | None, name: str, lo: int, hi: int) -> int | None:
    """An optional integer within ``[lo, hi]``; ``bad:<name>`` otherwise."""
    return integer_text(text(el, name, limit=40), name, lo, hi)


def integer_text(t: str | None, name: str, lo: int, hi: int) -> int | None:
    """``integer`` on the field's text."""
    if t is None:
        return None
    if _INT.fullmatch(t) is None:
        raise ManscdpError(f"bad:{name}", f"{t[:24]!r} is not an integer")
    v = int(t)
    if not lo <= v <= hi:
        raise ManscdpError(f"bad:{name}", f"{v} outside {lo}..{hi}")
    return v


def local_time(
    el: ET.Element | None, name: str, tz: tzinfo, *, required: bool = False
) -> datetime | None:
    """A device time as aware UTC. Devices send local wall time without a zone
    (``2026-12-02T14:05:09``, also with a space or milliseconds); it is read in *tz*, the
    town's. An explicit offset or ``Z`` is honoured."""
    return time_text(text(el, name, limit=40), name, tz, required=required)


def time_text(t: str | None, name: str, tz: tzinfo, *, required: bool = False) -> datetime | None:
    """``local_time`` on the field's text."""
    if t is None:
        if required:
            raise ManscdpError(f"missing:{name}")
        return None
    s = t.replace(" ", "T", 1)
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        raise ManscdpError(f"bad:{name}", f"{t[:32]!r} is not a time") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        ts = ts.replace(tzinfo=tz)
    try:
        out = ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ManscdpError(f"bad:{name}", t[:32]) from None
    if not _EARLIEST <= out < _LATEST:
        raise ManscdpError(f"bad:{name}", f"{t[:32]} outside 2000..2100")
    return out


@dataclass(frozen=True)
class Power:
    """Battery and storage as a vendor reported them (all optional: not in the standard)."""

    battery_percent: int | None = None
    storage_total_mb: float | None = None
    storage_free_mb: float | None = None
    storage_status: str | None = None


def _percent(t: str) -> int | None:
    m = _NUM.fullmatch(t.rstrip("%").strip())
    if m is None:
        return None
    v = float(m.group(0))
    return round(v) if math.isfinite(v) and 0 <= v <= 100 else None


def _megabytes(t: str) -> float | None:
    m = _SIZE.fullmatch(t)
    if m is None:
        return None
    v = float(m.group(1))
    prefix, suffix = m.group(2).lower(), m.group(3).lower()
    if prefix:
        mb = v * _UNIT_MB[prefix]
    elif suffix == "b":
        mb = v / 2**20  # bytes
    elif suffix:
        return None  # "ib" without a prefix: not a unit
    else:
        mb = v  # no unit: MB, what the vendors seen send
    return mb if math.isfinite(mb) and mb <= 1e9 else None  # 1 PB: no body cam has more


def _vendor_fields(root: ET.Element) -> dict[str, str]:
    """Leaf fields with a vendor name anywhere outside item lists, first occurrence wins."""
    found: dict[str, str] = {}
    stack = [root]
    while stack:
        el = stack.pop()
        for c in el:
            name = local(c.tag)
            if name in _SKIP:
                continue
            if len(c):
                stack.append(c)
            elif name in _VENDOR and name not in found:
                t = text(c, limit=64)
                if t is not None:
                    found[name] = t
    return found


def _first(f: dict[str, str], names: tuple[str, ...], conv: Callable[[str], T | None]) -> T | None:
    for n in names:
        t = f.get(n.lower())
        v = conv(t) if t is not None else None
        if v is not None:
            return v
    return None


def _status(t: str) -> str:
    return t.upper()[:32]


def power_of(root: ET.Element) -> Power:
    """Battery percent, storage total/free in MB (unit suffixes read, MB assumed without
    one) and a storage status, from the common vendor names."""
    f = _vendor_fields(root)
    return Power(
        battery_percent=_first(f, BATTERY_NAMES, _percent),
        storage_total_mb=_first(f, STORAGE_TOTAL_NAMES, _megabytes),
        storage_free_mb=_first(f, STORAGE_FREE_NAMES, _megabytes),
        storage_status=_first(f, STORAGE_STATUS_NAMES, _status),
    )


def extras(root: ET.Element, known: set[str], limit: int = 32) -> dict[str, str]:
    """Unknown leaf fields of the root, raw and bounded (count, length), for diagnosis."""
    out: dict[str, str] = {}
    for c in root:
        name = local(c.tag)
        if name in known or len(c) or len(out) >= limit:
            continue
        t = text(c, limit=128)
        if t is not None and name and name not in out:
            out[name[:40]] = t
    return out


def child_or_root(root: ET.Element, name: str) -> ET.Element:
    """``root/<name>`` if present, else root (fields some vendors nest, others do not)."""
    found = child(root, name)
    return root if found is None else found
