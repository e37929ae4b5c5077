"""The CI share of ``make fuzz``: every target of ``fuzz.registry`` runs a bounded number of
hostile inputs through its real parser with no crash; the registry covers every parser (a
new sensor codec or camera vendor without a target fails here); the samples the targets
mutate are valid (so the fuzz starts near the parsers' happy paths); and the harness does
catch, shrink and report a crash."""

from __future__ import annotations

import ast
import typing

import pytest
from hypothesis import strategies as st

from drivers.cameras import Vendor
from drivers.sensors.registry import CODECS
from fuzz.core import Target, run_target
from fuzz.registry import TARGETS
from fuzz.targets import files, sensors

CI_EXAMPLES = 60  # x 21 targets: a few seconds; `make fuzz` runs 100,000 each
# The parsers at the edge that are not named by a registry of their own.
REQUIRED = {
    "lorawan.chirpstack", "lorawan.tts", "sip.message", "sip.stream", "sip.quick",
    "gb28181.manscdp", "gb28181.quick", "dji.messages", "mavlink.datagram", "ocpp.frames",
    "file.tariffs", "file.charging_tariffs", "file.rules", "file.town",
}  # fmt: skip


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_takes_hostile_input_without_a_crash(name: str) -> None:
    result = run_target(TARGETS[name], CI_EXAMPLES, seed_value=20261204)
    assert result.crashes == 0, f"{name}: {result.crash_input}\n{result.crash_error}"
    assert result.inputs >= CI_EXAMPLES
    assert result.accepted + result.rejected == result.inputs
    assert sum(result.reasons.values()) >= result.rejected  # every rejection says why


def test_every_parser_has_a_target() -> None:
    missing = REQUIRED - set(TARGETS)
    missing |= {f"sensor.{model}" for model in CODECS} - set(TARGETS)
    vendors = set(typing.get_args(Vendor))
    missing |= {
        f"camera.{v}" for v in vendors if not any(n.startswith(f"camera.{v}") for n in TARGETS)
    }
    assert not missing, f"parsers without a fuzz target: {sorted(missing)}"
    # and every sensor codec has valid frames to start from
    assert set(sensors.SAMPLES) == set(CODECS)


@pytest.mark.parametrize("model", list(sensors.SAMPLES))
def test_sensor_samples_decode(model: str) -> None:
    check = TARGETS[f"sensor.{model}"].check
    for frame in sensors.SAMPLES[model]:
        assert check(frame) == (), frame


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("file.tariffs", files.TARIFFS),
        ("file.charging_tariffs", files.CHARGING),
        ("file.rules", files.RULES),
        ("file.town", files.TOWN),
    ],
)
def test_file_samples_load(name: str, text: str) -> None:
    assert TARGETS[name].check(text.encode()) == ()


def test_the_harness_catches_shrinks_and_reports_a_crash() -> None:
    def check(data: bytes) -> list[str]:
        if b"\x07" in data and len(data) > 3:
            raise IndexError("a parser bug")
        return ["short"] if len(data) < 2 else []

    target = Target("demo", "tests", st.binary(max_size=64), check)
    result = run_target(target, 2000, seed_value=1)
    assert result.crashes == 1
    assert result.crash_error is not None and "IndexError: a parser bug" in result.crash_error
    assert result.crash_input is not None
    assert len(ast.literal_eval(result.crash_input)) == 4  # shrunk to the smallest
    clean = run_target(Target("ok", "tests", st.binary(max_size=8), lambda d: ()), 50)
    assert (clean.crashes, clean.inputs, clean.accepted) == (0, 50, 50)
