"""The request book for DJI services: what to send, which reply belongs to which request,
when to retry and when to give up. Pure: time comes in as ``now``, tids from a factory.

A command is a short plan of service calls on its dock's ``services`` topic (the speaker:
``speaker_play_volume_set`` and ``speaker_play_mode_set`` when the volume or loop setting
differs from what the dock last accepted, then ``speaker_tts_play_start``; return home: one
``return_home``). Every call of a command carries the command id as its **bid**; each send,
retries included, gets a **fresh tid**. A ``services_reply`` is matched on tid *and* bid:

- result 0 moves the plan on (or ends the command: ``output.status`` mapped, else OK);
  a non-zero result ends it FAILED with the dock's code;
- a reply to a request never made, or made by another gateway instance (every instance sees
  every reply, see ``link.py``), is ``reply_unknown``; one to a command already ended is
  ``reply_late`` (it timed out or was resolved elsewhere) or ``reply_duplicate`` (already
  answered): each counted and ignored, never applied twice.

Silence past ``reply_timeout_s`` sends the same call again with a new tid (the bid stays, so a
dock that did get the first one knows it is a repeat), at most ``retries`` times; then the
command ends TIMEOUT. ``resolve`` ends a command from outside (its outcome learned from a
progress event or another instance).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dronelink.dji.envelope import Envelope, encode
from dronelink.dji.events import status_of
from dronelink.dji.topics import TopicKind, topic
from dronelink.model import CommandKind, CommandOutcome, CommandStatus

__all__ = [
    "Finished",
    "Ignored",
    "Outgoing",
    "ServiceBook",
    "Step",
    "return_home_steps",
    "speaker_steps",
    "speaker_stop_steps",
    "tts_md5",
]


@dataclass(frozen=True, slots=True)
class Step:
    method: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A request to publish now."""

    command_id: str
    topic: str
    payload: bytes
    tid: str
    method: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    command_id: str
    outcome: CommandOutcome


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str  # reply_unknown | reply_late | reply_duplicate | reply_bid_mismatch


def tts_md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def speaker_steps(
    text: str,
    volume: int,
    loop: bool,
    psdk_index: int,
    known: tuple[int, int] | None = None,
) -> list[Step]:
    """The calls that make the loudspeaker say *text* at *volume* (0-100), once or in a
    loop; *known*: the (volume, play_mode) the dock last accepted, whose calls are skipped."""
    mode = 1 if loop else 0
    steps = []
    if known is None or known[0] != volume:
        steps.append(
            Step("speaker_play_volume_set", {"psdk_index": psdk_index, "play_volume": volume})
        )
    if known is None or known[1] != mode:
        steps.append(Step("speaker_play_mode_set", {"psdk_index": psdk_index, "play_mode": mode}))
    md5 = tts_md5(text)
    tts = {"name": f"citygate-{md5[:8]}", "text": text, "md5": md5}
    steps.append(Step("speaker_tts_play_start", {"psdk_index": psdk_index, "tts": tts}))
    return steps


def speaker_stop_steps(psdk_index: int) -> list[Step]:
    return [Step("speaker_play_stop", {"psdk_index": psdk_index})]


def return_home_steps() -> list[Step]:
    return [Step("return_home", {})]


@dataclass
class _Command:
    command_id: str
    kind: CommandKind
    dock_sn: str
    steps: list[Step]
    step: int = 0
    attempts: int = 0  # sends of the current step
    sends: int = 0  # sends in all
    tids: set[str] = field(default_factory=set)  # of the current step
    deadline: datetime | None = None


