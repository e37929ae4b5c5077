"""One lane in memory: its configuration, state, display and last decisions, and the pure
steps between a ``parking.lanes`` step and what the lane shows, answers and records."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from drivers.cameras import CameraRead
from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import LaneAnswer, LaneRead
from gateway.services.lanes.decisions import Decision
from parking.lanes import LaneState, Raise, Show, Step

__all__ = ["LaneRuntime", "UnknownLane", "answer", "decision_for", "laned", "take"]


@dataclass
class LaneRuntime:
    """One lane: its configuration, state, what its display shows and its last decisions."""

    config: LaneConfig
    recent: deque[Decision]
    state: LaneState = field(default_factory=LaneState)
    display: tuple[str, ...] = ()
    voice: str | None = None
    verdict: str = ""
    updated_at: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class UnknownLane(LookupError):
    pass


def take(rt: LaneRuntime, s: Step, now: datetime) -> Raise | None:
    """Make *s* the lane's state (what its display shows included); its raise, if any."""
    rt.state, rt.verdict, rt.updated_at = s.state, s.verdict, now
    raised: Raise | None = None
    for action in s.actions:
        if isinstance(action, Show):
            rt.display = action.lines[: rt.config.display_lines]
            rt.voice = action.voice if rt.config.voice else None
        else:
            raised = action
    return raised


def answer(rt: LaneRuntime, verdict: str, opened: bool) -> LaneAnswer:
    """What the camera is told of the lane now."""
    note = rt.state.note
    return LaneAnswer(
        opened,
        list(rt.display),
        rt.voice,
        f"{verdict}: {note}" if note else verdict,
        rt.config.display_model,
    )


def decision_for(rt: LaneRuntime, s: Step, operator: str | None, now: datetime) -> Decision | None:
    """The decision to record for *s*'s raise (None: it raises nothing)."""
    r = next((a for a in s.actions if isinstance(a, Raise)), None)
    if r is None:
        return None
    return Decision(
        r.decision_id, rt.config.id, r.plate, r.session_id, r.reason, s.verdict, "pending",
        "", operator, now,
    )  # fmt: skip


def laned(read: CameraRead) -> LaneRead:
    """The fields of a stored camera read the lane needs (its time filled by the store)."""
    assert read.ts is not None  # CameraReads.timed gives every stored read one
    return LaneRead(
        camera_id=read.camera_id,
        plate=read.plate,
        ts=read.ts,
        record_id=read.record_id,
        confidence=read.confidence,
        colour=read.colour,
        direction=read.direction,
        offline=read.offline,
    )
