"""What a device replacement may do, decided without the database: the request, the kinds,
and the refusals (each naming what to do instead).

A replacement retires the failed device and moves its place to the new one in one
transaction (``gateway.directory.replace`` does the I/O). The place is what the town's history
is keyed by, so that history carries on with the new device: a berth (berth sensors), a lane
(its plate camera, or its gate controller: the lane's bus, unit and register map), a charger
bay (site, place and position of a charger) or an officer (body cams).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["sensor", "camera", "gate", "charger", "bodycam"]
KINDS: tuple[Kind, ...] = ("sensor", "camera", "gate", "charger", "bodycam")
PLACE_OF: dict[str, str] = {
    "sensor": "berth",
    "camera": "lane",
    "gate": "lane",
    "charger": "charger bay",
    "bodycam": "officer",
}
RETIRED = "retired"
COMMISSIONED = "commissioned"  # kept by a new device that has passed its checks already
PROVISIONED = "provisioned"


class ReplaceRequest(BaseModel):
    """What replaces the device: an id the registry knows (provisioned, e.g. by a bulk
    import), or a new one given inline with the few fields its kind needs (the rest is taken
    from the device it replaces)."""

    model_config = ConfigDict(extra="forbid")
    new: str = Field(
        min_length=1,
        max_length=200,
        description="the new device's id (a sensor's DevEUI, a camera's, charger's or body "
        "cam's id); for a gate controller: its bus URL (tcp://host:port or serial:///dev/...)",
    )
    kind: Kind | None = Field(None, description="refuse unless the old device is of this kind")
    model: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="new sensor: its codec (needed when it is not provisioned); gate: its "
        "register map (default: the old one's); new charger: its model (default: the old's)",
    )
    vendor: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="new camera: its push format (hikvision, vzenith, dahua; needed when it "
        "is not provisioned); new charger: its vendor (default: the old one's)",
    )
    heartbeat_s: int | None = Field(None, gt=0, le=7 * 86400, description="new sensor")
    unit: int | None = Field(
        None, ge=1, le=247, description="gate: the new controller's Modbus unit (default: the old)"
    )
    password: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        description="new body cam: its digest password (generated and shown once if absent)",
    )


class Refused(Exception):
    """A replacement that is not done (nothing changed); ``status`` is the HTTP status that
    fits, ``code`` the problem's code, the message says what to do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Side:
    """One device of a replacement as the rules see it: its place is None when unbound."""

    id: str
    kind: str  # a Kind, or another kind's name (refused: kinds differ)
    lifecycle: str
    place: str | None


def check_kind(asked: Kind | None, found: Kind, device_id: str) -> None:
    if asked is not None and asked != found:
        raise Refused(
            422, "kinds_differ", f"{device_id} is a {found}, not a {asked}: drop --kind or fix it"
        )


def check_old(old: Side) -> None:
    """The failed device: not retired already, and bound to a place to hand over."""
    if old.lifecycle == RETIRED:
        raise Refused(
            409,
            "old_retired",
            f"{old.kind} {old.id} is retired already (replaced before?): replace the device "
            f"that now serves its {PLACE_OF.get(old.kind, 'place')} instead",
        )
    if old.place is None:
        raise Refused(
            409,
            "old_unbound",
            f"{old.kind} {old.id} serves no {PLACE_OF.get(old.kind, 'place')}: there is "
            "nothing to move; bind the new device directly",
        )


def check_new(old: Side, new: Side) -> None:
    """The replacement: the same kind, not the old device, not retired, not serving another
    place (it may already be at the old one's: a re-run after a partial field job)."""
    if new.kind != old.kind:
        raise Refused(
            422,
            "kinds_differ",
            f"{new.id} is a {new.kind} and {old.id} a {old.kind}: a device is replaced by one "
            "of its own kind",
        )
    if new.id == old.id:
        raise Refused(422, "same_device", f"{old.id} cannot replace itself: name the new device")
    if new.lifecycle == RETIRED:
        raise Refused(
            409,
            "new_retired",
            f"{new.kind} {new.id} is retired: a retired device is not put back by a "
            "replacement (retired is final); take another one",
        )
    if new.place is not None and new.place != old.place:
        raise Refused(
            409,
            "new_bound",
            f"{new.kind} {new.id} already serves {PLACE_OF.get(new.kind, 'place')} "
            f"{new.place}: free it there first (or replace it there), then try again",
        )


def next_lifecycle(current: str) -> str:
    """The new device's state once bound: provisioned (its first good message at the place
    will make it active), unless it passed its commissioning checks already."""
    return COMMISSIONED if current == COMMISSIONED else PROVISIONED


def raced(kind: Kind, device_id: str) -> Refused:
    """The old device changed between reading and claiming it: another replacement (or
    another change) won."""
    return Refused(
        409,
        "changed_meanwhile",
        f"{kind} {device_id} changed while it was being replaced (another replacement won?): "
        "look at it again and retry if it still needs replacing",
    )
