"""Dock requests (``thing/product/{sn}/requests``): what a dock asks the platform, and the
``requests_reply`` it waits for (same tid, bid and method).

A dock asks ``config`` when it comes up: the NTP server it should set its clock from and the
developer app it is bound to; without an answer it asks again and again. The other requests
(organization binding, flight-task resources, media storage credentials) belong to services
this platform does not run: they get ``result`` ``UNSUPPORTED`` at once, so the dock neither
waits for a timeout nor takes silence for a lost message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dronelink.dji.envelope import Envelope, reply

__all__ = ["ANSWERED", "UNSUPPORTED", "RequestAnswers", "answer"]

UNSUPPORTED = 1  # a non-zero result: DJI's own codes name their services; this one says "not here"
ANSWERED = frozenset({"config"})
# The requests the Cloud API documents, by name (counted by name; anything else as "other").
KNOWN = ANSWERED | {
    "airport_bind_status", "airport_organization_bind", "airport_organization_get",
    "flighttask_resource_get", "storage_config_get", "organization_bind",
    "organization_get",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RequestAnswers:
    """What ``config`` answers: the NTP host the docks can reach, and the DJI developer app
    (id, key, license; empty when not bound). The key and the license are secrets: this
    object is never logged."""

    ntp_server_host: str = ""
    app_id: str = ""
    app_key: str = ""
    app_license: str = ""

    def __repr__(self) -> str:  # never the key or the license
        return f"RequestAnswers(ntp_server_host={self.ntp_server_host!r}, app_id={self.app_id!r})"


def answer(env: Envelope, answers: RequestAnswers, timestamp_ms: int) -> tuple[bytes, str]:
    """The ``requests_reply`` payload for *env* and the label it is counted under
    (``config``, ``unsupported:<method>`` or ``unsupported:other``)."""
    if env.method == "config":
        data: dict[str, Any] = {
            "ntp_server_host": answers.ntp_server_host,
            "app_id": answers.app_id,
            "app_key": answers.app_key,
            "app_license": answers.app_license,
        }
        return reply(env, timestamp_ms, data), "config"
    name = env.method if env.method in KNOWN else "other"
    return reply(env, timestamp_ms, {"result": UNSUPPORTED}), f"unsupported:{name}"
