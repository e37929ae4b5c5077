"""The cheapest reading of the two bodies that are nearly all of a platform's traffic: a
Keepalive and a flat MobilePosition exactly as cams (and ``drivers.gb28181.device``) write
them, one field a line in the standard's order, read by one precompiled pattern over the bytes.

``canonical_manscdp`` takes only that text: the declaration (GB2312, GB18030 or UTF-8) or
none, ``<Notify>``, the fields in order without attributes, whitespace, entities or
comments, each value in the narrowest form its reader takes as is (an SN of digits, a 20-digit
DeviceID, a letters-only Status, a ``YYYY-MM-DDTHH:MM:SS`` time, plain decimals). Anything
else gives ``None`` and the caller goes on to ``quick_manscdp`` and then ``parse_manscdp``
(with its XML limits). What it returns is what ``parse_manscdp`` returns for the same body,
the same bounds applied (a value out of bounds: ``None``, the general way refuses it and says
why); the tests hold the two to that over generated and perturbed bodies.

A position's time is read once per distinct text and zone (``_TIMES``, bounded): every cam
reporting in the same second sends the same one.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from drivers.gb28181.fields import time_text
from drivers.gb28181.messages import Keepalive, MobilePositions, Position
from drivers.gb28181.xmlsafe import DEFAULT_LIMITS, ManscdpError, XmlLimits

__all__ = ["canonical_manscdp"]

_DECL = rb'(?:<\?xml version="1\.0" encoding="(?:GB2312|GB18030|UTF-8)"\?>\r\n)?<Notify>\r\n'
_HEAD = rb"<SN>([0-9]{1,18})</SN>\r\n<DeviceID>([0-9]{20})</DeviceID>\r\n"
_NUM = rb"(-?[0-9]{1,6}(?:\.[0-9]{1,12})?)"
_END = rb"</Notify>(?:\r\n)?"
_KEEPALIVE = re.compile(
    _DECL + rb"<CmdType>Keepalive</CmdType>\r\n" + _HEAD
    + rb"(?:<Status>([A-Za-z]{1,32})</Status>\r\n)?" + _END
)  # fmt: skip
_POSITION = re.compile(
    _DECL + rb"<CmdType>MobilePosition</CmdType>\r\n" + _HEAD
    + rb"<Time>([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})</Time>\r\n"
    + rb"<Longitude>" + _NUM + rb"</Longitude>\r\n<Latitude>" + _NUM + rb"</Latitude>\r\n"
    + rb"(?:<Speed>" + _NUM + rb"</Speed>\r\n)?(?:<Direction>" + _NUM + rb"</Direction>\r\n)?"
    + rb"(?:<Altitude>" + _NUM + rb"</Altitude>\r\n)?" + _END
)  # fmt: skip
_TIMES: dict[tuple[bytes, tzinfo], datetime | None] = {}
_TIMES_MAX = 4096


def _time(raw: bytes, tz: tzinfo) -> datetime | None:
    """``time_text`` on *raw* (None: refused), remembered."""
    key = (raw, tz)
    try:
        return _TIMES[key]
    except KeyError:
        pass
    try:
        ts = time_text(raw.decode("ascii"), "Time", tz, required=True)
    except ManscdpError:
        ts = None
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    _TIMES[key] = ts
    return ts


class _OutOfBounds(Exception):
    """A value the general way refuses (``bad:<Field>``): the body is not this lane's."""


def _within(raw: bytes | None, lo: float, hi: float) -> float | None:
    """The number (None when absent); ``_OutOfBounds`` outside ``[lo, hi]``."""
    if raw is None:
        return None
    v = float(raw)
    if not lo <= v <= hi:
        raise _OutOfBounds
    return v


def canonical_manscdp(
    body: bytes, tz: tzinfo, limits: XmlLimits = DEFAULT_LIMITS
) -> Keepalive | MobilePositions | None:
    """*body* as ``parse_manscdp`` reads it when it is a canonical Keepalive or flat
    MobilePosition; else None (take ``quick_manscdp``, then ``parse_manscdp``)."""
    if len(body) > limits.max_bytes:
        return None
    m = _POSITION.fullmatch(body)
    if m is None:
        k = _KEEPALIVE.fullmatch(body)
        if k is None:
            return None
        sn, dev, status = k.groups()
        return Keepalive(
            int(sn), dev.decode("ascii"), status.decode("ascii").upper() if status else None
        )
    sn, dev_raw, t, lon_raw, lat_raw, speed_raw, dir_raw, alt_raw = m.groups()
    ts = _time(t, tz)
    if ts is None:
        return None
    lon, lat = float(lon_raw), float(lat_raw)  # both present: the pattern requires them
    try:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise _OutOfBounds
        speed = _within(speed_raw, 0, 1000)
        direction = _within(dir_raw, 0, 360)
        altitude = _within(alt_raw, -1000, 20000)
    except _OutOfBounds:
        return None
    dev = dev_raw.decode("ascii")
    if lon == 0 and lat == 0:
        return MobilePositions(dev, int(sn), ())  # no fix
    p = Position(dev, ts, lon, lat, speed, direction, altitude)
    return MobilePositions(dev, int(sn), (p,))
