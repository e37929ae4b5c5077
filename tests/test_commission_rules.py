"""The commissioning rules, pure: facts and ``now`` in, checks out (every branch of each)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gateway.config import CommissioningConfig, Settings
from gateway.services.commissioning.rules import (
    BodycamFacts,
    CameraFacts,
    ChargerFacts,
    Check,
    GateFacts,
    GateMove,
    GateProbe,
    SensorFacts,
    checks_for,
    report,
)

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
C = CommissioningConfig()


def ago(s: float) -> datetime:
    return NOW - timedelta(seconds=s)


def status(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def one(checks: list[Check], name: str) -> Check:
    (c,) = [c for c in checks if c.name == name]
    return c


SENSOR = SensorFacts(
    device_id="70b3d5ae00000001", protocol="lorawan", lifecycle="active", berth_id="b-1",
    last_seen=ago(60), rssi=-90.0, snr=7.5, battery_pct=88.0, battery_mv=None,
    berth_state="free", berth_status_at=ago(60),
)  # fmt: skip


def test_a_good_sensor_passes_and_says_what_it_cannot_judge() -> None:
    checks = checks_for(SENSOR, NOW, C)
    assert status(checks) == {
        "lifecycle": "passed", "berth": "passed", "heard": "passed", "rssi": "passed",
        "snr": "passed", "battery": "passed", "first_status": "passed",
        "calibration": "skipped", "clock_skew": "skipped",
    }  # fmt: skip
    assert "not known to citygate" in one(checks, "calibration").hint
    assert "not known to citygate" in one(checks, "clock_skew").hint
    assert (
        one(checks, "rssi").observed == "-90 dBm" and one(checks, "rssi").expected == ">= -115 dBm"
    )
    doc = report(SENSOR.device_id, "sensor", checks, NOW)
    assert doc["passed"] is True and doc["counts"] == {"passed": 7, "failed": 0, "skipped": 2}


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"rssi": -121.0}, {"rssi"}),
        ({"rssi": -115.0}, set()),  # at the threshold passes
        ({"snr": -12.0}, {"snr"}),
        ({"battery_pct": 12.0}, {"battery"}),
        ({"battery_pct": None, "battery_mv": 2900}, {"battery"}),
        ({"battery_pct": None, "battery_mv": 3400}, set()),
        ({"battery_pct": None}, {"battery"}),  # nothing reported
        ({"last_seen": ago(C.max_last_seen_age_s + 1)}, {"heard"}),
        ({"lifecycle": "retired"}, {"lifecycle"}),
        ({"lifecycle": "provisioned"}, set()),
        ({"berth_state": "unknown", "berth_status_at": None}, {"first_status"}),
        ({"berth_status_at": ago(C.max_first_status_age_s + 1)}, {"first_status"}),
        ({"berth_state": "occupied"}, set()),
    ],
)
def test_each_sensor_threshold(change: dict[str, object], failing: set[str]) -> None:
    checks = checks_for(replace(SENSOR, **change), NOW, C)  # type: ignore[arg-type]
    assert {c.name for c in checks if c.status == "failed"} == failing
    for c in checks:
        if c.status == "failed":
            assert c.hint, c


def test_a_sensor_never_seen_fails_radio_battery_and_status() -> None:
    never = replace(SENSOR, last_seen=None, rssi=None, snr=None, battery_pct=None,
                    berth_state="unknown", berth_status_at=None)  # fmt: skip
    checks = checks_for(never, NOW, C)
    failed = {c.name for c in checks if c.status == "failed"}
    assert failed == {"heard", "rssi", "snr", "battery", "first_status"}
    assert one(checks, "heard").observed == "never"
    assert report(never.device_id, "sensor", checks, NOW)["passed"] is False


def test_nbiot_has_no_snr_and_an_unbound_sensor_no_status() -> None:
    checks = checks_for(replace(SENSOR, protocol="nbiot", snr=None, berth_id=None), NOW, C)
    assert one(checks, "snr").status == "skipped" and "NB-IoT" in one(checks, "snr").hint
    assert one(checks, "berth").status == "failed"
    assert one(checks, "first_status").status == "skipped"


def test_thresholds_come_from_the_config() -> None:
    strict = CommissioningConfig(min_rssi_dbm=-80, min_snr_db=10, min_battery_pct=90)
    assert {c.name for c in checks_for(SENSOR, NOW, strict) if c.status == "failed"} == {
        "rssi", "snr", "battery",
    }  # fmt: skip


def test_bad_thresholds_are_refused() -> None:
    for bad in ({"min_rssi_dbm": 5}, {"min_battery_pct": 101}, {"heartbeat_grace": 0.5},
                {"gate_timeout_s": 0}, {"nonsense": 1}):  # fmt: skip
        with pytest.raises(ValidationError):
            Settings.model_validate({"commissioning": bad})


CHARGER = ChargerFacts(
    charger_id="SDEV001", lifecycle="active", password_set=True, connected=True,
    last_boot_at=ago(30), last_boot_reason="PowerUp", last_seen=ago(10), heartbeat_s=60,
    connectors_expected=2, connectors=((1, "Available"), (2, "Preparing")),
)  # fmt: skip


def test_a_booted_charger_passes() -> None:
    checks = checks_for(CHARGER, NOW, C)
    assert set(status(checks).values()) == {"passed"}
    assert one(checks, "connectors").observed == "1 Available, 2 Preparing"
    assert "PowerUp" in one(checks, "boot_accepted").observed


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"password_set": False}, {"password"}),
        ({"connected": False}, {"connected"}),
        ({"last_seen": ago(121)}, {"heartbeat"}),  # 60 s x grace 2
        ({"last_seen": ago(119)}, set()),
        ({"connectors": ((1, "Available"),)}, {"connectors"}),
        ({"connectors": ((1, "Available"), (2, "Unknown"))}, {"connectors"}),
        ({"connectors": ((1, "Available"), (2, "Faulted"))}, {"connectors_usable"}),
        ({"lifecycle": "retired"}, {"lifecycle"}),
    ],
)
def test_each_charger_check(change: dict[str, object], failing: set[str]) -> None:
    checks = checks_for(replace(CHARGER, **change), NOW, C)  # type: ignore[arg-type]
    assert {c.name for c in checks if c.status == "failed"} == failing


def test_a_charger_that_never_connected_fails_with_hints() -> None:
    never = replace(CHARGER, connected=False, last_boot_at=None, last_boot_reason=None,
                    last_seen=None, connectors=())  # fmt: skip
    checks = checks_for(never, NOW, C)
    failed = {c.name: c for c in checks if c.status == "failed"}
    assert set(failed) == {"boot_accepted", "connected", "heartbeat", "connectors"}
    assert "ws://HOST:PORT/ocpp/ID" in failed["boot_accepted"].hint
    assert "1, 2" in failed["connectors"].hint


CAM = BodycamFacts(
    device_id="62072500081380000001", lifecycle="active", password_set=True,
    officer_id="of-001", registered_until=NOW + timedelta(seconds=3000),
    last_keepalive=ago(30), keepalive_timeout_s=180,
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({}, set()),
        ({"registered_until": None}, {"registered"}),
        ({"registered_until": ago(1)}, {"registered"}),
        ({"last_keepalive": None}, {"keepalive"}),
        ({"last_keepalive": ago(181)}, {"keepalive"}),
        ({"password_set": False}, {"password"}),
        ({"officer_id": None}, {"officer"}),
    ],
)
def test_each_bodycam_check(change: dict[str, object], failing: set[str]) -> None:
    checks = checks_for(replace(CAM, **change), NOW, C)  # type: ignore[arg-type]
    assert {c.name for c in checks if c.status == "failed"} == failing
    if change.get("registered_until") == ago(1):
        assert one(checks, "registered").observed.startswith("expired")


CAMERA = CameraFacts(
    camera_id="cam-1", lifecycle="active", site_id="cp-1", lane_id="ln-1", secret_set=True,
    last_push_at=ago(5), last_push_status="read", last_push_plate="甘G12345",
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({}, set()),
        ({"last_push_at": None, "last_push_status": None, "last_push_plate": None}, {"test_push"}),
        ({"last_push_at": ago(C.max_test_push_age_s + 1)}, {"test_push"}),
        ({"last_push_status": "unread", "last_push_plate": None}, set()),  # it arrived
        ({"secret_set": False}, {"push_url"}),
        ({"site_id": None, "lane_id": None}, {"placed"}),
    ],
)
def test_each_camera_check(change: dict[str, object], failing: set[str]) -> None:
    checks = checks_for(replace(CAMERA, **change), NOW, C)  # type: ignore[arg-type]
    assert {c.name for c in checks if c.status == "failed"} == failing


def test_a_camera_push_shows_its_plate() -> None:
    assert "甘G12345" in one(checks_for(CAMERA, NOW, C), "test_push").observed


GATE = GateFacts(
    lane_id="ln-1", bus="tcp://127.0.0.1:1502", unit=1, model="example-relay4", map_error=None,
    probe=GateProbe("down", False, None), cycle=None,
)  # fmt: skip


def test_a_gate_probe_without_a_cycle_skips_the_moves() -> None:
    checks = checks_for(GATE, NOW, C)
    assert status(checks) == {
        "register_map": "passed", "probe": "passed", "fault": "passed",
        "raise": "skipped", "lower": "skipped",
    }  # fmt: skip
    assert "--cycle" in one(checks, "raise").hint


def test_a_gate_cycle_confirmed_passes() -> None:
    moves = (GateMove("raise", "confirmed", "", 0.25), GateMove("lower", "confirmed", "", 0.3))
    checks = checks_for(replace(GATE, cycle=moves), NOW, C)
    assert set(status(checks).values()) == {"passed"}
    assert one(checks, "lower").observed == "confirmed in 0.3 s"


def test_a_failed_raise_fails_and_skips_the_lower() -> None:
    moves = (GateMove("raise", "unconfirmed", "not raise within 2 s: gate shows down", 2.0),)
    checks = checks_for(replace(GATE, cycle=moves), NOW, C)
    assert (
        one(checks, "raise").status == "failed"
        and "gate shows down" in one(checks, "raise").observed
    )
    assert one(checks, "lower").status == "skipped"


def test_a_gate_down_faulted_or_unknown() -> None:
    down = checks_for(replace(GATE, probe=GateProbe(error="cannot connect")), NOW, C)
    assert status(down)["probe"] == "failed" and "does not answer" in one(down, "probe").hint
    assert status(down)["fault"] == "skipped"
    faulted = checks_for(replace(GATE, probe=GateProbe("down", False, "motor")), NOW, C)
    assert status(faulted)["fault"] == "failed"
    unknown = checks_for(replace(GATE, map_error="no model 'x'", probe=None), NOW, C)
    assert status(unknown) == {"register_map": "failed"}
