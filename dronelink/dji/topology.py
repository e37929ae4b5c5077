"""Which aircraft sits at which dock, from ``update_topo`` (and, after a gateway restart,
from what the next messages say: the aircraft osd's ``gateway`` field, the dock osd's
``sub_device``), and the ``status_reply`` owed for each ``update_topo``.

A dock sends ``update_topo`` when it connects and whenever its aircraft comes or goes; an
empty ``sub_devices`` means the aircraft went offline. A gateway that restarts has missed
the last one, so the link also learns the pairing from ordinary traffic: it never has to
wait for the dock to be re-bound (the failure users of DJI's demo report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dronelink.dji.envelope import Envelope, Rejection, reply
from dronelink.dji.topics import valid_sn

__all__ = ["TopoChange", "Topology", "status_reply"]


@dataclass(frozen=True, slots=True)
class TopoChange:
    dock_sn: str
    aircraft_sn: str | None  # now at the dock (None: none online)
    gone: tuple[str, ...] = ()  # aircraft that left this dock (offline or elsewhere)


class Topology:
    def __init__(self) -> None:
        self._aircraft_of: dict[str, str] = {}  # dock sn -> aircraft sn
        self._dock_of: dict[str, str] = {}  # aircraft sn -> dock sn

    def dock_of(self, aircraft_sn: str) -> str | None:
        return self._dock_of.get(aircraft_sn)

    def aircraft_of(self, dock_sn: str) -> str | None:
        return self._aircraft_of.get(dock_sn)

    def is_aircraft(self, sn: str) -> bool:
        return sn in self._dock_of

    def docks(self) -> set[str]:
        return set(self._aircraft_of)

    def update_topo(self, dock_sn: str, data: dict[str, Any]) -> TopoChange | Rejection:
        """Apply an ``update_topo``: the first valid sub-device is the aircraft (a dock has
        one); none = the aircraft went offline."""
        subs = data.get("sub_devices", [])
        if subs is None:
            subs = []
        if not isinstance(subs, list):
            return Rejection("bad_field", "sub_devices must be a list")
        aircraft: str | None = None
        for sub in subs:
            if not isinstance(sub, dict) or not isinstance(sub.get("sn"), str):
                return Rejection("bad_field", "sub_devices[] needs an sn")
            if not valid_sn(sub["sn"]) or sub["sn"] == dock_sn:
                return Rejection("bad_field", "sub_devices[].sn unusable")
            aircraft = aircraft or sub["sn"]
        return self.pair(dock_sn, aircraft)

    def pair(self, dock_sn: str, aircraft_sn: str | None) -> TopoChange:
        """Record that *aircraft_sn* (or none) is at *dock_sn*."""
        gone: list[str] = []
        old = self._aircraft_of.get(dock_sn)
        if old is not None and old != aircraft_sn:
            gone.append(old)
            self._dock_of.pop(old, None)
            del self._aircraft_of[dock_sn]
        if aircraft_sn is not None:
            other = self._dock_of.get(aircraft_sn)
            if other is not None and other != dock_sn:
                self._aircraft_of.pop(other, None)
            self._dock_of[aircraft_sn] = dock_sn
            self._aircraft_of[dock_sn] = aircraft_sn
        else:
            self._aircraft_of.pop(dock_sn, None)
        return TopoChange(dock_sn, aircraft_sn, tuple(gone))

    def learn(self, dock_sn: str, aircraft_sn: str) -> TopoChange | None:
        """A pairing seen in ordinary traffic; a change only if it is news."""
        if self._dock_of.get(aircraft_sn) == dock_sn or aircraft_sn == dock_sn:
            return None
        if not valid_sn(aircraft_sn):
            return None
        return self.pair(dock_sn, aircraft_sn)


def status_reply(env: Envelope, timestamp_ms: int) -> bytes:
    """What ``sys/product/{sn}/status_reply`` carries for an ``update_topo``."""
    return reply(env, timestamp_ms, {"result": 0})
