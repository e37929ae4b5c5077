"""What a fuzz target is, and running one under hypothesis with counts.

A target's ``check`` returns the rejection reasons of one input (empty: accepted) and lets
anything else escape: that is a crash. ``run_target`` counts inputs, accepted, rejected by
reason and crashes; on a crash hypothesis shrinks the input and the minimal one is kept.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter

__all__ = ["Crash", "Result", "Target", "run_target"]

Reasons = Sequence[str]


class Crash(Exception):
    """Raised by a check when a parser that never raises reports a bug of its own (the OCPP
    core's ``internal_error``): a crash the parser caught itself."""


@dataclass(frozen=True)
class Target:
    """One parser under fuzz. ``entry`` names the real entry point(s) it calls."""

    name: str
    entry: str
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Reasons]


@dataclass
class Result:
    name: str
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    seconds: float = 0.0
    slowest_ms: float = 0.0
    crash_input: str | None = None  # the minimal (shrunk) input, repr'd
    crash_error: str | None = None  # its traceback

    def as_dict(self, top: int = 8) -> dict[str, Any]:
        rate = self.inputs / self.seconds if self.seconds > 0 else 0.0
        out: dict[str, Any] = {
            "name": self.name,
            "inputs": self.inputs,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": len(self.reasons),
            "top_reasons": dict(self.reasons.most_common(top)),
            "crashes": self.crashes,
            "seconds": round(self.seconds, 2),
            "inputs_per_s": round(rate),
            "slowest_ms": round(self.slowest_ms, 2),
        }
        if self.crash_input is not None:
            out["crash_input"] = self.crash_input
            out["crash_error"] = self.crash_error
        return out


def _short(reason: str) -> str:
    return reason[:60]


def run_target(
    target: Target, examples: int, *, seed_value: int | None = None, shrink: bool = True
) -> Result:
    """Run *target* on *examples* generated inputs (hypothesis may add a few explicit ones).
    Stops at the first crash; with *shrink*, the input recorded is the minimal one."""
    result = Result(target.name)
    failing: list[tuple[Any, BaseException]] = []

    def body(case: Any) -> None:
        if failing:  # shrinking after a crash: only the failing cases matter, uncounted
            try:
                target.check(case)
            except Exception as exc:
                failing.append((case, exc))
                raise
            return
        t0 = time.perf_counter()
        try:
            reasons = target.check(case)
        except Exception as exc:
            result.inputs += 1
            result.crashes += 1
            failing.append((case, exc))
            raise
        ms = (time.perf_counter() - t0) * 1000
        result.slowest_ms = max(result.slowest_ms, ms)
        result.inputs += 1
        if reasons:
            result.rejected += 1
            result.reasons.update(_short(r) for r in reasons)
        else:
            result.accepted += 1

    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    test = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(given(target.strategy)(body))
    if seed_value is not None:
        test = seed(seed_value)(test)
    started = time.perf_counter()
    try:
        with with_reporter(lambda text: print(text, file=sys.stderr)):
            test()
    except Exception:
        if not failing:
            raise  # a bug of the harness, not of a parser
        case, exc = failing[-1]  # hypothesis replays the minimal example last
        result.crash_input = repr(case)[:4000]
        # the exception's own line first (a long input in the frames must not push it out)
        lines = traceback.format_exception(exc)
        result.crash_error = (lines[-1] + "".join(lines[:-1]))[:4000]
    result.seconds = time.perf_counter() - started
    return result
