"""Pacing helpers that take "now" as an argument: the sim-to-real clock and a token bucket."""

from __future__ import annotations


class SimClock:
    """Maps real (monotonic) time to simulated time at *speed*; pausable, so the simulated
    town stands still while the broker is away instead of bursting afterwards."""

    def __init__(
        self, sim_start: float, speed: float, real_now: float, *, paused: bool = False
    ) -> None:
        self.speed = speed
        self._sim0 = sim_start
        self._real0 = real_now
        self._paused_at: float | None = real_now if paused else None

    def sim_at(self, real: float) -> float:
        if self._paused_at is not None:
            real = self._paused_at
        return self._sim0 + (real - self._real0) * self.speed

    def real_delay(self, sim_t: float, real_now: float) -> float:
        """Real seconds until the sim reaches *sim_t* (0 if already there)."""
        return max(0.0, (sim_t - self.sim_at(real_now)) / self.speed)

    def pause(self, real_now: float) -> None:
        if self._paused_at is None:
            self._paused_at = real_now

    def resume(self, real_now: float) -> None:
        if self._paused_at is not None:
            self._real0 += real_now - self._paused_at
            self._paused_at = None

    def hold_back(self, sim_t: float, real_now: float, max_lag_s: float) -> None:
        """If processing *sim_t* now means lagging more than *max_lag_s* real seconds, slow
        the simulated clock: a rate-limited run gets slower, never an ever-growing backlog."""
        lag = (self.sim_at(real_now) - sim_t) / self.speed
        if lag > max_lag_s:
            self._real0 += lag - max_lag_s


class TokenBucket:
    """At most *rate* messages per second on average, bursts up to *burst*."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> float:
        """Take a token: returns 0.0 on success, else the seconds to wait before retrying."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate
