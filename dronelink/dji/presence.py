"""Online or lost, from the last message heard from each device, with a timeout.

Presence lives only here, in memory, and is rebuilt from traffic: after a gateway restart a
device is UNKNOWN until its next message makes it ONLINE again. It is never restored from a
stored "online" (that is how DJI's demo server keeps docks offline after a restart until they
are re-bound), and a device that keeps talking can never be stuck offline.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dronelink.model import LinkState

__all__ = ["Presence"]


class Presence:
    def __init__(self, timeout_s: float) -> None:
        self.timeout = timedelta(seconds=timeout_s)
        self._last: dict[str, datetime] = {}
        self._online: set[str] = set()

    def __len__(self) -> int:
        return len(self._last)

    def seen(self, sn: str, at: datetime) -> bool:
        """Record a message from *sn*; True if it was not online before (it is now)."""
        self._last[sn] = max(at, self._last.get(sn, at))
        if sn in self._online:
            return False
        self._online.add(sn)
        return True

    def lost(self, sn: str) -> bool:
        """Mark *sn* lost at once (a dock says its aircraft left); True if it was online."""
        if sn in self._online:
            self._online.discard(sn)
            return True
        return False

    def state(self, sn: str) -> LinkState:
        if sn in self._online:
            return LinkState.ONLINE
        return LinkState.LOST if sn in self._last else LinkState.UNKNOWN

    def last_seen(self, sn: str) -> datetime | None:
        return self._last.get(sn)

    def expire(self, now: datetime) -> list[str]:
        """The devices silent past the timeout at *now*, marked lost (each reported once)."""
        out = [sn for sn in self._online if now - self._last[sn] > self.timeout]
        for sn in out:
            self._online.discard(sn)
        return sorted(out)
