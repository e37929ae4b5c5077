"""Bounds every API and CLI input shares: instants within a window the town can mean.

An instant in year 1 or 9999 is valid ISO 8601 but no device, payment or stay has one; let
through, it turns into centuries of pricing or paging. Refused with a message naming the bound.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def in_window(value: datetime) -> datetime:
    """*value* when it lies in [EARLIEST, LATEST); ValueError naming the window otherwise."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"instants must lie between {EARLIEST.date().isoformat()} and "
            f"{LATEST.date().isoformat()} (UTC)"
        )
    return value


Instant = Annotated[AwareDatetime, AfterValidator(in_window)]
