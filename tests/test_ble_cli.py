"""``citygate ble scan`` / ``configure`` as a technician runs them: the real CLI, the real
``gateway.services.ble`` and bleak's real ``BleakScanner`` / ``BleakClient`` over the fake
backend of ``tests.ble_fake`` (no radio here), plus one run on this machine's own Bluetooth
stack (none: the no-adapter message).

Long because it walks every exit code and every failure the fake backend can simulate."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bleak.exc import BleakDBusError

import gateway.cli.ble as ble_cli
from gateway.cli import main
from tests.ble_fake import HEARTBEAT, SENSITIVITY, Radio, SimSensor

NWAVE = "C0:FF:EE:00:00:01"
BOSCH = "C0:FF:EE:00:00:02"
NBIOT = "C0:FF:EE:00:00:03"


@pytest.fixture
def radio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Radio:
    monkeypatch.chdir(tmp_path)  # no ./citygate.toml: these commands need none anyway
    monkeypatch.delenv("CITYGATE_CONFIG", raising=False)
    r = Radio()
    monkeypatch.setattr(ble_cli, "BACKEND", r.backend())
    monkeypatch.setattr(ble_cli, "RETRY_BASE_S", 0.01)
    monkeypatch.setattr(ble_cli, "RECALIBRATION_TIMEOUT_S", 0.5)
    return r


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["ble", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    rc, out, err = run(capsys, *args, "--json")
    body = json.loads(out)  # one object, always
    assert set(body) >= {"ok", "error"}
    assert body["ok"] is (rc == 0)
    return rc, body, err


def town(radio: Radio) -> tuple[SimSensor, SimSensor, SimSensor]:
    return (
        radio.add(SimSensor(NWAVE, "nwave-nps405", rssi=-71, battery_percent=87)),
        radio.add(SimSensor(BOSCH, "bosch-tps110", rssi=-55, battery_percent=64)),
        radio.add(SimSensor(NBIOT, "nbiot-geomag", rssi=-80, battery_percent=12, name="GM-3")),
    )


# --- scan


def test_scan_lists_the_sensors_strongest_first(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    town(radio)
    rc, body, _ = run_json(capsys, "scan", "--timeout", "0.1")
    assert rc == 0
    assert body == {
        "ok": True,
        "error": None,
        "sensors": [  # the phone nearby is not listed; bosch does not advertise its battery
            {"address": BOSCH, "name": None, "model": "bosch-tps110", "rssi": -55,
             "battery_percent": None, "problem": None},
            {"address": NWAVE, "name": None, "model": "nwave-nps405", "rssi": -71,
             "battery_percent": 87, "problem": None},
            {"address": NBIOT, "name": "GM-3", "model": "nbiot-geomag", "rssi": -80,
             "battery_percent": 12, "problem": None},
        ],
    }  # fmt: skip
    rc, out, _ = run(capsys, "scan", "--timeout", "0.1")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["address", "model", "rssi", "battery", "name"]
    assert lines[2].split() == [NWAVE, "nwave-nps405", "-71", "dBm", "87%"]


def test_scan_shows_a_sensor_whose_model_it_cannot_tell(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    radio.add(SimSensor(NWAVE, "nwave-nps405", manufacturer_data=b"\x01\x42\x30"))
    rc, body, _ = run_json(capsys, "scan", "--timeout", "0.1")
    assert rc == 0
    (s,) = body["sensors"]
    assert (s["model"], s["battery_percent"], s["problem"]) == (None, 48, "unknown model code 0x42")


def test_scan_with_nothing_in_range_exits_not_found(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, body, err = run_json(capsys, "scan", "--timeout", "0.05")
    assert rc == 3
    assert body["sensors"] == [] and body["error"]["code"] == "not_found"
    rc, out, err = run(capsys, "scan", "--timeout", "0.05")
    assert (rc, out) == (3, "")
    assert "no configurable sensor heard" in err and "what to do:" in err


def test_scan_without_an_adapter_says_so(radio: Radio, capsys: pytest.CaptureFixture[str]) -> None:
    radio.adapter = False
    rc, body, err = run_json(capsys, "scan", "--timeout", "0.05")
    assert rc == 5
    assert body["error"]["code"] == "no_adapter"
    assert body["error"]["message"] == "no Bluetooth adapter found"
    assert "bluetoothctl list" in body["error"]["hint"]
    assert "no Bluetooth adapter found" in err


# --- configure


def test_configure_writes_and_reads_every_value_back(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    rc, body, err = run_json(
        capsys, "configure", NWAVE.lower(), "--heartbeat", "600", "--sensitivity", "7",
        "--recalibrate", "--scan-timeout", "1",
    )  # fmt: skip
    assert rc == 0, err
    assert (nwave.heartbeat_s, nwave.sensitivity, nwave.calibrations) == (600, 7, 1)
    assert not nwave.connected  # disconnected afterwards
    assert body == {
        "ok": True, "error": None, "address": NWAVE, "model": "nwave-nps405", "rssi": -71,
        "attempts": 1, "firmware": "2.3.1", "battery_percent": 87,
        "before": {"heartbeat": 86400, "sensitivity": 3, "calibrations": 0},
        "checks": [
            {"name": "heartbeat", "requested": 600, "read_back": 600, "ok": True, "detail": ""},
            {"name": "sensitivity", "requested": 7, "read_back": 7, "ok": True, "detail": ""},
            {"name": "recalibrate", "requested": 1, "read_back": 1, "ok": True, "detail": ""},
        ],
    }  # fmt: skip


def test_configure_bosch_writes_minutes_and_prints_a_table(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bosch, _ = town(radio)
    rc, out, err = run(capsys, "configure", BOSCH, "--heartbeat", "1200", "--scan-timeout", "1")
    assert rc == 0, err
    assert (HEARTBEAT, struct.pack("<H", 20)) in bosch.writes
    assert bosch.heartbeat_s == 1200
    assert f"{BOSCH}  bosch-tps110  firmware 2.3.1  battery 64%" in out  # not advertised: GATT
    assert any(
        line.split()[:4] == ["heartbeat", "1200", "1200", "yes"] for line in out.splitlines()
    )


def test_configure_without_settings_only_reads(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, nbiot = town(radio)
    rc, body, _ = run_json(capsys, "configure", NBIOT, "--scan-timeout", "1")
    assert rc == 0
    assert body["checks"] == [] and nbiot.writes == []
    assert body["before"] == {"heartbeat": 86400, "sensitivity": 3, "calibrations": 0}
    assert body["battery_percent"] == 12  # no Battery Service: the advertised one


def test_a_write_that_does_not_read_back_fails_with_its_exit_code(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.stuck = {SENSITIVITY}
    rc, body, err = run_json(capsys, "configure", NWAVE, "--heartbeat", "900",
                             "--sensitivity", "9", "--scan-timeout", "1")  # fmt: skip
    assert rc == 1
    assert body["ok"] is False and body["error"]["code"] == "verify_failed"
    assert body["checks"][0]["ok"] is True
    assert body["checks"][1] == {"name": "sensitivity", "requested": 9, "read_back": 3,
                                 "ok": False, "detail": "wrote 9, read back 3"}  # fmt: skip
    assert "read-back differs: sensitivity: wrote 9, read back 3" in err
    rc, out, _ = run(capsys, "configure", NWAVE, "--sensitivity", "9", "--scan-timeout", "1")
    assert rc == 1 and "NO" in out


def test_a_recalibration_that_never_finishes_fails_verification(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.recalibration_finishes = False
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--recalibrate", "--scan-timeout", "1")
    assert rc == 1
    assert body["checks"] == [{
        "name": "recalibrate", "requested": 1, "read_back": 0, "ok": False,
        "detail": "calibration counter still 0 after 0.5 s",
    }]  # fmt: skip


def test_connection_failures_are_retried(radio: Radio, capsys: pytest.CaptureFixture[str]) -> None:
    nwave, _, _ = town(radio)
    nwave.fail_connects = 2
    rc, body, err = run_json(
        capsys, "configure", NWAVE, "--sensitivity", "4", "--scan-timeout", "1"
    )
    assert rc == 0, err
    assert body["attempts"] == 3 and nwave.connect_attempts == 3 and nwave.sensitivity == 4


def test_connection_that_keeps_failing_gives_up_after_the_attempts(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.fail_connects = 99
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--sensitivity", "4", "--attempts", "3",
                             "--scan-timeout", "1")  # fmt: skip
    assert rc == 5
    assert nwave.connect_attempts == 3 and nwave.sensitivity == 3
    assert body["error"]["code"] == "connect_failed"
    assert (
        "in 3 attempts (last: BleakError: le-connection-abort-by-local)" in body["error"]["message"]
    )


def test_each_connection_attempt_has_its_timeout(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.hang_connect = True
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--sensitivity", "4", "--attempts", "2",
                           "--connect-timeout", "0.05", "--scan-timeout", "1")  # fmt: skip
    assert rc == 5 and nwave.connect_attempts == 2
    assert "last: TimeoutError" in body["error"]["message"]


def test_the_whole_operation_has_a_deadline(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.hang_connect = True
    started = time.monotonic()
    rc, body, err = run_json(capsys, "configure", NWAVE, "--sensitivity", "4", "--timeout", "0.3",
                             "--connect-timeout", "30", "--scan-timeout", "1")  # fmt: skip
    assert rc == 5
    assert time.monotonic() - started < 5
    assert body["error"]["code"] == "timeout"
    assert "did not finish within 0.3 s" in err and "--timeout" in err


def test_configure_without_an_adapter(radio: Radio, capsys: pytest.CaptureFixture[str]) -> None:
    nwave, _, _ = town(radio)
    radio.adapter = False
    rc, body, err = run_json(capsys, "configure", NWAVE, "--heartbeat", "600")
    assert rc == 5 and body["error"]["code"] == "no_adapter"
    assert nwave.connect_attempts == 0
    assert "plug in a BLE adapter" in err


def test_a_sensor_not_in_range_is_not_found(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    town(radio)
    rc, body, _ = run_json(capsys, "configure", "AA:AA:AA:AA:AA:AA", "--heartbeat", "600",
                             "--scan-timeout", "0.1")  # fmt: skip
    assert rc == 3 and body["error"]["code"] == "not_found"
    assert "citygate ble scan" in body["error"]["hint"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heartbeat", "10"], "heartbeat 10 is out of range for every model"),
        (["--sensitivity", "0"], "sensitivity 0 is out of range for every model"),
        (["--heartbeat", "999999999"], "heartbeat 999999999 is out of range"),
        (["--model", "bosch-tps110", "--heartbeat", "630"], "steps of 60"),
        (["--model", "bosch-tps110", "--sensitivity", "6"], "this model takes 1..5"),
    ],
)
def test_out_of_range_values_are_refused_before_the_radio(
    radio: Radio, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    town(radio)
    rc, body, _ = run_json(capsys, "configure", BOSCH, *args)
    assert rc == 2
    assert body["error"]["code"] == "bad_args" and message in body["error"]["message"]
    assert radio.scans == 0


def test_the_advertised_models_limits_apply_before_connecting(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bosch, _ = town(radio)
    rc, body, _ = run_json(capsys, "configure", BOSCH, "--sensitivity", "50", "--scan-timeout", "1")
    assert rc == 2 and "this model takes 1..5" in body["error"]["message"]
    assert bosch.connect_attempts == 0


def test_a_sensor_that_does_not_say_its_model_needs_model(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave = radio.add(SimSensor(NWAVE, "nwave-nps405", manufacturer_data=b"\x01"))
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--sensitivity", "5", "--scan-timeout", "1")
    assert rc == 2 and "give it with --model" in body["error"]["message"]
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--sensitivity", "5", "--model",
                           "nwave-nps405", "--scan-timeout", "1")  # fmt: skip
    assert rc == 0 and nwave.sensitivity == 5


def test_the_wrong_model_is_a_device_error_and_writes_nothing(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--model", "bosch-tps110",
                             "--heartbeat", "600", "--scan-timeout", "1")  # fmt: skip
    assert rc == 1 and body["error"]["code"] == "device_error"
    assert "heartbeat: read 4 bytes" in body["error"]["message"]
    assert nwave.writes == [] and not nwave.connected


@pytest.mark.parametrize(
    "args",
    [
        ["configure", NWAVE, "--model", "acme-1"],
        ["configure", NWAVE, "--heartbeat", "ten"],
        ["configure", NWAVE, "--attempts", "0"],
        ["configure", NWAVE, "--timeout", "-1"],
        ["scan", "--timeout", "nan"],
        ["configure"],
    ],
)
def test_argparse_refusals_exit_2(radio: Radio, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ble", *args])
    assert exc.value.code == 2
    assert radio.scans == 0


def test_a_bad_address_is_refused(radio: Radio, capsys: pytest.CaptureFixture[str]) -> None:
    rc, body, _ = run_json(capsys, "configure", "C0:FF:EE", "--heartbeat", "600")
    assert rc == 2 and "is not a Bluetooth address" in body["error"]["message"]
    assert radio.scans == 0


def test_models_lists_each_models_limits(capsys: pytest.CaptureFixture[str]) -> None:
    rc, body, _ = run_json(capsys, "models")
    assert rc == 0
    assert [m["model"] for m in body["models"]] == ["nwave-nps405", "bosch-tps110", "nbiot-geomag"]
    assert body["models"][1]["heartbeat"] == "600..172800 s in steps of 60"


@pytest.mark.skipif(
    os.path.isdir("/sys/class/bluetooth") and bool(os.listdir("/sys/class/bluetooth")),
    reason="this machine has a Bluetooth adapter",
)
@pytest.mark.parametrize("command", [["scan", "--timeout", "1"], ["configure", NWAVE]])
def test_this_machines_own_stack_without_bluetooth_says_no_adapter(
    tmp_path: Path, command: list[str]
) -> None:
    """The platform backend (BlueZ over D-Bus), no fake: here there is no adapter at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "ble", *command, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    body = json.loads(proc.stdout)
    assert body["ok"] is False and body["error"]["code"] == "no_adapter"
    assert "what to do:" in proc.stderr


