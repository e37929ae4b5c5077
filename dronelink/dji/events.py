"""Dock events: the ``events_reply`` owed when ``need_reply`` is 1, and the progress events
that move a command on (``speaker_tts_play_start_progress`` and the other speaker steps,
``return_home_info``), as ``CommandProgress`` keyed by the event's bid (= the command id).

A dock re-sends an event it got no reply for; the reply carries the same tid and bid and
``data: {result: 0}``. Progress arrives on ``events``, which gateway instances share, so
the instance that sees it is often not the one whose caller waits: it is handed on anyway
(the gateway records it by command id), see ``link.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dronelink.dji.envelope import Envelope, reply
from dronelink.model import CommandProgress, CommandStatus

__all__ = ["PROGRESS_METHODS", "STATUS", "events_reply", "progress_of", "status_of"]

STATUS: dict[str, CommandStatus] = {
    "sent": CommandStatus.SENT,
    "in_progress": CommandStatus.IN_PROGRESS,
    "paused": CommandStatus.IN_PROGRESS,
    "ok": CommandStatus.OK,
    "success": CommandStatus.OK,
    "failed": CommandStatus.FAILED,
    "canceled": CommandStatus.CANCELED,
    "cancelled": CommandStatus.CANCELED,
    "rejected": CommandStatus.REJECTED,
    "timeout": CommandStatus.TIMEOUT,
}
PROGRESS_METHODS = frozenset(
    {
        "speaker_tts_play_start_progress",
        "speaker_audio_play_start_progress",
        "return_home_info",
    }
)


def status_of(value: Any) -> CommandStatus | None:
    """A DJI status word as a CommandStatus (None: not a word we know)."""
    return STATUS.get(value.lower()) if isinstance(value, str) else None


def events_reply(env: Envelope, timestamp_ms: int) -> bytes:
    """The ``events_reply`` payload for *env* (same tid, bid, method)."""
    return reply(env, timestamp_ms, {"result": 0})


def progress_of(env: Envelope, at: datetime) -> CommandProgress | None:
    """The progress an event reports, or None if it is not a progress event (or has no bid
    to tie it to a command)."""
    if env.method not in PROGRESS_METHODS or not env.bid:
        return None
    data = env.data
    if env.method == "return_home_info":
        # The return path the aircraft planned: the command is under way.
        return CommandProgress(
            env.bid, CommandStatus.IN_PROGRESS, at, detail="return_home_info: path planned"
        )
    output = data.get("output")
    output = output if isinstance(output, dict) else {}
    raw = output.get("status")
    status = status_of(raw) or CommandStatus.IN_PROGRESS
    result = data.get("result")
    code = result if isinstance(result, int) and not isinstance(result, bool) else None
    if code and status not in (CommandStatus.FAILED, CommandStatus.REJECTED):
        status = CommandStatus.FAILED
    percent: int | None = None
    step = ""
    prog = output.get("progress")
    if isinstance(prog, dict):
        p = prog.get("percent")
        if isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p <= 100:
            percent = int(p)
        if isinstance(prog.get("step_key"), str):
            step = prog["step_key"][:64]
    detail = f"{env.method}: {raw if isinstance(raw, str) else '?'}"
    if step:
        detail += f" ({step})"
    return CommandProgress(env.bid, status, at, percent, detail[:200], code)
