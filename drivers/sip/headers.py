"""Header fields as an ordered, case-insensitive multi-map with canonical names.

Devices send compact forms (``i`` for ``Call-ID``) and any case (``call-id``, ``CALL-ID``):
names are canonicalised once, on the way in, so every lookup sees one spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["CANONICAL", "COMPACT", "Headers", "canonical_name"]

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


def canonical_name(name: str) -> str:
    """The full, conventionally spelt name: ``i`` -> ``Call-ID``, ``call-id`` -> ``Call-ID``;
    unknown names keep the sender's spelling (they still compare case-insensitively)."""
    low = name.lower()
    return COMPACT.get(low) or CANONICAL.get(low) or name


class Headers:
    """An ordered, case-insensitive multi-map of header fields; immutable (methods that change
    it return a new one). Names are canonicalised on the way in, so compact forms and case
    variants are the same field."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(
            (canonical_name(name), value) for name, value in items
        )

    def get(self, name: str, default: str | None = None) -> str | None:
        low = canonical_name(name).lower()
        for key, value in self._items:
            if key.lower() == low:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        low = canonical_name(name).lower()
        return [value for key, value in self._items if key.lower() == low]

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
        low = canonical_name(name).lower()
        return Headers(item for item in self._items if item[0].lower() != low)

    def set(self, name: str, value: str) -> Headers:
        """Replace every ``name`` field by one, at the place of the first (else at the end)."""
        low = canonical_name(name).lower()
        out: list[tuple[str, str]] = []
        done = False
        for key, old in self._items:
            if key.lower() != low:
                out.append((key, old))
            elif not done:
                out.append((key, value))
                done = True
        if not done:
            out.append((name, value))
        return Headers(out)
