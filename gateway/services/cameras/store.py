"""The durable record of plate camera reads: a row in ``camera_reads`` (and its pictures on
disk) committed before the camera gets its answer.

A camera's time is kept when it is plausible; when it is ahead of the receive time by more
than ``clock_ahead_s``, older than ``max_offline_days`` or missing, the read is kept with the
receive time and flagged (``clock_off``), the camera's own time beside it. A resend of a
record the camera already delivered is found by ``(camera_id, record_id)`` (unique in the
database, whatever races run) and answered as a duplicate; a record id that comes back with
another plate or time (the camera's counter restarted) is stored without it and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.cameras import CameraRead
from gateway.config import CamerasConfig
from gateway.directory.devices import DeviceEntry
from gateway.infra.storage.schema import CameraReadRow
from gateway.metrics import Metrics
from gateway.services.cameras.evidence import EvidenceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stored:
    read: CameraRead  # with ``read_id``, and ``ts`` / ``clock_off`` as stored
    duplicate: bool
    within: Any = None  # what ``record``'s *within* returned (committed with the read)
    within_error: BaseException | None = None  # why *within* failed (the read alone stored)


Within = Callable[[AsyncSession, CameraRead], Awaitable[Any]]


class _WithinFailed(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def status_of(read: CameraRead) -> str:
    if read.plate is not None:
        return "read"
    return "bad_plate" if read.plate_error else "unread"


class CameraReads:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        evidence: EvidenceStore,
        config: CamerasConfig,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self.evidence = evidence
        self._ahead = timedelta(seconds=config.clock_ahead_s)
        self._oldest = timedelta(days=config.max_offline_days)
        self._metrics = metrics
        self._clock = clock
        self.quiet: dict[tuple[str, str], float] = {}  # (camera, reason) -> last logged

    def timed(self, read: CameraRead, received: datetime) -> CameraRead:
        """*read* with a time the books can take: its own, or *received* and a flag."""
        how = None
        if read.ts is None:
            how = "missing"
        elif read.ts > received + self._ahead:
            how = "ahead"
        elif read.ts < received - self._oldest:
            how = "old"
        if how is None:
            return read
        self._metrics.camera_clock_off.labels(read.vendor, how).inc()
        return dataclasses.replace(read, ts=received, clock_off=how)

    async def _existing(self, read: CameraRead) -> tuple[int, str | None, datetime | None] | None:
        """``(id, raw_plate, camera_ts)`` of the stored read with *read*'s record id."""
        if read.record_id is None:
            return None
        R = CameraReadRow
        async with self._sessions() as db:
            found = (
                await db.execute(
                    select(R.id, R.raw_plate, R.camera_ts).where(
                        R.camera_id == read.camera_id, R.record_id == read.record_id
                    )
                )
            ).first()
        return None if found is None else (found[0], found[1], found[2])

    def _reused(self, read: CameraRead) -> None:
        """The camera's record id came back with another read: its counter restarted (reset,
        firmware upgrade, a replaced unit). The read is stored without the id, not lost."""
        self._metrics.camera_pushes.labels(read.vendor, "record_id_reused").inc()
        key = (read.camera_id, "record_id_reused")
        if time.monotonic() - self.quiet.get(key, -1e9) >= 60:
            self.quiet[key] = time.monotonic()
            log.warning(
                "camera %s sent record id %s again with another read: stored without it",
                read.camera_id,
                read.record_id,
            )

    async def record(
        self, parsed: CameraRead, camera: DeviceEntry, within: Within | None = None
    ) -> Stored:
        """Store *parsed* with its pictures; a known record is a duplicate. Raises
        SQLAlchemyError / OSError when it cannot be stored (then nothing is half-kept).

        *within* runs in the read's transaction (``read_id`` not known yet): a lane
        records the session step and the gate decision in the same commit. When *within*
        fails, the read is stored alone (the camera does not send it again) and
        ``within_error`` says why."""
        received = self._clock()
        read = self.timed(parsed, received)
        record_id = read.record_id
        found = await self._existing(read)
        if found is not None:
            if (found[1], found[2]) == (read.raw_plate, parsed.ts):
                return Stored(dataclasses.replace(read, read_id=found[0]), duplicate=True)
            self._reused(read)
            record_id = None
        assert read.ts is not None  # timed() gave it one
        rels = await self.evidence.save(read.camera_id, received, read.images)
        for reason in read.dropped_images:
            self._metrics.camera_images.labels(reason.rsplit(": ", 1)[-1]).inc()
        row = dict(
            camera_id=read.camera_id,
            record_id=record_id,
            vendor=read.vendor,
            site_id=camera.site_id,
            lane_id=camera.lane_id,
            plate=read.plate,
            raw_plate=read.raw_plate,
            status=status_of(read),
            confidence=read.confidence,
            direction=read.direction,
            colour=read.colour,
            vehicle_type=read.vehicle_type,
            offline=read.offline,
            camera_ts=parsed.ts,
            read_at=read.ts,
            received_at=received,
            clock_off=read.clock_off,
            images=rels,
            dropped_images=list(read.dropped_images),
        )
        try:
            try:
                return await self._insert(row, read, within)
            except _WithinFailed as failed:
                stored = await self._insert(row, read, None)
                return dataclasses.replace(stored, within_error=failed.cause)
        except IntegrityError:  # the same record, stored meanwhile by a concurrent push
            await self.evidence.discard(rels)
            found = await self._existing(read)
            if found is None:
                raise
            return Stored(dataclasses.replace(read, read_id=found[0]), duplicate=True)
        except BaseException:
            await self.evidence.discard(rels)
            raise

    async def _insert(
        self, fields: dict[str, Any], read: CameraRead, within: Within | None
    ) -> Stored:
        result = None
        async with self._sessions.begin() as db:
            row = CameraReadRow(**fields)
            db.add(row)
            if within is None:
                await db.flush()
            else:
                try:
                    # The row goes out with within's first statement (autoflush): one round
                    # trip fewer on the camera's path. An error of the row itself is an
                    # IntegrityError on its unique record id, told apart below.
                    result = await within(db, read)
                    await db.flush()
                except IntegrityError as exc:
                    if "camera_reads" in str(exc.orig):
                        raise  # the read's own row: a concurrent push stored it
                    raise _WithinFailed(exc) from exc
                except (SQLAlchemyError, OSError) as exc:
                    raise _WithinFailed(exc) from exc
            stored = dataclasses.replace(read, read_id=row.id)
        return Stored(stored, duplicate=False, within=result)
