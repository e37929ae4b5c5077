"""The decider for a camera in no lane: a read is recorded in the parking books exactly as
``POST /api/v1/plate-reads`` records it, and no gate is moved (lanes: ``CameraDecider``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from events import PlateRead
from gateway.directory.devices import DeviceDirectory
from gateway.directory.town import Site
from gateway.infra.bus import EventBus
from gateway.services.lanes.contract import CameraRead, LaneAnswer
from gateway.services.parking.sessions import SessionStore


class RecordingDecider:
    """Opens or closes the stay at the camera's car park; answers open=False always.

    The direction is the camera's registered lane direction, else what the camera says.
    """

    def __init__(
        self,
        store: SessionStore,
        directory: DeviceDirectory,
        sites: Mapping[str, Site],
        bus: EventBus,
        min_confidence: float = 0.0,
    ) -> None:
        self._store = store
        self._directory = directory
        self._sites = sites
        self._bus = bus
        self._min_confidence = min_confidence

    async def on_read(self, read: CameraRead) -> LaneAnswer:
        if read.plate is None:
            return LaneAnswer(open=False, reason="bad_plate" if read.plate_error else "unread")
        camera = self._directory.get(read.camera_id)
        site = camera.site_id if camera else None
        if site is None or site not in self._sites:
            return LaneAnswer(open=False, display=[read.plate], reason="unknown_site")
        way = (camera.direction if camera else None) or read.direction
        if way not in ("in", "out") or read.ts is None:
            return LaneAnswer(open=False, display=[read.plate], reason="no_direction")
        direction: Literal["in", "out"] = "in" if way == "in" else "out"
        if read.confidence is not None and read.confidence < self._min_confidence:
            return LaneAnswer(open=False, display=[read.plate], reason="low_confidence")
        plate_read = PlateRead(
            device_id=read.camera_id,
            ts=read.ts,
            site_id=site,
            direction=direction,
            plate=read.plate,
            colour=read.colour,
            confidence=read.confidence,
            lane=camera.lane_id if camera else None,
            image_ref=f"camera_reads/{read.read_id}",
        )
        result = await self._store.on_plate_read(plate_read)
        self._bus.publish(plate_read)
        shown = [] if read.offline else [read.plate]  # a resend is old news to the lane
        return LaneAnswer(open=False, display=shown, reason=f"recorded: {result.outcome}")