def test_retries_wait_with_backoff_between_attempts(
    radio: Radio, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two failures: the waits are drawn from [0.1, 0.2] then [0.2, 0.4] s (full jitter)."""
    monkeypatch.setattr(ble_cli, "RETRY_BASE_S", 0.2)
    nwave, _, _ = town(radio)
    nwave.fail_connects = 2
    started = time.monotonic()
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--scan-timeout", "1")
    elapsed = time.monotonic() - started
    assert rc == 0 and body["attempts"] == 3
    assert 0.3 <= elapsed < 3


def test_the_adapter_option_reaches_bleak(radio: Radio, capsys: pytest.CaptureFixture[str]) -> None:
    town(radio)
    rc, _, _ = run_json(capsys, "configure", NWAVE, "--adapter", "hci1", "--scan-timeout", "1")
    assert rc == 0
    assert radio.options_seen and all(o["bluez"] == {"adapter": "hci1"} for o in radio.options_seen)


def test_another_scan_in_progress_is_a_bluetooth_error(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    radio.scan_error = BleakDBusError(
        "org.bluez.Error.InProgress", ["Operation already in progress"]
    )
    rc, body, err = run_json(capsys, "scan", "--timeout", "0.05")
    assert rc == 5 and body["error"]["code"] == "bluetooth_error"
    assert "another program is scanning" in err and "bluetoothctl scan off" in err


def test_a_sensor_that_stops_answering_hits_the_deadline_and_is_let_go(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.hang_reads = True
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--heartbeat", "600", "--timeout", "0.3",
                           "--scan-timeout", "1")  # fmt: skip
    assert rc == 5 and body["error"]["code"] == "timeout"
    assert nwave.connect_attempts == 1 and not nwave.connected and nwave.writes == []


@pytest.mark.parametrize(
    ("address", "heartbeat", "sensitivity", "wire"),
    [
        (NWAVE, 172_800, 10, struct.pack("<I", 172_800)),
        (BOSCH, 600, 1, struct.pack("<H", 10)),
        (NBIOT, 604_800, 100, struct.pack("<I", 604_800)),
    ],
)
def test_each_model_at_its_limits_with_a_recalibration(
    radio: Radio, capsys: pytest.CaptureFixture[str],
    address: str, heartbeat: int, sensitivity: int, wire: bytes,
) -> None:  # fmt: skip
    sensors = {s.address: s for s in town(radio)}
    rc, body, err = run_json(capsys, "configure", address, "--heartbeat", str(heartbeat),
                             "--sensitivity", str(sensitivity), "--recalibrate",
                             "--scan-timeout", "1")  # fmt: skip
    assert rc == 0, err
    sensor = sensors[address]
    assert (HEARTBEAT, wire) in sensor.writes
    assert (sensor.heartbeat_s, sensor.sensitivity, sensor.calibrations) == (
        heartbeat, sensitivity, 1,
    )  # fmt: skip
    assert [c["ok"] for c in body["checks"]] == [True, True, True]


def test_a_sensor_without_the_configuration_service_is_a_device_error(
    radio: Radio, capsys: pytest.CaptureFixture[str]
) -> None:
    nwave, _, _ = town(radio)
    nwave.config_service = False
    rc, body, _ = run_json(capsys, "configure", NWAVE, "--heartbeat", "600", "--scan-timeout", "1")
    assert rc == 1 and "has no citygate configuration service" in body["error"]["message"]
    assert nwave.writes == [] and not nwave.connected
