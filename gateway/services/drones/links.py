"""The drone links the service sends commands over, by source (a town drone's ``kind``):
``"dji"``, the DJI Cloud API over the ``[mqtt]`` broker (``dronelink.dji.link.DjiLink``), and
``"mavlink"``, open autopilots over UDP (``dronelink.mavlink.link.MavlinkLink``).

Each is built with the service's callbacks and the ``[drones]`` settings. The DJI link follows
only the docks and aircraft of the town's drones (``known``: read live, so a drone added
through the town import is followed at once); everything else on the broker is a counted
rejection. The links' rejections count into ``citygate_drone_link_rejected_total{source,
reason}``. ``start`` binds what needs binding (the MAVLink port: a taken port is a start-up
error), and the supervisor runs each link's ``run`` next to the service's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from dronelink.dji.link import DjiLink
from dronelink.dji.requests import RequestAnswers
from dronelink.mavlink.link import MavlinkLink
from dronelink.model import DroneLink, OnDock, OnProgress, OnReport
from gateway.config import Settings
from gateway.infra.mqtt import mqtt_params
from gateway.metrics import FastCounter, Metrics

__all__ = ["build_links", "start_links"]


def build_links(
    settings: Settings,
    on_report: OnReport,
    on_dock: OnDock,
    on_progress: OnProgress,
    clock: Callable[[], datetime],
    known_sn: Callable[[str], bool],
    metrics: Metrics,
) -> dict[str, DroneLink]:
    """The links by source, each with the service's callbacks; *known_sn* says whether a DJI
    sn (dock or aircraft) belongs to one of the town's drones."""
    d = settings.drones
    rejected = FastCounter(
        "citygate_drone_link_rejected",
        "Drone link input refused, by link (dji, mavlink) and reason",
        ["source", "reason"],
        metrics.registry,
    )
    params = mqtt_params(settings, f"{settings.mqtt.client_id}-drones")
    dji = DjiLink(
        params,
        known_sn,
        on_report,
        on_dock,
        on_progress,
        clock,
        reply_timeout_s=d.dji_reply_timeout_s,
        retries=d.dji_retries,
        presence_timeout_s=d.presence_timeout_s,
        share_group=d.dji_share_group,
        on_reject=lambda reason: rejected.labels("dji", reason).inc(),
        answers=RequestAnswers(
            ntp_server_host=d.dji_ntp_server_host,
            app_id=d.dji_app_id,
            app_key=d.dji_app_key.get_secret_value() if d.dji_app_key else "",
            app_license=d.dji_app_license.get_secret_value() if d.dji_app_license else "",
        ),
    )
    mavlink = MavlinkLink(
        on_report,
        clock,
        host=d.mavlink_host,
        port=d.mavlink_port,
        link_timeout_s=d.mavlink_link_timeout_s,
        ack_timeout_s=d.mavlink_ack_timeout_s,
        retries=d.mavlink_retries,
        stream_intervals={
            "GLOBAL_POSITION_INT": d.mavlink_position_interval_s,
            "SYS_STATUS": d.mavlink_status_interval_s,
        },
        on_reject=lambda reason: rejected.labels("mavlink", reason).inc(),
    )
    return {"dji": dji, "mavlink": mavlink}


async def start_links(links: Mapping[str, DroneLink]) -> None:
    """Bind the links that listen (MAVLink's UDP port); OSError when it is taken."""
    for link in links.values():
        if isinstance(link, MavlinkLink):
            await link.start()
