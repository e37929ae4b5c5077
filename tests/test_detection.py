"""Gateway-side vehicle detection: hysteresis, debounce, drift tracking, recalibration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sensors.detection import DetectorConfig, DetectorState, step

BASE = (100, -350, 400)
CAR = (180, -250, 530)  # ~183 units away from BASE
CFG = DetectorConfig()


def run(
    samples: list[tuple[int, int, int]],
    config: DetectorConfig = CFG,
    state: DetectorState | None = None,
    sensor_baseline: tuple[int, int, int] = BASE,
) -> list[DetectorState]:
    out = []
    for raw in samples:
        state = step(state, raw, sensor_baseline, config)
        out.append(state)
    return out


def settled_free(config: DetectorConfig = CFG) -> DetectorState:
    state = run([BASE] * config.debounce_samples, config)[-1]
    assert state.occupied is False
    return state


def settled_occupied(config: DetectorConfig = CFG) -> DetectorState:
    state = run([CAR] * config.debounce_samples, config, settled_free(config))[-1]
    assert state.occupied is True
    return state


def test_first_verdict_is_debounced_too() -> None:
    states = run([BASE, BASE])
    assert [s.occupied for s in states] == [None, False]
    assert states[0].pending is False
    assert states[0].pending_count == 1


def test_car_arrives_and_leaves_after_debounce() -> None:
    states = run([CAR, CAR, CAR, BASE, BASE], state=settled_free())
    assert [s.occupied for s in states] == [False, True, True, True, False]


def test_hysteresis_band_neither_sets_nor_clears() -> None:
    band = (145, -350, 400)  # magnitude 45: between threshold_off and threshold_on
    assert [s.occupied for s in run([band] * 5, state=settled_free())] == [False] * 5
    assert [s.occupied for s in run([band] * 5, state=settled_occupied())] == [True] * 5


def test_band_sample_interrupts_a_pending_change() -> None:
    band = (145, -350, 400)
    states = run([CAR, band, CAR, CAR], state=settled_free())
    assert [s.occupied for s in states] == [False, False, False, True]


def test_baseline_does_not_learn_while_occupied() -> None:
    occupied = settled_occupied()
    states = run([CAR] * 500, state=occupied)
    assert states[-1].occupied is True
    assert states[-1].baseline == occupied.baseline


def test_slow_drift_is_tracked_and_stays_free() -> None:
    """0.5 units per sample over 1000 samples (500 units) lags the baseline by ~25 < 30."""
    samples = [(100 + i // 2, -350, 400) for i in range(1000)]
    states = run(samples, state=settled_free())
    assert all(s.occupied is False for s in states)
    assert states[-1].baseline[0] > 550


def test_without_tracking_the_same_drift_would_read_occupied() -> None:
    frozen = DetectorConfig(baseline_alpha=0.0)
    samples = [(100 + i // 2, -350, 400) for i in range(1000)]
    assert run(samples, frozen, settled_free(frozen))[-1].occupied is True


def test_recalibration_resets_baseline() -> None:
    drifted = run([(120, -350, 400)] * 300, state=settled_free())[-1]
    assert drifted.baseline[0] > 115
    new_base = (500, 0, 0)
    state = step(drifted, new_base, new_base, CFG)
    assert state.recalibrated
    assert state.baseline == (500.0, 0.0, 0.0)
    assert state.occupied is False
    # A small wobble of the reported baseline is not a recalibration.
    wobble = step(state, new_base, (510, 0, 0), CFG)
    assert not wobble.recalibrated
    assert wobble.baseline == (500.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold_on": 20, "threshold_off": 30},
        {"threshold_off": -1},
        {"debounce_samples": 0},
        {"baseline_alpha": 1.5},
        {"recalibration_jump": -1},
    ],
)
def test_config_validation(kwargs: dict[str, int | float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        DetectorConfig(**kwargs)  # type: ignore[arg-type]


# Per-axis noise of at most 17 keeps |noise| <= 17*sqrt(3) ~ 29.4 < threshold_off (30).
noise = st.tuples(*(st.integers(-17, 17),) * 3)
base_vec = st.tuples(*(st.integers(-20000, 20000),) * 3)


@settings(max_examples=60)
@given(base_vec, st.lists(noise, min_size=1, max_size=300))
def test_bounded_noise_never_reads_occupied(
    base: tuple[int, int, int], noises: list[tuple[int, int, int]]
) -> None:
    state: DetectorState | None = None
    for n in noises:
        raw = (base[0] + n[0], base[1] + n[1], base[2] + n[2])
        state = step(state, raw, base, CFG)
        assert state.occupied is not True


@given(
    st.integers(2, 5),
    st.integers(1, 30),
    st.integers(1, 30),
    st.tuples(*(st.integers(-5000, 5000),) * 3),
)
def test_single_spike_never_flips(
    debounce: int, before: int, after: int, spike: tuple[int, int, int]
) -> None:
    config = DetectorConfig(debounce_samples=debounce)
    for settled, quiet in ((settled_free(config), BASE), (settled_occupied(config), CAR)):
        states = run([quiet] * before + [spike] + [quiet] * after, config, settled)
        assert all(s.occupied is settled.occupied for s in states)


@given(st.integers(1, 6))
def test_sustained_change_flips_after_exactly_debounce_samples(debounce: int) -> None:
    config = DetectorConfig(debounce_samples=debounce)
    states = run([CAR] * (debounce + 2), config, settled_free(config))
    flips = [i for i, s in enumerate(states) if s.occupied]
    assert flips[0] == debounce - 1
