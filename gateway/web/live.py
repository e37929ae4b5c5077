"""The map's live field markers, pure: at most one update per marker per interval (the newest
wins: a cam reporting ten fixes a second costs the page one), and a marker's update as the
HTML fragment the page's stream carries (``event: field``; ``map.js`` moves the marker).
Times are passed in (the stream's monotonic clock)."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import escape

__all__ = ["Coalescer", "Mark", "field_event"]


@dataclass(frozen=True, slots=True)
class Mark:
    """A marker as the page draws it: ``o-<cam id>`` (an officer) or ``dr-<drone id>``."""

    key: str
    kind: str  # officer | drone
    x: float
    y: float
    online: bool
    inside: bool  # within the map's frame (else the page hides it)
    title: str


class Coalescer:
    """Marks waiting to be sent, at most one per key per *gap_s*."""

    def __init__(self, gap_s: float = 1.0, max_keys: int = 10_000) -> None:
        self.gap_s = gap_s
        self.max_keys = max_keys
        self._sent: dict[str, float] = {}  # key -> when its last update went out
        self._pending: dict[str, Mark] = {}

    def offer(self, mark: Mark, now: float) -> Mark | None:
        """*mark* to send now, or None when its key sent one less than *gap_s* ago (then it
        waits, replacing any older one, until ``due``)."""
        last = self._sent.get(mark.key)
        if last is None or now - last >= self.gap_s:
            if last is None and len(self._sent) >= self.max_keys:
                self._forget(now)
            self._sent[mark.key] = now
            self._pending.pop(mark.key, None)
            return mark
        self._pending[mark.key] = mark
        return None

    def due(self, now: float) -> list[Mark]:
        """The waiting marks whose interval has passed (each sent now)."""
        out = []
        for key, mark in list(self._pending.items()):
            if now - self._sent.get(key, now - self.gap_s) >= self.gap_s:
                out.append(mark)
                self._sent[key] = now
                del self._pending[key]
        return out

    def wait_s(self, now: float) -> float | None:
        """How long until the next waiting mark is due; None when none waits."""
        if not self._pending:
            return None
        return max(0.0, min(self._sent[k] + self.gap_s - now for k in self._pending))

    def _forget(self, now: float) -> None:
        """Drop keys idle for a full interval (bounds the memory of a long stream)."""
        for key, at in list(self._sent.items()):
            if now - at >= self.gap_s and key not in self._pending:
                del self._sent[key]


def field_event(mark: Mark) -> bytes:
    """One SSE message: the marker's update as an HTML fragment on one line."""
    html = (
        f'<i data-mk="{escape(mark.key)}" data-kind="{escape(mark.kind)}" '
        f'data-x="{mark.x:g}" data-y="{mark.y:g}" data-on="{1 if mark.online else 0}" '
        f'data-in="{1 if mark.inside else 0}" data-title="{escape(mark.title)}"></i>'
    )
    return f"event: field\ndata: {html.replace(chr(10), ' ')}\n\n".encode()
