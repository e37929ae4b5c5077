"""STATUSTEXT lines longer than one message, joined (MAVLink 2).

A STATUSTEXT carries at most 50 characters. A longer line goes as chunks with the same
non-zero ``id`` and ``chunk_seq`` 0, 1, 2, …; every chunk but the last is full (50
characters), so a short chunk ends the line. ``id`` 0 is a line of its own. A line whose
chunks stop coming, or that skips one, is given out as far as it got, marked ``…``, rather
than lost; the joiner keeps at most ``max_open`` lines and ``max_chunks`` chunks each, so a
sender cannot make it hold more. No clock: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CHUNK", "StatusTextJoiner"]

CHUNK = 50  # characters of text in one STATUSTEXT
GAP = "…"  # where a line was cut short (a chunk missing, or no end within the timeout)


@dataclass(slots=True)
class _Open:
    next_seq: int
    parts: list[str] = field(default_factory=list)
    since: float = 0.0


class StatusTextJoiner:
    """``add(source, id, chunk_seq, text, now)`` returns the lines it completes (zero, one,
    or two: a broken line and the one that broke it); ``expire(now)`` the lines (with their
    source) that waited too long for their end. A line of exactly a multiple of 50
    characters has no short chunk to end it: it ends by the timeout, marked like a cut one."""

    def __init__(self, *, timeout_s: float = 2.0, max_chunks: int = 20, max_open: int = 32):
        self.timeout_s = timeout_s
        self.max_chunks = max_chunks
        self.max_open = max_open
        self._open: dict[tuple[object, int], _Open] = {}

    def add(self, source: object, text_id: int, chunk_seq: int, text: str, now: float) -> list[str]:
        if text_id == 0:
            return [text]
        key = (source, text_id)
        out: list[str] = []
        line = self._open.get(key)
        if line is not None and chunk_seq != line.next_seq:  # a chunk lost: give out what came
            out.append(self._close(key) + GAP)
            line = None
        if line is None:
            if chunk_seq != 0:  # the start is lost: begin from here, marked
                text = GAP + text
            if len(self._open) >= self.max_open:  # the oldest gives way
                oldest = min(self._open, key=lambda k: self._open[k].since)
                out.append(self._close(oldest) + GAP)
            line = self._open[key] = _Open(chunk_seq, since=now)
        line.parts.append(text)
        line.next_seq += 1
        if len(text) < CHUNK or len(line.parts) >= self.max_chunks:
            whole = self._close(key)
            out.append(whole if len(text) < CHUNK else whole + GAP)
        return out

    def expire(self, now: float) -> list[tuple[object, str]]:
        late = [k for k, v in self._open.items() if now - v.since >= self.timeout_s]
        return [(k[0], self._close(k) + GAP) for k in late]

    def _close(self, key: tuple[object, int]) -> str:
        return "".join(self._open.pop(key).parts)
