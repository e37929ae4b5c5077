"""Which decides on a camera's push: the lane the camera belongs to (the read, its session
step and the gate decision in one commit), or, for a camera in no lane (a car park without
barrier lanes), the recording decider that only keeps the parking books
(``gateway/services/cameras/decider.py``)."""

from __future__ import annotations

import logging

from drivers.cameras import CameraRead
from gateway.directory.devices import DeviceEntry
from gateway.services.cameras.decider import RecordingDecider
from gateway.services.cameras.store import CameraReads, Stored
from gateway.services.lanes.contract import LaneAnswer
from gateway.services.lanes.service import LaneService

log = logging.getLogger(__name__)


class CameraDecider:
    """The ``LaneDecider`` the camera route calls."""

    def __init__(self, lanes: LaneService, recording: RecordingDecider, reads: CameraReads) -> None:
        self._lanes = lanes
        self._recording = recording
        self._reads = reads

    async def on_push(
        self, parsed: CameraRead, camera: DeviceEntry
    ) -> tuple[Stored, LaneAnswer | None]:
        if self._lanes.serves(camera.id):
            return await self._lanes.on_push(parsed, camera, self._reads)
        stored = await self._reads.record(parsed, camera)
        if stored.duplicate:
            return stored, None
        try:
            return stored, await self._recording.on_read(stored.read)
        except Exception as exc:  # the read is stored: the camera still gets its answer
            log.error(
                "books not kept for camera %s read %s: %s: %s",
                camera.id,
                stored.read.read_id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            return stored, LaneAnswer(open=False, reason="decider_failed")
