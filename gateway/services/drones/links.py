"""THE place where the drone links are plugged in: ``build_links`` returns the links the drone
service sends commands over, by source (``"dji"``, ``"mavlink"``: a town drone's ``kind``).

It returns no link for now: the DJI Cloud API link (``dronelink.dji.link.DjiLink``) and the
MAVLink link (``dronelink.mavlink.link.MavlinkLink``) are built elsewhere and wired here by the
lead after merging. Until then every command is recorded and answered ``rejected`` ("no dji
link runs on this gateway"), and no report arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dronelink.model import DroneLink, OnDock, OnProgress, OnReport
from gateway.config import Settings

__all__ = ["build_links"]


def build_links(
    settings: Settings,
    on_report: OnReport,
    on_dock: OnDock,
    on_progress: OnProgress,
    clock: Callable[[], datetime],
) -> dict[str, DroneLink]:
    """The links by source, each built with the service's callbacks (``DroneService.on_report``,
    ``on_dock``, ``on_progress``), ``[drones]`` settings (``settings.drones``: the ``dji_*`` and
    ``mavlink_*`` keys) and ``[mqtt]`` for the DJI broker.

    The lead fills this in: e.g. ``{"dji": DjiLink(...), "mavlink": MavlinkLink(...)}``; a link
    that needs a task of its own is run by the supervisor next to ``DroneService.run``
    (``gateway.supervisor.Gateway._tasks``, the ``drones`` task). Returns ``{}`` for now.
    """
    return {}