class ServiceBook:
    """Pending service commands by command id (= bid)."""

    def __init__(
        self,
        reply_timeout_s: float = 5.0,
        retries: int = 2,
        *,
        new_tid: Callable[[], str] = lambda: uuid.uuid4().hex,
        memory: int = 4096,
    ) -> None:
        if reply_timeout_s <= 0 or retries < 0:
            raise ValueError("reply_timeout_s must be > 0 and retries >= 0")
        self.timeout = timedelta(seconds=reply_timeout_s)
        self.retries = retries
        self._new_tid = new_tid
        self._memory = memory
        self._pending: dict[str, _Command] = {}
        self._by_tid: dict[str, str] = {}  # live tid -> command id
        self._ended: OrderedDict[str, tuple[str, str]] = OrderedDict()  # tid -> (bid, why)
        self.speaker_settings: dict[str, tuple[int, int]] = {}  # dock -> (volume, mode)

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self, command_id: str) -> bool:
        return command_id in self._pending

    def dock_of(self, command_id: str) -> str | None:
        c = self._pending.get(command_id)
        return c.dock_sn if c else None

    def next_deadline(self) -> datetime | None:
        deadlines = [c.deadline for c in self._pending.values() if c.deadline is not None]
        return min(deadlines, default=None)

    def start(
        self,
        command_id: str,
        kind: CommandKind,
        dock_sn: str,
        steps: Sequence[Step],
        now: datetime,
    ) -> Outgoing:
        """Open a command; its first request. ValueError if *command_id* is in flight."""
        if command_id in self._pending:
            raise ValueError(f"command {command_id} is already in flight")
        if not steps:
            raise ValueError("a command needs at least one step")
        cmd = _Command(command_id, kind, dock_sn, list(steps))
        self._pending[command_id] = cmd
        return self._send(cmd, now)

    def _send(self, cmd: _Command, now: datetime) -> Outgoing:
        step = cmd.steps[cmd.step]
        tid = self._new_tid()
        cmd.attempts += 1
        cmd.sends += 1
        cmd.tids.add(tid)
        self._by_tid[tid] = cmd.command_id
        cmd.deadline = now + self.timeout
        payload = encode(tid, cmd.command_id, int(now.timestamp() * 1000), step.method, step.data)
        return Outgoing(
            cmd.command_id,
            topic(TopicKind.SERVICES, cmd.dock_sn),
            payload,
            tid,
            step.method,
            cmd.attempts,
        )

    def _retire(self, cmd: _Command, why: str) -> None:
        for tid in cmd.tids:
            self._by_tid.pop(tid, None)
            self._ended[tid] = (cmd.command_id, why)
        cmd.tids = set()
        while len(self._ended) > self._memory:
            self._ended.popitem(last=False)

    def _finish(self, cmd: _Command, outcome: CommandOutcome, why: str) -> Finished:
        self._retire(cmd, why)
        del self._pending[cmd.command_id]
        return Finished(cmd.command_id, outcome)

    def on_reply(self, env: Envelope, now: datetime) -> Outgoing | Finished | Ignored:
        """Apply a ``services_reply``: the next request of the plan, the command's end, or
        why it was ignored."""
        cid = self._by_tid.get(env.tid)
        if cid is None:
            ended = self._ended.get(env.tid)
            if ended is None or ended[0] != env.bid:
                return Ignored("reply_unknown")
            return Ignored("reply_duplicate" if ended[1] == "answered" else "reply_late")
        if cid != env.bid:
            return Ignored("reply_bid_mismatch")
        cmd = self._pending[cid]
        result = env.data.get("result")
        code = result if isinstance(result, int) and not isinstance(result, bool) else None
        output = env.data.get("output")
        status = status_of(output.get("status")) if isinstance(output, dict) else None
        if code is None or code != 0:
            detail = f"{cmd.steps[cmd.step].method}: result {result!r}"
            failed = status if status in (CommandStatus.REJECTED,) else CommandStatus.FAILED
            return self._finish(
                cmd, CommandOutcome(failed, cmd.sends, code, detail[:200]), "answered"
            )
        step = cmd.steps[cmd.step]
        if step.method == "speaker_play_volume_set":
            _, mode = self.speaker_settings.get(cmd.dock_sn, (-1, -1))
            self.speaker_settings[cmd.dock_sn] = (int(step.data["play_volume"]), mode)
        elif step.method == "speaker_play_mode_set":
            vol, _ = self.speaker_settings.get(cmd.dock_sn, (-1, -1))
            self.speaker_settings[cmd.dock_sn] = (vol, int(step.data["play_mode"]))
        if cmd.step + 1 < len(cmd.steps):
            self._retire(cmd, "answered")
            cmd.step += 1
            cmd.attempts = 0
            return self._send(cmd, now)
        final = status if status is not None and status != CommandStatus.SENT else None
        outcome = CommandOutcome(final or CommandStatus.OK, cmd.sends, 0, step.method)
        return self._finish(cmd, outcome, "answered")

    def due(self, now: datetime) -> list[Outgoing | Finished]:
        """Retries and timeouts due at *now*."""
        out: list[Outgoing | Finished] = []
        for cmd in list(self._pending.values()):
            if cmd.deadline is None or now < cmd.deadline:
                continue
            if cmd.attempts <= self.retries:
                out.append(self._send(cmd, now))
            else:
                detail = f"{cmd.steps[cmd.step].method}: no reply after {cmd.attempts} tries"
                outcome = CommandOutcome(CommandStatus.TIMEOUT, cmd.sends, None, detail)
                out.append(self._finish(cmd, outcome, "timeout"))
        return out

    def resolve(self, command_id: str, outcome: CommandOutcome) -> Finished | None:
        """End *command_id* with *outcome* learned elsewhere (None: not pending here)."""
        cmd = self._pending.get(command_id)
        if cmd is None:
            return None
        return self._finish(cmd, outcome, "resolved")
