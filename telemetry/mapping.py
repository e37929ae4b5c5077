"""The one mapping from events to InfluxDB points (pure: no I/O, no clock).

``PointMapper.lines(event)`` turns any event of ``events/`` into zero or more line-protocol lines;
``health_lines`` does the same for the gateway's periodic metric snapshots. The schema (every
measurement, its tags, fields, units and types) is documented in ``docs/telemetry.md``.

Adding an event type is one small function registered with ``@mapping(EventType)``; it receives
the mapper (for the precomputed, escaped tag sets), the event and its timestamp in ns.

Rules kept here:

* tags are low-cardinality only: ``site``, ``kind``, ``model``, ``device`` (bounded by the device
  registry), plus a few bounded enums or registry ids where a measurement needs them (``report``,
  ``berth``, ``source``, ``reason``, ``component``, ``connector``, ``phase``, ``notice``); never a
  plate, a session or transaction id, an id tag, free text or a time;
* the same event always gives the same line (idempotent re-delivery overwrites itself);
* a field always has the same type (``float(...)``/``int(...)`` are applied, so a codec handing
  an ``int`` RSSI cannot flip a float field to integer, which InfluxDB would refuse);
* the hot path is plain string concatenation over cached, pre-escaped tag strings.

Over 400 lines on purpose: it is the one mapping from every event kind to its measurement,
documented field by field in docs/telemetry.md; one table is easier to check than many.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from events import (
    BerthState,
    BerthStateChanged,
    BodycamPosition,
    CarParkCount,
    CaseRaised,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerHeartbeat,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    CommsLost,
    CommsRestored,
    ConnectorStatusChanged,
    DroneAlert,
    DronePosition,
    Event,
    InputRejected,
    MagnetometerSample,
    MeterSample,
    PlateRead,
    SensorEvent,
    SensorHeartbeat,
    SensorStartup,
    SensorStatus,
    SiteCountsChanged,
)
from telemetry.lineproto import (
    MAX_TS_NS,
    MIN_TS_NS,
    escape_string,
    escape_tag_value,
    format_line,
    ts_ns,
)

__all__ = [
    "HEALTH_MEASUREMENT",
    "MAPPINGS",
    "DeviceTags",
    "PointMapper",
    "health_lines",
    "mapping",
]

E = TypeVar("E", bound=Event)
MapFn = Callable[["PointMapper", E, int], list[str]]

#: event type -> its mapping function (exact type match; see ``mapping``).
MAPPINGS: dict[type[Event], Callable[[PointMapper, Any, int], list[str]]] = {}

HEALTH_MEASUREMENT = "gateway"

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# Python datetimes stop at microseconds: the last three digits of every ns timestamp are free.
_SUB_US = 1000
_CACHE_LIMIT = 200_000
_MAX_UNKNOWN_ID = 64
# Chargers' own words (close reasons, vendor texts, notice details) are cut to this many
# characters: a field, never a tag, but still not an unbounded one.
_MAX_TEXT = 256
# A connector number is a tag only within this range (the town's chargers have 1..8 connectors;
# OCPP 1.6 connector 0 is the charger itself): a charger sending nonsense cannot add series.
_MAX_CONNECTOR = 255
_NOTICE_KINDS = frozenset({"security", "firmware", "diagnostics", "log", "notify", "data_transfer"})
_OCCUPIED = {BerthState.OCCUPIED: "1i", BerthState.FREE: "0i", BerthState.UNKNOWN: "-1i"}


@dataclass(frozen=True, slots=True)
class DeviceTags:
    """The low-cardinality tags of one device, as the registry knows it."""

    site: str | None
    kind: str
    model: str


def mapping(event_type: type[E]) -> Callable[[MapFn[E]], MapFn[E]]:
    """Register the mapping function of ``event_type`` (exactly that type, not subclasses)."""

    def register(fn: MapFn[E]) -> MapFn[E]:
        if event_type in MAPPINGS:
            raise ValueError(f"{event_type.__name__} already has a mapping")
        MAPPINGS[event_type] = fn
        return fn

    return register


class PointMapper:
    """Events -> line-protocol lines, with the device registry's tags.

    ``devices`` may be a live view of the registry: a device's cached, escaped tag strings are
    rebuilt as soon as the registry reports different tags for it (rebinding to another site).

    Counters: ``unmapped`` (events of a type without a mapping) and ``unwritable`` (events
    InfluxDB cannot store: a timestamp outside 1677-09-21..2262-04-11, or not one storable
    field value). Both kinds of event give no line.
    """

    def __init__(self, devices: Mapping[str, DeviceTags]) -> None:
        self.devices = devices
        self.unmapped = 0
        self.unwritable = 0
        # device id -> (registry entry it was built from, fallback model, dkm, site)
        self._dev: dict[str, tuple[DeviceTags | None, str, str, str]] = {}
        self._val: dict[str, str] = {}

    def lines(self, event: Event) -> list[str]:
        """Zero or more lines for ``event``; never raises for an event of ``events/``."""
        fn = MAPPINGS.get(type(event))
        if fn is None:
            self.unmapped += 1
            return []
        ns = ts_ns(event.ts)
        if not MIN_TS_NS <= ns <= MAX_TS_NS - _SUB_US:
            self.unwritable += 1
            return []
        out = fn(self, event, ns)
        if not out:
            self.unwritable += 1
        return out

    # -- escaped tag pieces (cached) ------------------------------------------------------------
    def tag(self, key: str, value: str | None) -> str:
        """``,key=value`` with the value escaped (cached), or ``""`` for an empty value."""
        if not value:
            return ""
        if type(value) is not str:
            value = str(value)
        esc = self._val.get(value)
        if esc is None:
            if len(self._val) >= _CACHE_LIMIT:
                self._val.clear()
            esc = self._val[value] = escape_tag_value(value)
        return "," + key + "=" + esc

    def device(self, device_id: str, model: str = "") -> tuple[str, str]:
        """The device's ``,device=…,kind=…,model=…`` piece and its ``,site=…`` piece.

        An id the registry does not know still gets its ``device`` tag (accepted events only come
        from registered devices, so the set stays bounded) and ``model`` falls back to the
        event's own model when it has one.
        """
        known = self.devices.get(device_id)
        hit = self._dev.get(device_id)
        if hit is not None:
            cached = hit[0]
            if known is None:
                if cached is None and hit[1] == model:
                    return hit[2], hit[3]
            elif cached is known or cached == known:
                return hit[2], hit[3]
        if known is not None:
            dkm = (
                self.tag("device", device_id)
                + self.tag("kind", known.kind)
                + self.tag("model", known.model)
            )
            site = self.tag("site", known.site)
        else:
            dkm = self.tag("device", device_id) + self.tag("model", model)
            site = ""
        if len(self._dev) >= _CACHE_LIMIT:
            self._dev.clear()
        self._dev[device_id] = (known, model, dkm, site)
        return dkm, site

    def site(self, site_id: str, fallback: str) -> str:
        """``,site=…`` from the event's own site id, else the registry's (``fallback``)."""
        return self.tag("site", site_id) if site_id else fallback


# -- field helpers: keys are constants of this module, already valid and needing no escape ----
# Events are typed but not checked at run time. A number of the other kind is converted when
# that is exact (an int RSSI, an integral float battery voltage, a bool) and anything else is
# skipped (text where a number belongs, 3600.5 for an int field), so the telemetry path never
# raises and a field never changes type.
def _int(out: list[str], key: str, value: int | None) -> None:
    if value is None:
        return
    if type(value) is not int:
        try:
            as_int = int(value)  # a bool, an IntEnum, an integral float
        except (TypeError, ValueError, OverflowError):
            return
        if as_int != value:
            return
        value = as_int
    if _INT64_MIN <= value <= _INT64_MAX:
        out.append(f"{key}={value}i")


def _float(out: list[str], key: str, value: float | None) -> None:
    if value is None:
        return
    if type(value) is not float:
        if isinstance(value, str | bytes):
            return
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            return
    if value - value == 0.0:  # finite: NaN and +-inf cannot be stored
        out.append(f"{key}={value!r}")


def _str(out: list[str], key: str, value: str | None) -> None:
    if value is not None:
        out.append(key + "=" + escape_string(value if type(value) is str else str(value)))


def _flag(out: list[str], key: str, value: bool | None) -> None:
    if value is not None:
        out.append(key + ("=1i" if value else "=0i"))


def _radio(out: list[str], e: SensorEvent) -> None:
    # Every sensor event passes here: the common exact types are formatted inline.
    fcnt, rssi, snr = e.fcnt, e.rssi, e.snr
    if type(fcnt) is int and _INT64_MIN <= fcnt <= _INT64_MAX:
        out.append(f"fcnt={fcnt}i")
    else:
        _int(out, "fcnt", fcnt)
    if type(rssi) is float and rssi - rssi == 0.0:
        out.append(f"rssi={rssi!r}")
    else:
        _float(out, "rssi", rssi)
    if type(snr) is float and snr - snr == 0.0:
        out.append(f"snr={snr!r}")
    else:
        _float(out, "snr", snr)


def _text(out: list[str], key: str, value: str | None, limit: int = _MAX_TEXT) -> None:
    """A charger's free text: skipped when absent or empty, cut to ``limit`` characters."""
    if value is None:
        return
    text = value if type(value) is str else str(value)
    if text:
        out.append(key + "=" + escape_string(text[:limit]))


