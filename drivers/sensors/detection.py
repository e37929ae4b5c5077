"""Pure vehicle detection from NB-IoT magnetometer frames.

The sensors' own occupied bit is unreliable (drift, neighbours' cars, recalibrations at the
wrong moment), so the gateway decides from the raw field itself:

* **distance**: Euclidean magnitude of ``raw - baseline``;
* **hysteresis**: at or above ``threshold_on`` says occupied, at or below ``threshold_off``
  says free, in between says "no change" so a reading hovering near one threshold cannot flap;
* **debounce**: a new verdict is accepted only after ``debounce_samples`` consecutive samples
  agree (the first verdict too), so one spike - a passing bus, a lorry in the next bay - never
  flips the berth;
* **drift tracking**: while the berth is confidently free the gateway's baseline follows the
  field with an exponential average (``baseline_alpha``), absorbing temperature drift; it never
  learns while occupied, so a parked car is not absorbed into the baseline;
* **recalibration**: if the sensor-reported baseline jumps by more than ``recalibration_jump``
  on any axis, the device recalibrated and its new baseline replaces the gateway's.

With ``threshold_on >= 2 * threshold_off`` (the defaults 60/30), noise bounded below
``threshold_off`` around a fixed field can never reach ``threshold_on``: the tracked baseline
stays inside the noise ball, so ``|raw - baseline|`` is less than its diameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DetectorConfig", "DetectorState", "magnitude", "step"]

Vector = tuple[int, int, int]
FVector = tuple[float, float, float]


@dataclass(frozen=True)
class DetectorConfig:
    """Tuning of the detector; defaults suit a flush-mounted sensor under a passenger car."""

    threshold_on: int = 60
    threshold_off: int = 30
    debounce_samples: int = 2
    baseline_alpha: float = 0.02
    recalibration_jump: int = 50

    def __post_init__(self) -> None:
        if not 0 <= self.threshold_off <= self.threshold_on:
            raise ValueError("need 0 <= threshold_off <= threshold_on")
        if self.debounce_samples < 1:
            raise ValueError("debounce_samples must be >= 1")
        if not 0.0 <= self.baseline_alpha <= 1.0:
            raise ValueError("baseline_alpha must be within 0..1")
        if self.recalibration_jump < 0:
            raise ValueError("recalibration_jump must be >= 0")


@dataclass(frozen=True)
class DetectorState:
    """Everything the detector remembers between samples (immutable; ``step`` returns anew)."""

    occupied: bool | None  # accepted verdict; None until the first one is debounced
    pending: bool | None  # verdict waiting for confirmation, if any
    pending_count: int  # consecutive samples agreeing with ``pending``
    baseline: FVector  # the gateway's adaptive baseline
    sensor_baseline: Vector  # last baseline the sensor reported (to spot recalibrations)
    magnitude: float  # |raw - baseline| of the last sample, for diagnosis
    recalibrated: bool = False  # the last sample reset the baseline


def magnitude(raw: Vector, baseline: FVector) -> float:
    """Euclidean distance between the field and the baseline."""
    return math.sqrt(sum((r - b) ** 2 for r, b in zip(raw, baseline, strict=True)))


def step(
    state: DetectorState | None,
    raw: Vector,
    sensor_baseline: Vector,
    config: DetectorConfig,
) -> DetectorState:
    """Feed one sample; returns the new state (``state=None`` starts a fresh detector)."""
    recalibrated = False
    if state is None:
        baseline: FVector = (
            float(sensor_baseline[0]),
            float(sensor_baseline[1]),
            float(sensor_baseline[2]),
        )
        occupied: bool | None = None
        pending: bool | None = None
        count = 0
    else:
        baseline, occupied = state.baseline, state.occupied
        pending, count = state.pending, state.pending_count
        jump = max(abs(n - o) for n, o in zip(sensor_baseline, state.sensor_baseline, strict=True))
        if jump > config.recalibration_jump:
            baseline = (
                float(sensor_baseline[0]),
                float(sensor_baseline[1]),
                float(sensor_baseline[2]),
            )
            recalibrated = True

    dist = magnitude(raw, baseline)
    if dist >= config.threshold_on:
        evidence: bool | None = True
    elif dist <= config.threshold_off:
        evidence = False
    else:
        evidence = None  # hysteresis band: no reason to change anything

    if evidence is None or evidence == occupied:
        pending, count = None, 0
    else:
        count = count + 1 if pending == evidence else 1
        pending = evidence
        if count >= config.debounce_samples:
            occupied, pending, count = evidence, None, 0

    if occupied is False and evidence is False:
        a = config.baseline_alpha
        baseline = (
            baseline[0] + a * (raw[0] - baseline[0]),
            baseline[1] + a * (raw[1] - baseline[1]),
            baseline[2] + a * (raw[2] - baseline[2]),
        )

    return DetectorState(
        occupied=occupied,
        pending=pending,
        pending_count=count,
        baseline=baseline,
        sensor_baseline=sensor_baseline,
        magnitude=dist,
        recalibrated=recalibrated,
    )
