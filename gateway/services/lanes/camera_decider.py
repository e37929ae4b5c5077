"""Which decides on a camera's stored read: the lane the camera belongs to, or, for a camera
in no lane (a car park without barrier lanes), the recording decider that only keeps the
parking books (``gateway/services/cameras/decider.py``)."""

from __future__ import annotations

from drivers.cameras import CameraRead
from gateway.services.cameras.decider import RecordingDecider
from gateway.services.lanes.contract import LaneAnswer, LaneRead
from gateway.services.lanes.service import LaneService


class CameraDecider:
    """The ``LaneDecider`` the camera route calls."""

    def __init__(self, lanes: LaneService, recording: RecordingDecider) -> None:
        self._lanes = lanes
        self._recording = recording

    async def on_read(self, read: CameraRead) -> LaneAnswer:
        if not self._lanes.serves(read.camera_id) or read.ts is None:
            return await self._recording.on_read(read)
        return await self._lanes.on_read(
            LaneRead(
                camera_id=read.camera_id,
                plate=read.plate,
                ts=read.ts,
                record_id=read.record_id,
                confidence=read.confidence,
                colour=read.colour,
                direction=read.direction,
                offline=read.offline,
            )
        )
