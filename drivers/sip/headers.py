"""Header fields as an ordered, case-insensitive multi-map with canonical names.

Devices send compact forms (``i`` for ``Call-ID``) and any case (``call-id``, ``CALL-ID``):
names are canonicalised once, on the way in, so every lookup sees one spelling. The fields
are indexed once, by lower-case canonical name, at the first lookup (then a lookup is a dict
access, not a scan), and a parsed value (the top Via, CSeq, From, To) is read once per map
and kept with it (``parsed``): the map is immutable, so neither can go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["CANONICAL", "COMPACT", "Headers", "canonical_name"]

T = TypeVar("T")

COMPACT = {
    "v": "Via",
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
}
_KNOWN = [
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
    "Content-Encoding", "Max-Forwards", "Expires", "User-Agent", "Server", "Date", "Authorization",
    "WWW-Authenticate", "Proxy-Authorization", "Proxy-Authenticate", "Authentication-Info",
    "Event", "Allow-Events", "Subscription-State", "Subject", "Supported", "Require", "Allow",
    "Accept", "Route", "Record-Route", "Refer-To", "Referred-By", "Session-Expires", "Min-Expires",
    "Timestamp", "Warning", "Retry-After", "Monitor-Type", "X-GB-Ver", "Organization",
]  # fmt: skip
CANONICAL = {name.lower(): name for name in _KNOWN}

# Spellings seen -> (canonical name, index key). Bounded: past the bound (a sender making up
# names) a name is worked out each time instead of remembered.
_SEEN: dict[str, tuple[str, str]] = {}
_SEEN_MAX = 4096


def _names(name: str) -> tuple[str, str]:
    got = _SEEN.get(name)
    if got is None:
        low = name.lower()
        full = COMPACT.get(low) or CANONICAL.get(low) or name
        got = (full, full.lower())
        if len(_SEEN) < _SEEN_MAX:
            _SEEN[name] = got
    return got


def canonical_name(name: str) -> str:
    """The full, conventionally spelt name: ``i`` -> ``Call-ID``, ``call-id`` -> ``Call-ID``;
    unknown names keep the sender's spelling (they still compare case-insensitively)."""
    return _names(name)[0]


class Headers:
    """An ordered, case-insensitive multi-map of header fields; immutable (methods that change
    it return a new one). Names are canonicalised on the way in, so compact forms and case
    variants are the same field."""

    __slots__ = ("_index", "_items", "_parsed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(
            (_names(name)[0], value) for name, value in items
        )
        self._index: dict[str, str] | None = None  # key -> first value, on the first lookup
        self._parsed: dict[str, Any] | None = None

    def _first(self) -> dict[str, str]:
        index: dict[str, str] = {}
        for name, value in self._items:
            index.setdefault(_names(name)[1], value)
        self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        index = self._index if self._index is not None else self._first()
        return index.get(_names(name)[1], default)

    def get_all(self, name: str) -> list[str]:
        key = _names(name)[1]
        return [value for full, value in self._items if _names(full)[1] == key]

    def parsed(self, key: str, read: Callable[[Headers], T]) -> T:
        """``read(self)``, worked out once per map and kept under *key* (an error is raised
        each time, never kept)."""
        if self._parsed is None:
            self._parsed = {}
        try:
            value: T = self._parsed[key]
        except KeyError:
            value = self._parsed[key] = read(self)
        return value

    def keep_parsed(self, other: Headers, keys: Iterable[str]) -> None:
        """Take *other*'s parsed values under *keys* (for a copy whose fields under those
        keys are the same, e.g. a request stamped on receipt)."""
        if not other._parsed:
            return
        if self._parsed is None:
            self._parsed = {}
        for key in keys:
            if key in other._parsed:
                self._parsed.setdefault(key, other._parsed[key])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def add(self, name: str, value: str) -> Headers:
        return Headers((*self._items, (name, value)))

    def remove(self, name: str) -> Headers:
        low = _names(name)[1]
        return Headers(item for item in self._items if _names(item[0])[1] != low)

    def set(self, name: str, value: str) -> Headers:
        """Replace every ``name`` field by one, at the place of the first (else at the end)."""
        low = _names(name)[1]
        out: list[tuple[str, str]] = []
        done = False
        for key, old in self._items:
            if _names(key)[1] != low:
                out.append((key, old))
            elif not done:
                out.append((key, value))
                done = True
        if not done:
            out.append((name, value))
        return Headers(out)
