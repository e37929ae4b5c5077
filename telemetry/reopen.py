"""A spool that could not be opened when the gateway started (a full disk: SQLite cannot
even grow its shared-memory file), opened again on later use.

Without it a gateway restarted on a full disk would exit and crash-loop until space returns.
With it the gateway starts; every spool operation raises ``SpoolError`` (so the pipeline holds
points in memory and reports itself degraded) and tries to open the file again at most once
per ``retry_interval_s``; once that succeeds it is the plain ``Spool``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from telemetry.spool import DeadLetter, Spool, SpoolBatch, SpoolError, SpoolStats


class ReopeningSpool:
    """The ``Spool`` interface over a spool opened on first success of *opener*."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[Spool]],
        error: SpoolError,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._opener = opener
        self._error = error
        self._interval = retry_interval_s
        self._tried = time.monotonic()
        self._spool: Spool | None = None

    @property
    def is_open(self) -> bool:
        return self._spool is not None

    async def _get(self) -> Spool:
        if self._spool is not None:
            return self._spool
        now = time.monotonic()
        if now - self._tried >= self._interval:
            self._tried = now
            try:
                self._spool = await self._opener()
                return self._spool
            except SpoolError as exc:
                self._error = exc
        raise SpoolError(f"not open yet: {self._error}")

    async def append(self, lines: Sequence[str]) -> int:
        return await (await self._get()).append(lines)

    async def peek(self, max_points: int) -> SpoolBatch | None:
        return await (await self._get()).peek(max_points)

    async def ack(self, batch: SpoolBatch) -> None:
        await (await self._get()).ack(batch)

    async def dead_letter(self, lines: Sequence[str], reason: str, at: datetime) -> None:
        await (await self._get()).dead_letter(lines, reason, at)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await (await self._get()).dead_letters(limit)

    async def stats(self) -> SpoolStats:
        return await (await self._get()).stats()

    async def close(self) -> None:
        if self._spool is not None:
            await self._spool.close()
