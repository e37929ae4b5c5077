"""The online rule for cams, and how it survives a platform restart.

A cam is online while something arrived within interval × count (defaults 60 s × 3) and
its registration has not expired; it is offline at the first of the two deadlines, whatever
keepalives keep coming after the registration lapsed (the device must register again).
*last_keepalive* means the last sign of life: the REGISTER itself and any MESSAGE count, so a
cam is online between registering and its first keepalive.

After a restart the stored state is restored with its stored last keepalive: a cam still
within its deadline stays online (not every cam offline at boot, the reference platform's
failure), and goes offline at that same deadline unless the next keepalive confirms it (not
online forever on memory alone). Pure: times are passed in (aware datetimes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = ["PresenceState", "deadline", "is_online"]


def _check(interval_s: float, count: int) -> None:
    if not interval_s > 0 or isinstance(count, bool) or count < 1:
        raise ValueError(f"interval_s must be > 0 and count >= 1, got {interval_s}, {count}")


def deadline(
    last_keepalive: datetime | None,
    registered_until: datetime | None,
    interval_s: float,
    count: int,
) -> datetime | None:
    """When the cam goes offline: the earlier of last keepalive + interval × count and the
    registration's expiry; None when it is not online at all (never seen, not registered)."""
    _check(interval_s, count)
    if last_keepalive is None or registered_until is None:
        return None
    silent = last_keepalive + timedelta(seconds=interval_s * count)
    return min(silent, registered_until)


def is_online(
    last_keepalive: datetime | None,
    registered_until: datetime | None,
    now: datetime,
    interval_s: float,
    count: int,
) -> bool:
    """Online iff *now* is before the deadline (at the deadline itself: offline)."""
    d = deadline(last_keepalive, registered_until, interval_s, count)
    return d is not None and now < d


@dataclass(frozen=True)
class PresenceState:
    """One cam's presence. ``confirmed`` is False for a state restored from the database
    until the first message after the restart arrives."""

    last_keepalive: datetime | None
    registered_until: datetime | None
    interval_s: float = 60.0
    count: int = 3
    confirmed: bool = True

    def __post_init__(self) -> None:
        _check(self.interval_s, self.count)

    @classmethod
    def restore(
        cls,
        last_keepalive: datetime | None,
        registered_until: datetime | None,
        interval_s: float = 60.0,
        count: int = 3,
    ) -> PresenceState:
        """The state read back at boot: online until the deadline from the *stored* last
        keepalive, unconfirmed."""
        return cls(last_keepalive, registered_until, interval_s, count, confirmed=False)

    @property
    def deadline(self) -> datetime | None:
        """When this cam goes offline unless something arrives (the time to check again)."""
        return deadline(self.last_keepalive, self.registered_until, self.interval_s, self.count)

    def online(self, now: datetime) -> bool:
        return is_online(
            self.last_keepalive, self.registered_until, now, self.interval_s, self.count
        )

    def seen(self, now: datetime) -> PresenceState:
        """A keepalive (or any message) arrived at *now*: confirmed, deadline moved on."""
        last = now if self.last_keepalive is None else max(self.last_keepalive, now)
        # the constructor, not ``replace``: this runs for every message of every cam
        return PresenceState(last, self.registered_until, self.interval_s, self.count, True)

    def registered(self, now: datetime, expires_s: float) -> PresenceState:
        """A REGISTER accepted at *now* for *expires_s* seconds (a sign of life too)."""
        if not expires_s > 0:
            raise ValueError(f"expires_s must be > 0, got {expires_s}")
        until = now + timedelta(seconds=expires_s)
        return replace(self.seen(now), registered_until=until)

    def unregistered(self) -> PresenceState:
        """``Expires: 0``: offline at once."""
        return replace(self, registered_until=None, confirmed=True)
