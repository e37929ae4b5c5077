"""Report a problem once when it starts and once when it clears, quietly in between.

The one implementation: ``gateway.logs.OnceLogger`` is this with redaction of credentials
(drivers may not import the gateway; the gateway may import drivers).
"""

from __future__ import annotations

import logging

__all__ = ["OnceLogger"]


class OnceLogger:
    """One warning when *what* starts failing, one info line when it recovers."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self._failing = False
        self.failures = 0
        self.episodes = 0

    def failed(self, reason: str) -> None:
        self.failures += 1
        if not self._failing:
            self._failing = True
            self.episodes += 1
            self._log.warning("%s failing: %s (retrying quietly)", self._what, self.shown(reason))

    def recovered(self) -> None:
        if self._failing:
            self._log.info("%s recovered after %d failed attempt(s)", self._what, self.failures)
        self._failing = False
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self._failing

    def shown(self, reason: str) -> str:
        """*reason* as logged (the gateway's subclass redacts credentials)."""
        return reason
