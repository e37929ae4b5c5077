"""Versioned books: a posted tariff changes by publishing a new version in force from a date;
a book holds the versions in order and finds the one in force at an instant."""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from tariffcore.day import require_aware


class Versioned(Protocol):
    """A tariff version: an id and the instant it comes into force."""

    @property
    def version(self) -> str: ...
    @property
    def effective_from(self) -> dt.datetime: ...


V = TypeVar("V", bound=Versioned)


def check_version(version: Versioned) -> None:
    """A version must say when it comes into force as an aware instant."""
    if version.effective_from.utcoffset() is None:
        raise ValueError(f"version {version.version!r}: effective_from must be timezone-aware")


@dataclass(frozen=True)
class VersionBook(Generic[V]):
    """All versions of a posted tariff, in strictly increasing ``effective_from`` order, with
    unique ids. ``kind`` names the tariff in messages."""

    versions: tuple[V, ...]
    kind: ClassVar[str] = "tariff"

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError(f"a {self.kind} book needs at least one version")
        starts = [v.effective_from.astimezone(dt.UTC) for v in self.versions]
        if any(a >= b for a, b in itertools.pairwise(starts)):
            raise ValueError("tariff versions must be in strictly increasing effective_from order")
        ids = [v.version for v in self.versions]
        if len(set(ids)) != len(ids):
            raise ValueError("tariff version ids must be unique")

    @functools.cached_property
    def _starts(self) -> tuple[dt.datetime, ...]:
        """``effective_from`` of every version in UTC (one tzinfo: cheap to compare)."""
        return tuple(v.effective_from.astimezone(dt.UTC) for v in self.versions)

    def version_at(self, instant: dt.datetime) -> V:
        """The version in force at ``instant`` (aware)."""
        index = bisect.bisect_right(self._starts, require_aware(instant, "instant"))
        if index == 0:
            first = self.versions[0].effective_from.isoformat()
            raise ValueError(
                f"no {self.kind} in force at {instant.isoformat()} (first version: {first})"
            )
        return self.versions[index - 1]
