"""One lifecycle for every kind of device (issue 14): the states, the moves between them and
who may make each move. Pure: no I/O, no clock.

::

    provisioned ──checks pass──► commissioned ──first good message──► active ◄──► maintenance
         │                            │                                 │              │
         └────────────────────────────┴──────────── retired ◄───────────┴──────────────┘

- ``provisioned``: registered (id, credentials, binding), not yet proven. Its messages are
  accepted (the checks need them) but it is not in service yet.
- ``commissioned``: its commissioning checks passed (``citygate commission``). The first good
  message after that puts it in service.
- ``active``: in service.
- ``maintenance``: taken out of service by a technician; its messages are still accepted but
  it drives nothing (a sensor does not count for its berth, a drone raises no alerts, ...).
- ``retired``: gone for good; its messages are refused and counted. Final: a replacement is a
  new device (the place's history stays with the place).

Who moves: ``checks`` (the commissioning service, provisioned → commissioned), ``message``
(the first good message, commissioned → active) and ``operator`` (a technician's or admin's
command: commissioned → active, active ⇄ maintenance, commissioned → maintenance, any
non-retired → retired; and provisioned → commissioned only for a kind that has no
commissioning checks, a drone). A move to the state a device is already in is no move.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.directory.devices import Lifecycle

__all__ = [
    "CAUSES",
    "KINDS",
    "NO_CHECKS",
    "Cause",
    "LifeKind",
    "Move",
    "Refused",
    "allowed",
    "decide",
]

State = Lifecycle


class Cause(StrEnum):
    CHECKS = "checks"  # the commissioning checks passed
    MESSAGE = "message"  # a good message arrived
    OPERATOR = "operator"  # a technician's or admin's command


class LifeKind(StrEnum):
    SENSOR = "sensor"
    CAMERA = "camera"
    CHARGER = "charger"
    BODYCAM = "bodycam"
    DRONE = "drone"
    GATE = "gate"


KINDS: tuple[LifeKind, ...] = tuple(LifeKind)
CAUSES: tuple[Cause, ...] = tuple(Cause)
NO_CHECKS: frozenset[LifeKind] = frozenset({LifeKind.DRONE})  # no commissioning checks

P, C, A, M, R = (
    Lifecycle.PROVISIONED,
    Lifecycle.COMMISSIONED,
    Lifecycle.ACTIVE,
    Lifecycle.MAINTENANCE,
    Lifecycle.RETIRED,
)

# (from, to) -> the causes that may make the move (for every kind; see NO_CHECKS below).
_MOVES: dict[tuple[Lifecycle, Lifecycle], frozenset[Cause]] = {
    (P, C): frozenset({Cause.CHECKS}),
    (C, A): frozenset({Cause.MESSAGE, Cause.OPERATOR}),
    (C, M): frozenset({Cause.OPERATOR}),
    (A, M): frozenset({Cause.OPERATOR}),
    (M, A): frozenset({Cause.OPERATOR}),
    (P, R): frozenset({Cause.OPERATOR}),
    (C, R): frozenset({Cause.OPERATOR}),
    (A, R): frozenset({Cause.OPERATOR}),
    (M, R): frozenset({Cause.OPERATOR}),
}


def allowed(kind: LifeKind, old: Lifecycle, new: Lifecycle, cause: Cause) -> bool:
    """Whether *cause* may move a *kind* device from *old* to *new* (a real move)."""
    if (old, new, cause) == (P, C, Cause.OPERATOR):
        return kind in NO_CHECKS
    return cause in _MOVES.get((old, new), frozenset())


@dataclass(frozen=True, slots=True)
class Move:
    """A decided move; ``changed`` is False for a move to the state it is already in."""

    old: Lifecycle
    new: Lifecycle

    @property
    def changed(self) -> bool:
        return self.old is not self.new


class Refused(ValueError):
    """A move the lifecycle does not allow; the message says what to do instead."""

    def __init__(self, old: Lifecycle, new: Lifecycle, hint: str) -> None:
        super().__init__(f"cannot move from {old.value} to {new.value}: {hint}")
        self.old, self.new, self.hint = old, new, hint


def _hint(kind: LifeKind, device: str, old: Lifecycle, new: Lifecycle, cause: Cause) -> str:
    """What to do instead of a refused move."""
    if old is R:
        return (
            "retired is final; register a new device (or replace the old one) instead of "
            "bringing this one back"
        )
    if new is C:
        if old is P:  # the checks' move, asked for by an operator
            return f"run its commissioning checks (citygate commission {device}): passing moves it"
        return f"it is {old.value}: only a provisioned device is commissioned"
    if new is A:
        if old is P:
            how = (
                f"citygate devices lifecycle {device} commissioned: a {kind.value} has no checks"
                if kind in NO_CHECKS
                else f"citygate commission {device}"
            )
            return f"commission it first ({how}); its first good message after that makes it active"
        if cause is Cause.MESSAGE:
            return "only a commissioned device becomes active by a message"
    if new is M and old is P:
        return "it was never in service: commission it, or retire it"
    if new is P:
        return "a device never goes back to provisioned; retire it and register a new one"
    return "not a move of the device lifecycle"


def decide(kind: LifeKind, device: str, old: Lifecycle, new: Lifecycle, cause: Cause) -> Move:
    """The move of *device* (a *kind*) from *old* to *new* by *cause*, or ``Refused``."""
    if old is new:
        return Move(old, new)
    if allowed(kind, old, new, cause):
        return Move(old, new)
    raise Refused(old, new, _hint(kind, device, old, new, cause))