def _discriminator(*parts: str) -> int:
    """A stable number 0..999 from event content, for the free sub-microsecond digits."""
    return zlib.crc32("\x00".join(parts).encode("utf-8", "replace")) % _SUB_US


# -- berth sensors ----------------------------------------------------------------------------
def _sensor_line(m: PointMapper, e: SensorEvent, report: str, out: list[str], ns: int) -> str:
    dkm, site = m.device(e.device_id, e.model)
    _radio(out, e)
    return f"berth_sensor{dkm},report={report}{site} {','.join(out)} {ns}"


@mapping(SensorStatus)
def _sensor_status(m: PointMapper, e: SensorStatus, ns: int) -> list[str]:
    out = ["count=1i,occupied=1i" if e.occupied else "count=1i,occupied=0i"]
    return [_sensor_line(m, e, "status", out, ns)]


@mapping(SensorHeartbeat)
def _sensor_heartbeat(m: PointMapper, e: SensorHeartbeat, ns: int) -> list[str]:
    out = ["count=1i"]
    _flag(out, "occupied", e.occupied)
    _int(out, "battery_mv", e.battery_mv)
    _float(out, "temperature_c", e.temperature_c)
    return [_sensor_line(m, e, "heartbeat", out, ns)]


@mapping(SensorStartup)
def _sensor_startup(m: PointMapper, e: SensorStartup, ns: int) -> list[str]:
    out = ["count=1i"]
    _flag(out, "occupied", e.occupied)
    _str(out, "firmware", e.firmware)
    _str(out, "reset_cause", e.reset_cause)
    return [_sensor_line(m, e, "startup", out, ns)]


