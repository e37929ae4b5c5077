"""Commissioning rules: a device's facts in, a list of pass/fail/skipped checks out.

Pure: no I/O, no clock (``now`` is an argument). The facts are gathered at the edges
(``gather.py``: the database, a live Modbus probe); the thresholds are ``[commissioning]``.
A check is ``skipped`` when it cannot be judged (not asked for, or not known to citygate),
always with the reason in ``hint``; only ``failed`` fails the device.

It is long because every kind's checks are here side by side (five kinds, each a few checks with
their hints), so a reader compares them in one place; the formatter spreads each over lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.config import CommissioningConfig

Status = Literal["passed", "failed", "skipped"]

NOT_PERSISTED_CALIBRATION = (
    "not known to citygate: the LoRaWAN codecs carry no calibration and the NB-IoT baseline "
    "is not stored; check it with the vendor's tool"
)
NOT_PERSISTED_CLOCK = (
    "not known to citygate: uplinks are timed by the network server, and the sensor's own "
    "clock is not stored; check it with the vendor's tool"
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    observed: str
    expected: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status,
            "observed": self.observed,
            "expected": self.expected,
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class SensorFacts:
    device_id: str
    protocol: str  # lorawan | nbiot | ...
    lifecycle: str
    berth_id: str | None
    last_seen: datetime | None
    rssi: float | None
    snr: float | None
    battery_pct: float | None
    battery_mv: int | None
    berth_state: str | None  # free | occupied | unknown
    berth_status_at: datetime | None  # when the berth's status was last reported


@dataclass(frozen=True, slots=True)
class ChargerFacts:
    charger_id: str
    lifecycle: str
    password_set: bool
    connected: bool
    last_boot_at: datetime | None
    last_boot_reason: str | None
    last_seen: datetime | None
    heartbeat_s: int
    connectors_expected: int
    connectors: tuple[tuple[int, str], ...]  # (connector id >= 1, status) as reported


@dataclass(frozen=True, slots=True)
class BodycamFacts:
    device_id: str
    lifecycle: str
    password_set: bool
    officer_id: str | None
    registered_until: datetime | None
    last_keepalive: datetime | None
    keepalive_timeout_s: float  # [bodycams] keepalive_interval_s x keepalive_count


@dataclass(frozen=True, slots=True)
class CameraFacts:
    camera_id: str
    lifecycle: str
    site_id: str | None
    lane_id: str | None
    secret_set: bool
    last_push_at: datetime | None  # received
    last_push_status: str | None  # read | unread | bad_plate
    last_push_plate: str | None


@dataclass(frozen=True, slots=True)
class GateProbe:
    """One read of the register map: the decoded state, or why none could be read."""

    position: str | None = None
    vehicle_present: bool | None = None
    fault: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GateMove:
    """One commanded move, confirmed by read-back or not."""

    action: str  # raise | lower
    outcome: str  # confirmed | unconfirmed | failed
    detail: str
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class GateFacts:
    lane_id: str
    bus: str
    unit: int
    model: str
    map_error: str | None  # the model's map could not be loaded
    probe: GateProbe | None  # None: not probed (no map)
    cycle: tuple[GateMove, ...] | None  # None: no cycle asked


Facts = SensorFacts | ChargerFacts | BodycamFacts | CameraFacts | GateFacts


def _ts(t: datetime | None) -> str:
    return "never" if t is None else t.isoformat()


def _recent(
    name: str, at: datetime | None, now: datetime, max_age: float, what: str, hint: str
) -> Check:
    expected = f"{what} within {max_age:g} s"
    if at is None:
        return Check(name, "failed", "never", expected, hint)
    age = (now - at).total_seconds()
    if age > max_age:
        return Check(name, "failed", _ts(at), expected, hint)
    return Check(name, "passed", _ts(at), expected)


def _lifecycle(lifecycle: str) -> Check:
    ok = lifecycle in ("active", "commissioned", "provisioned")
    return Check(
        "lifecycle",
        "passed" if ok else "failed",
        lifecycle,
        "provisioned, commissioned or active",
        ""
        if ok
        else "a retired device is done: replace it (citygate devices replace OLD NEW)"
        if lifecycle == "retired"
        else "in maintenance: bring it back first (citygate devices lifecycle ID active)",
    )


def sensor_checks(f: SensorFacts, now: datetime, c: CommissioningConfig) -> list[Check]:
    out = [_lifecycle(f.lifecycle)]
    out.append(
        Check("berth", "passed", f.berth_id, "bound to a berth")
        if f.berth_id
        else Check(
            "berth",
            "failed",
            "unbound",
            "bound to a berth",
            "bind it: citygate devices set DEVICE --berth BERTH",
        )
    )
    out.append(
        _recent(
            "heard",
            f.last_seen,
            now,
            c.max_last_seen_age_s,
            "an uplink",
            "no recent uplink: check the network server's registration (DevEUI, keys), "
            "that the sensor is activated, and its coverage",
        )
    )
    rssi_expected = f">= {c.min_rssi_dbm:g} dBm"
    if f.rssi is None:
        out.append(
            Check(
                "rssi",
                "failed",
                "not reported",
                rssi_expected,
                "no uplink with radio metadata yet: wake the sensor and run again",
            )
        )
    elif f.rssi < c.min_rssi_dbm:
        out.append(
            Check(
                "rssi",
                "failed",
                f"{f.rssi:g} dBm",
                rssi_expected,
                "weak signal: check the antenna and the nearest gateway, or add one",
            )
        )
    else:
        out.append(Check("rssi", "passed", f"{f.rssi:g} dBm", rssi_expected))
    snr_expected = f">= {c.min_snr_db:g} dB"
    if f.protocol == "nbiot":
        out.append(Check("snr", "skipped", "-", snr_expected, "NB-IoT frames carry no SNR"))
    elif f.snr is None:
        out.append(
            Check(
                "snr",
                "failed",
                "not reported",
                snr_expected,
                "no uplink with radio metadata yet: wake the sensor and run again",
            )
        )
    elif f.snr < c.min_snr_db:
        out.append(
            Check(
                "snr",
                "failed",
                f"{f.snr:g} dB",
                snr_expected,
                "noisy link: check for interference and the antenna's placement",
            )
        )
    else:
        out.append(Check("snr", "passed", f"{f.snr:g} dB", snr_expected))
    out.append(_battery(f, c))
    status_expected = f"free or occupied, reported within {c.max_first_status_age_s:g} s"
    if f.berth_id is None:
        out.append(Check("first_status", "skipped", "-", status_expected, "no berth bound"))
    elif f.berth_state not in ("free", "occupied") or f.berth_status_at is None:
        out.append(
            Check(
                "first_status",
                "failed",
                f.berth_state or "unknown",
                status_expected,
                "no status yet: drive a car over the sensor (or swipe the magnet) and run again",
            )
        )
    elif (now - f.berth_status_at).total_seconds() > c.max_first_status_age_s:
        out.append(
            Check(
                "first_status",
                "failed",
                f"{f.berth_state} at {_ts(f.berth_status_at)}",
                status_expected,
                "the last status is old: the sensor may have stopped reporting",
            )
        )
    else:
        out.append(
            Check(
                "first_status",
                "passed",
                f"{f.berth_state} at {_ts(f.berth_status_at)}",
                status_expected,
            )
        )
    out.append(Check("calibration", "skipped", "-", "calibrated", NOT_PERSISTED_CALIBRATION))
    out.append(Check("clock_skew", "skipped", "-", "in step", NOT_PERSISTED_CLOCK))
    return out


def _battery(f: SensorFacts, c: CommissioningConfig) -> Check:
    hint = "replace the battery (or the sensor) before installing"
    if f.battery_pct is not None:
        expected = f">= {c.min_battery_pct:g} %"
        ok = f.battery_pct >= c.min_battery_pct
        return Check(
            "battery",
            "passed" if ok else "failed",
            f"{f.battery_pct:g} %",
            expected,
            "" if ok else hint,
        )
    if f.battery_mv is not None:
        expected = f">= {c.min_battery_mv} mV"
        ok = f.battery_mv >= c.min_battery_mv
        return Check(
            "battery",
            "passed" if ok else "failed",
            f"{f.battery_mv} mV",
            expected,
            "" if ok else hint,
        )
    return Check(
        "battery",
        "failed",
        "not reported",
        f">= {c.min_battery_pct:g} %",
        "no heartbeat or network-server status yet: wait for the next heartbeat",
    )


def charger_checks(f: ChargerFacts, now: datetime, c: CommissioningConfig) -> list[Check]:
    out = [_lifecycle(f.lifecycle)]
    out.append(
        Check("password", "passed", "set", "set")
        if f.password_set
        else Check(
            "password",
            "failed",
            "not set",
            "set",
            "set one: citygate chargers set-password CHARGER, and enter it on the charger",
        )
    )
    boot = (
        "never"
        if f.last_boot_at is None
        else (f"{_ts(f.last_boot_at)} ({f.last_boot_reason or 'no reason given'})")
    )
    out.append(
        Check("boot_accepted", "passed", boot, "a BootNotification accepted")
        if f.last_boot_at is not None
        else Check(
            "boot_accepted",
            "failed",
            boot,
            "a BootNotification accepted",
            "never booted here: check the charger's central system URL "
            "(ws://HOST:PORT/ocpp/ID), its id and password",
        )
    )
    out.append(
        Check("connected", "passed", "connected", "connected")
        if f.connected
        else Check(
            "connected",
            "failed",
            "not connected",
            "connected",
            "no websocket open: check the charger's network and URL",
        )
    )
    max_age = f.heartbeat_s * c.heartbeat_grace
    out.append(
        _recent(
            "heartbeat",
            f.last_seen,
            now,
            max_age,
            "a heartbeat or message",
            "silent too long: check the charger's network link",
        )
    )
    reported = sorted((cid, st) for cid, st in f.connectors if st and st != "Unknown")
    ids = {cid for cid, _ in reported}
    missing = [n for n in range(1, f.connectors_expected + 1) if n not in ids]
    shown = ", ".join(f"{cid} {st}" for cid, st in reported) or "none"
    expected = f"connectors 1..{f.connectors_expected} reported"
    out.append(
        Check(
            "connectors",
            "failed",
            shown,
            expected,
            "not reported: "
            + ", ".join(map(str, missing))
            + " (StatusNotification); check the charger's connector count",
        )
        if missing
        else Check("connectors", "passed", shown, expected)
    )
    bad = [f"{cid} {st}" for cid, st in reported if st in ("Faulted", "Unavailable")]
    out.append(
        Check(
            "connectors_usable",
            "failed",
            ", ".join(bad),
            "none faulted or unavailable",
            "see the connector's error code: GET /api/v1/chargers/ID",
        )
        if bad
        else Check("connectors_usable", "passed", shown, "none faulted or unavailable")
    )
    return out


def bodycam_checks(f: BodycamFacts, now: datetime, c: CommissioningConfig) -> list[Check]:
    out = [_lifecycle(f.lifecycle)]
    out.append(
        Check("password", "passed", "set", "set")
        if f.password_set
        else Check(
            "password",
            "failed",
            "not set",
            "set",
            "set one: citygate bodycams set-password CAM, and enter it on the cam",
        )
    )
    out.append(
        Check("officer", "passed", f.officer_id, "issued to an officer")
        if f.officer_id
        else Check(
            "officer",
            "failed",
            "none",
            "issued to an officer",
            "issue it to an officer in the town file (or citygate bodycams add CAM --officer)",
        )
    )
    if f.registered_until is not None and f.registered_until > now:
        out.append(Check("registered", "passed", f"until {_ts(f.registered_until)}", "registered"))
    else:
        seen = "never" if f.registered_until is None else f"expired {_ts(f.registered_until)}"
        out.append(
            Check(
                "registered",
                "failed",
                seen,
                "registered",
                "the cam has not registered: check its SIP server address, port, "
                "platform id and password",
            )
        )
    out.append(
        _recent(
            "keepalive",
            f.last_keepalive,
            now,
            f.keepalive_timeout_s,
            "a keepalive",
            "no recent keepalive: check the cam's keepalive setting and its network",
        )
    )
    return out


def camera_checks(f: CameraFacts, now: datetime, c: CommissioningConfig) -> list[Check]:
    out = [_lifecycle(f.lifecycle)]
    place = f.lane_id or f.site_id
    out.append(
        Check("placed", "passed", place, "at a site or lane")
        if place
        else Check(
            "placed",
            "failed",
            "nowhere",
            "at a site or lane",
            "give it a site (and lane) in the registry",
        )
    )
    out.append(
        Check("push_url", "passed", "issued", "issued")
        if f.secret_set
        else Check(
            "push_url", "failed", "none", "issued", "register the camera to get its push URL"
        )
    )
    check = _recent(
        "test_push",
        f.last_push_at,
        now,
        c.max_test_push_age_s,
        "a push received",
        "no push arrived: set the camera's push URL (it carries the secret), "
        "then trigger a capture",
    )
    if f.last_push_at is not None:
        read = f"{_ts(f.last_push_at)} {f.last_push_status or ''}".rstrip()
        if f.last_push_plate:
            read += f" {f.last_push_plate}"
        check = Check(check.name, check.status, read, check.expected, check.hint)
    out.append(check)
    return out


def gate_checks(f: GateFacts, now: datetime, c: CommissioningConfig) -> list[Check]:
    where = f"{f.bus} unit {f.unit}"
    if f.map_error is not None:
        return [
            Check(
                "register_map",
                "failed",
                f.map_error,
                f"model {f.model} known",
                "fix the lane's gate model in the town file",
            )
        ]
    out = [Check("register_map", "passed", f.model, f"model {f.model} known")]
    probe = f.probe
    if probe is None or probe.error is not None:
        why = "not probed" if probe is None else probe.error or ""
        out.append(
            Check(
                "probe",
                "failed",
                why,
                f"the map read from {where}",
                "the controller does not answer: check its power, the bus wiring or "
                "serial server, and the unit id",
            )
        )
        out.append(Check("fault", "skipped", "-", "no fault", "no state read"))
    else:
        state = f"{probe.position}" + (", vehicle present" if probe.vehicle_present else "")
        out.append(Check("probe", "passed", state, f"the map read from {where}"))
        out.append(
            Check("fault", "failed", probe.fault, "no fault", "clear the controller's fault")
            if probe.fault
            else Check("fault", "passed", "none", "no fault")
        )
    moves = {m.action: m for m in f.cycle or ()}
    for action in ("raise", "lower"):
        expected = f"{action} confirmed by read-back"
        if f.cycle is None:
            out.append(
                Check(action, "skipped", "-", expected, "moves the barrier: ask with --cycle")
            )
            continue
        m = moves.get(action)
        if m is None:
            out.append(Check(action, "skipped", "-", expected, "not tried: the raise failed"))
        elif m.outcome == "confirmed":
            out.append(Check(action, "passed", f"confirmed in {m.elapsed_s:g} s", expected))
        else:
            out.append(
                Check(
                    action,
                    "failed",
                    f"{m.outcome}: {m.detail}",
                    expected,
                    "check the relay wiring and the map's addresses; a lower waits "
                    "for the loop to be clear",
                )
            )
    return out


def checks_for(facts: Facts, now: datetime, config: CommissioningConfig) -> list[Check]:
    if isinstance(facts, SensorFacts):
        return sensor_checks(facts, now, config)
    if isinstance(facts, ChargerFacts):
        return charger_checks(facts, now, config)
    if isinstance(facts, BodycamFacts):
        return bodycam_checks(facts, now, config)
    if isinstance(facts, CameraFacts):
        return camera_checks(facts, now, config)
    return gate_checks(facts, now, config)


def report(device_id: str, kind: str, checks: list[Check], now: datetime) -> dict[str, object]:
    """The one JSON shape the CLI prints and the API answers."""
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("passed", "failed", "skipped")}
    return {
        "device_id": device_id,
        "kind": kind,
        "at": now.isoformat(),
        "passed": counts["failed"] == 0,
        "counts": counts,
        "checks": [c.as_dict() for c in checks],
    }
