"""The map stream's field markers for those who may see the field: the officers' body cams
and the drones move with their positions on the bus (``BodycamPosition``, ``DronePosition``),
a drone goes offline and back with its ``link_lost`` alert, and a body cam goes offline when
its presence deadline passes (checked every PRESENCE_CHECK_S from the platform's memory; a cam
that speaks again is online with its next position). At most one update per marker per second
(``gateway.web.live.Coalescer``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from events import BodycamPosition, DroneAlert, DronePosition, Event
from gateway.api.state import AppState
from gateway.web import geo
from gateway.web.live import Coalescer, Mark, field_event
from gateway.web.ops import local

__all__ = ["PRESENCE_CHECK_S", "FieldFeed"]

PRESENCE_CHECK_S = 5.0
UPDATE_GAP_S = 1.0


class FieldFeed:
    """One stream's field markers (``gateway.api.sse.Extra``), seeded with what the page drew
    (``map_page.field_marks``)."""

    def __init__(self, state: AppState, frame: geo.Frame, seed: dict[str, list[Any]]) -> None:
        self._state = state
        self._frame = frame
        self._marks = Coalescer(UPDATE_GAP_S)
        self._last: dict[str, Mark] = {}
        self._names: dict[str, str] = {}
        for o in seed["officers"]:
            self._names[o["id"]] = o["name"]
            self._last["o-" + o["id"]] = Mark(
                "o-" + o["id"], "officer", o["x"], o["y"], o["online"], o["inside"],
                self._title("officer", o["name"], o["at"]),
            )  # fmt: skip
        for d in seed["drones"]:
            self._names[d["id"]] = d["name"]
            self._last["dr-" + d["id"]] = Mark(
                "dr-" + d["id"], "drone", d["x"], d["y"], d["online"], d["inside"],
                self._title("drone", d["name"], d["at"]),
            )  # fmt: skip
        self._next_check: float | None = None

    @staticmethod
    def _title(kind: str, name: str, at: str) -> str:
        what = "执法记录仪 · body cam" if kind == "officer" else "无人机 · drone"
        return f"{what} {name} · {at}"

    def accepts(self, ev: Event) -> bool:
        return isinstance(ev, BodycamPosition | DronePosition) or (
            isinstance(ev, DroneAlert) and ev.alert == "link_lost"
        )

    def _officer_name(self, ev: BodycamPosition) -> str:
        name = self._names.get(ev.device_id)
        if name is None:
            svc = self._state.bodycams
            officer = (
                None if svc is None or ev.officer_id is None else svc.officers.get(ev.officer_id)
            )
            name = getattr(officer, "name", None) or ev.device_id
            if len(self._names) < 10_000:
                self._names[ev.device_id] = name
        return name

    def _at(self, ts: datetime) -> str:
        return local(ts, self._state.zone)

    def _moved(self, key: str, kind: str, name: str, lat: float, lon: float, ts: datetime) -> Mark:
        x, y = self._frame.xy(lon, lat)
        inside = self._frame.contains(lon, lat)
        return Mark(key, kind, x, y, True, inside, self._title(kind, name, self._at(ts)))

    def take(self, ev: Event, now: float) -> bytes:
        mark: Mark | None = None
        if isinstance(ev, BodycamPosition):
            mark = self._moved(
                "o-" + ev.device_id, "officer", self._officer_name(ev), ev.lat, ev.lon, ev.ts
            )
        elif isinstance(ev, DronePosition):
            name = self._names.get(ev.device_id, ev.device_id)
            mark = self._moved("dr-" + ev.device_id, "drone", name, ev.lat, ev.lon, ev.ts)
        elif isinstance(ev, DroneAlert):
            last = self._last.get("dr-" + ev.device_id)
            if last is not None:  # no marker without a position
                mark = replace(last, online=not ev.raised)
        if mark is None or (len(self._last) >= 10_000 and mark.key not in self._last):
            return b""
        self._last[mark.key] = mark
        out = self._marks.offer(mark, now)
        return b"" if out is None else field_event(out)

    def _presence(self, now: float) -> list[Mark]:
        """Body cams whose online state changed since the last check (from memory): the
        updates to send now (the others wait in the coalescer)."""
        svc = self._state.bodycams
        out: list[Mark] = []
        if svc is None:
            return out
        wall = self._state.clock()
        for key, mark in list(self._last.items()):
            if mark.kind != "officer":
                continue
            cam = svc.cams.get(key[2:])
            online = cam is not None and cam.presence.online(wall)
            if online != mark.online:
                changed = replace(mark, online=online)
                self._last[key] = changed
                sent = self._marks.offer(changed, now)
                if sent is not None:
                    out.append(sent)
        return out

    def due(self, now: float) -> bytes:
        marks: list[Mark] = []
        if self._next_check is None:
            self._next_check = now + PRESENCE_CHECK_S
        if now >= self._next_check:
            self._next_check = now + PRESENCE_CHECK_S
            marks += self._presence(now)
        marks += self._marks.due(now)
        return b"".join(field_event(m) for m in marks)

    def wait_s(self, now: float) -> float | None:
        if self._next_check is None:
            self._next_check = now + PRESENCE_CHECK_S
        soon = self._marks.wait_s(now)
        until_check = max(0.0, self._next_check - now)
        return until_check if soon is None else min(soon, until_check)