@mapping(MagnetometerSample)
def _magnetometer(m: PointMapper, e: MagnetometerSample, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id, e.model)
    (rx, ry, rz), (bx, by, bz) = e.raw, e.baseline
    dx, dy, dz = int(rx) - int(bx), int(ry) - int(by), int(rz) - int(bz)
    out: list[str] = []
    _int(out, "raw_x", rx)
    _int(out, "raw_y", ry)
    _int(out, "raw_z", rz)
    _int(out, "base_x", bx)
    _int(out, "base_y", by)
    _int(out, "base_z", bz)
    # |raw - baseline| against the sensor's own baseline: the integer sum is exact and
    # math.sqrt rounds once, so the same sample always gives the same float.
    if max(abs(dx), abs(dy), abs(dz)) < 2**60:
        _float(out, "magnitude", math.sqrt(dx * dx + dy * dy + dz * dz))
    _int(out, "battery_mv", e.battery_mv)
    _radio(out, e)
    return [f"magnetometer{dkm}{site} {','.join(out)} {ns}"]


# -- occupancy --------------------------------------------------------------------------------
@mapping(BerthStateChanged)
def _berth_state(m: PointMapper, e: BerthStateChanged, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    fields = (
        f"state={escape_string(str(e.state))},previous={escape_string(str(e.previous))},"
        f"occupied={_OCCUPIED.get(e.state, '-1i')}"
    )
    return [f"berth_state{m.tag('berth', e.berth_id)}{dkm}{m.site(e.site_id, site)} {fields} {ns}"]


def _comms(
    m: PointMapper, e: CommsLost | CommsRestored, up: bool, silent_s: float | None, ns: int
) -> list[str]:
    dkm, site = m.device(e.device_id)
    out = ['state="restored",up=1i' if up else 'state="lost",up=0i']
    _float(out, "silent_s", silent_s)
    tags = f"{m.tag('berth', e.berth_id)}{dkm}{m.site(e.site_id, site)}"
    return [f"comms{tags} {','.join(out)} {ns}"]


@mapping(CommsLost)
def _comms_lost(m: PointMapper, e: CommsLost, ns: int) -> list[str]:
    try:
        silent = None if e.last_seen is None else (e.ts - e.last_seen).total_seconds()
    except TypeError:  # a naive last_seen: unknown rather than guessed
        silent = None
    return _comms(m, e, False, silent, ns)


@mapping(CommsRestored)
def _comms_restored(m: PointMapper, e: CommsRestored, ns: int) -> list[str]:
    return _comms(m, e, True, e.silent_s, ns)


@mapping(CarParkCount)
def _carpark_count(m: PointMapper, e: CarParkCount, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    out: list[str] = []
    _int(out, "entered", e.entered)
    _int(out, "exited", e.exited)
    _int(out, "occupied", e.occupied)
    _int(out, "seq", e.seq)
    if not out:
        return []
    # Controllers often stamp whole seconds: two reports of one controller may share a time.
    # A deterministic sub-microsecond offset keeps them apart (and a re-sent one identical).
    if type(e.seq) is int:
        ns += e.seq % _SUB_US
    else:
        ns += _discriminator(str(e.entered), str(e.exited), str(e.occupied))
    return [f"carpark_count{dkm}{m.site(e.site_id, site)} {','.join(out)} {ns}"]


@mapping(SiteCountsChanged)
def _site_counts(m: PointMapper, e: SiteCountsChanged, ns: int) -> list[str]:
    # One series per site: the causing device is not part of a site's identity, and two
    # changes at one instant are successive states of the same thing (the later one wins).
    out: list[str] = []
    _int(out, "capacity", e.capacity)
    _int(out, "free", e.free)
    _int(out, "occupied", e.occupied)
    _int(out, "unknown", e.unknown)
    if not out:
        return []
    return [f"site_counts{m.tag('site', e.site_id)} {','.join(out)} {ns}"]


# -- parking sessions and enforcement -----------------------------------------------------------
@mapping(PlateRead)
def _plate_read(m: PointMapper, e: PlateRead, ns: int) -> list[str]:
    # The plate itself is personal data and unbounded: it is never written as a tag or field.
    fields = "count=1i"
    if e.confidence is not None and math.isfinite(e.confidence):
        fields += f",confidence={float(e.confidence)!r}"
    tags = (
        f"{m.tag('camera', e.device_id)}{m.tag('direction', e.direction)}{m.tag('site', e.site_id)}"
    )
    return [f"plate_read{tags} {fields} {ns + _discriminator(e.plate)}"]


@mapping(CaseRaised)
def _case_raised(m: PointMapper, e: CaseRaised, ns: int) -> list[str]:
    tags = m.tag("category", e.category) + m.tag("rule", e.rule_id)
    if e.site_id:
        tags += m.tag("site", e.site_id)
    return [f"case_raised{tags} count=1i {ns + _discriminator(e.dedup_key)}"]


# -- body cams ----------------------------------------------------------------------------------
@mapping(BodycamPosition)
def _bodycam_position(m: PointMapper, e: BodycamPosition, ns: int) -> list[str]:
    tags = m.tag("device", e.device_id) + m.tag("officer", e.officer_id)
    tags += m.tag("squad", e.squad)
    out: list[str] = []
    fields = (("lat", e.lat), ("lon", e.lon), ("speed_kmh", e.speed_kmh),
              ("direction_deg", e.direction_deg), ("altitude_m", e.altitude_m))  # fmt: skip
    for key, value in fields:
        _float(out, key, value)
    if len(out) < 2 or not out[0].startswith("lat=") or not out[1].startswith("lon="):
        return []  # without a finite fix there is no point
    return [f"bodycam_position{tags} {','.join(out)} {ns}"]


# -- patrol drones -------------------------------------------------------------------------------
_DRONE_ALERTS = frozenset({"left_area", "low_battery", "link_lost"})


@mapping(DronePosition)
def _drone_position(m: PointMapper, e: DronePosition, ns: int) -> list[str]:
    out: list[str] = []
    fields = (("lat", e.lat), ("lon", e.lon), ("height_m", e.height_m),
              ("elevation_m", e.elevation_m), ("speed_mps", e.speed_mps),
              ("heading_deg", e.heading_deg), ("battery_percent", e.battery_percent))  # fmt: skip
    for key, value in fields:
        _float(out, key, value)
    if len(out) < 2 or not out[0].startswith("lat=") or not out[1].startswith("lon="):
        return []  # without a finite fix there is no point
    return [f"drone_position{m.tag('device', e.device_id)} {','.join(out)} {ns}"]


@mapping(DroneAlert)
def _drone_alert(m: PointMapper, e: DroneAlert, ns: int) -> list[str]:
    # ``alert`` is a tag only for the three kinds the rules raise (anything else: ``other``).
    alert = e.alert if e.alert in _DRONE_ALERTS else "other"
    out = ["raised=1i" if e.raised else "raised=0i"]
    _text(out, "detail", e.detail)
    ns += 1 if e.raised else 0  # a clear and a raise of one instant: both kept, raise last
    return [f"drone_alert{m.tag('alert', alert)}{m.tag('device', e.device_id)} "
            f"{','.join(out)} {ns}"]  # fmt: skip


# -- edge ---------------------------------------------------------------------------------------
@mapping(InputRejected)
def _rejection(m: PointMapper, e: InputRejected, ns: int) -> list[str]:
    # Device tags only for a registered device: a rejected message's id is untrusted input
    # (``unknown_device``), and an unbounded tag would blow up the series count.
    fields = "count=1i"
    device_id = str(e.device_id)
    if device_id in m.devices:
        dkm, site = m.device(device_id)
    else:
        dkm = site = ""
        if device_id:
            fields += ",device_id=" + escape_string(device_id[:_MAX_UNKNOWN_ID])
    tags = f"{dkm}{m.tag('reason', e.reason)}{site}{m.tag('source', e.source)}"
    # Rejections are stamped by the gateway's clock: distinct ones may share a microsecond.
    ns += _discriminator(device_id, str(e.detail))
    return [f"rejection{tags} {fields} {ns}"]


# -- EV chargers (OCPP) ------------------------------------------------------------------------
# Tags: ``connector`` (bounded, see ``_connector``) < ``device``/``kind``/``model`` (registry) <
# ``notice``/``phase`` (fixed enums) < ``site`` (registry). Transaction ids are fields at most;
# id tags (RFID cards, user tokens: personal data) are never written.
def _connector(m: PointMapper, connector_id: int, out: list[str]) -> str:
    """The ``,connector=N`` tag for a plausible connector number; anything else (a charger's
    nonsense) becomes the ``connector_id`` field instead, so it cannot add series."""
    if type(connector_id) is int and 0 <= connector_id <= _MAX_CONNECTOR:
        return m.tag("connector", str(connector_id))
    _int(out, "connector_id", connector_id)
    return ""


@mapping(ChargerConnected)
def _charger_connected(m: PointMapper, e: ChargerConnected, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    out = ['state="connected",up=1i']
    _text(out, "protocol", e.protocol)
    _text(out, "remote", e.remote)
    # A replacing connection can be stamped in the same microsecond as the close of the one it
    # replaces: a connect takes the upper half of the free digits, a disconnect the lower half,
    # so both are kept and the charger ends up "up".
    ns += _SUB_US // 2 + _discriminator(*out) % (_SUB_US // 2)
    return [f"charger_link{dkm}{site} {','.join(out)} {ns}"]


@mapping(ChargerDisconnected)
def _charger_disconnected(m: PointMapper, e: ChargerDisconnected, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    out = ['state="disconnected",up=0i']
    _text(out, "reason", e.reason)
    ns += _discriminator(*out) % (_SUB_US // 2)
    return [f"charger_link{dkm}{site} {','.join(out)} {ns}"]


@mapping(ChargerBooted)
def _charger_booted(m: PointMapper, e: ChargerBooted, ns: int) -> list[str]:
    # ``model`` stays the registry's tag (the reported one only for a charger it does not know):
    # what the charger says of itself is a field, so a firmware that spells its vendor or model
    # differently cannot split the charger's series.
    dkm, site = m.device(e.device_id, e.model if type(e.model) is str else "")
    out = ["count=1i"]
    _text(out, "vendor", e.vendor)
    _text(out, "reported_model", e.model)
    _text(out, "serial", e.serial)
    _text(out, "firmware", e.firmware)
    _text(out, "reason", e.reason)
    return [f"charger_boot{dkm}{site} {','.join(out)} {ns}"]


@mapping(ChargerHeartbeat)
def _charger_heartbeat(m: PointMapper, e: ChargerHeartbeat, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    return [f"charger_heartbeat{dkm}{site} count=1i {ns}"]


@mapping(ConnectorStatusChanged)
def _connector_status(m: PointMapper, e: ConnectorStatusChanged, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    out: list[str] = []
    connector = _connector(m, e.connector_id, out)
    status = e.status if type(e.status) is str else str(e.status)
    out.append("status=" + escape_string(status[:_MAX_TEXT]))
    out.append("faulted=1i" if status.lower() == "faulted" else "faulted=0i")
    _text(out, "error_code", e.error_code)
    _text(out, "vendor_error_code", e.vendor_error_code)
    _text(out, "info", e.info)
    # Chargers stamp whole seconds: Preparing -> Charging, or a fault and its recovery, can share
    # a timestamp. Same-instant points would also be merged field by field (a stale error_code
    # on an Available status), so each distinct status gets its own sub-microsecond digits.
    ns += _discriminator(*out)
    return [f"connector_status{connector}{dkm}{site} {','.join(out)} {ns}"]


@mapping(MeterSample)
def _charger_meter(m: PointMapper, e: MeterSample, ns: int) -> list[str]:
    dkm, site = m.device(e.device_id)
    out: list[str] = []
    connector = _connector(m, e.connector_id, out)
    readings = len(out)
    _float(out, "energy_wh", e.energy_wh)
    _float(out, "power_w", e.power_w)
    _float(out, "current_a", e.current_a)
    _float(out, "voltage_v", e.voltage_v)
    _float(out, "soc_pct", e.soc_pct)
    if len(out) == readings:  # not one storable reading: nothing to chart
        return []
    _text(out, "context", e.context)
    _text(out, "transaction_id", e.transaction_id, _MAX_UNKNOWN_ID)
    # One MeterValues message may carry several samples with one timestamp (e.g. one per
    # measurand, or Transaction.End next to Sample.Periodic): keep them apart.
    ns += _discriminator(*out)
    return [f"charger_meter{connector}{dkm}{site} {','.join(out)} {ns}"]


def _session(
    m: PointMapper,
    e: ChargingStarted | ChargingEnded,
    phase: str,
    meter_wh: float | None,
    reason: str | None,
    ns: int,
) -> list[str]:
    dkm, site = m.device(e.device_id)
    out = ["count=1i"]
    connector = _connector(m, e.connector_id, out)
    _float(out, "meter_wh", meter_wh)
    _text(out, "reason", reason)
    _text(out, "transaction_id", e.transaction_id, _MAX_UNKNOWN_ID)
    # Two sessions of one connector (a refused start and a retry, stamped in whole seconds) are
    # kept apart by their transaction; a re-sent start or end overwrites itself.
    ns += _discriminator(str(e.transaction_id))
    return [f"charging_session{connector}{dkm},phase={phase}{site} {','.join(out)} {ns}"]


@mapping(ChargingStarted)
def _charging_started(m: PointMapper, e: ChargingStarted, ns: int) -> list[str]:
    # e.id_tag (the RFID card or user token) is personal data: never written.
    return _session(m, e, "start", e.meter_start_wh, None, ns)


@mapping(ChargingEnded)
def _charging_ended(m: PointMapper, e: ChargingEnded, ns: int) -> list[str]:
    return _session(m, e, "end", e.meter_stop_wh, e.reason, ns)


@mapping(ChargerNotice)
def _charger_notice(m: PointMapper, e: ChargerNotice, ns: int) -> list[str]:
    # ``kind`` is already the device kind: the notice's kind is the ``notice`` tag, and only one
    # of the documented values may become a tag (anything else: ``other`` plus a field).
    dkm, site = m.device(e.device_id)
    out = ["count=1i"]
    kind = e.notice if type(e.notice) is str else str(e.notice)
    if kind not in _NOTICE_KINDS:
        _text(out, "notice_kind", kind, _MAX_UNKNOWN_ID)
        kind = "other"
    _text(out, "status", e.status)
    _int(out, "severity", e.severity)
    _text(out, "detail", e.detail)
    # One NotifyEvent carries several events with one timestamp: keep them apart.
    ns += _discriminator(*out)
    return [f"charger_notice{dkm}{m.tag('notice', kind)}{site} {','.join(out)} {ns}"]


# -- the gateway's own health -------------------------------------------------------------------
def health_lines(name: str, values: Mapping[str, float | int], ts_ns: int) -> list[str]:
    """A snapshot of the gateway's metrics ``values`` for ``name`` (e.g. ``"ingest"``).

    One ``gateway`` line tagged ``component=name``; every value is written as a float, so a
    metric that is ``0`` in one snapshot and ``0.5`` in the next never changes field type.
    Values that are not finite are skipped; with none left, no line. A metric name that cannot
    be a field key (empty, reserved, control characters) or a timestamp outside InfluxDB's range
    raises ``ValueError``: both are the caller's bug, not data.
    """
    fields: dict[str, float] = {}
    for key, value in values.items():
        try:
            f = float(value)
        except OverflowError:
            continue
        if f - f == 0.0:
            fields[key] = f
    if not fields:
        return []
    return [format_line(HEALTH_MEASUREMENT, {"component": name}, fields, ts_ns)]
