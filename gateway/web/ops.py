"""What the lanes and field pages decide without I/O: an operator's reason and a loudspeaker
text checked as the API checks them, which camera read (and which of its pictures) goes with a
lane decision, a camera's and a battery's wording, and local times. Pure: times are passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from gateway.services.drones.commands import speakable

REASON_MIN, REASON_MAX = 3, 200  # as POST /api/v1/lanes/{id}/open (OpenRequest)
READ_NEAR = timedelta(seconds=5)  # a push's read and its decision share a commit: far closer
CAMERA_QUIET = timedelta(minutes=10)  # heard within this: the page calls a lane camera online
PLATE_PICTURES = ("fragment", "cutout", "plate")  # names of a camera's plate crop (vendors')

LANE_KINDS = {"entry": "入口 · entry", "exit": "出口 · exit"}
PHASES = {
    "idle": "空闲 · idle",
    "raising": "抬杆中 · raising",
    "waiting_payment": "待缴费 · waiting for payment",
    "waiting_operator": "待人工处理 · waiting for an operator",
    "fault": "故障 · fault",
}
OUTCOMES = {
    "pending": "已记录 · recorded",
    "sent": "已发送 · sent",
    "confirmed": "已确认 · confirmed",
    "unconfirmed": "未确认 · unconfirmed",
    "failed": "失败 · failed",
    "interrupted": "中断 · interrupted",
}


class Refused(ValueError):
    """A form field the API would refuse (a 422 with this message)."""


def clean_reason(text: str) -> str:
    """An operator's reason as the API stores it (whitespace folded), or Refused."""
    too_long = f"原因最多 {REASON_MAX} 个字符。 · The reason is at most {REASON_MAX} characters."
    if len(text) > REASON_MAX * 4:
        raise Refused(too_long)
    reason = " ".join(text.split())
    if len(reason) < REASON_MIN:
        raise Refused("请说明开闸原因（至少 3 个字符）。 · Say why you open (3 characters or more)")
    if len(reason) > REASON_MAX:
        raise Refused(too_long)
    if not speakable(reason):
        raise Refused("原因含有控制字符。 · The reason has control characters.")
    return reason


@dataclass(frozen=True, slots=True)
class SpeakerArgs:
    text: str
    volume: int
    loop: bool

    def as_args(self) -> dict[str, object]:
        return {"text": self.text, "volume": self.volume, "loop": self.loop}


def speaker_args(form: dict[str, str], limit: int, default_volume: int) -> SpeakerArgs:
    """The loudspeaker form as ``POST /api/v1/drones/{id}/speaker`` takes it (text folded,
    1..*limit* characters, no control characters; volume 0..100; loop a checkbox), or Refused."""
    raw = form.get("text", "")
    if len(raw) > limit * 4:
        raise Refused(f"喊话内容最多 {limit} 个字符。 · The text is at most {limit} characters.")
    text = " ".join(raw.split())
    if not text:
        raise Refused("请填写喊话内容。 · Say something.")
    if not speakable(text):
        raise Refused("喊话内容含有控制字符。 · The text has control characters.")
    if len(text) > limit:
        raise Refused(f"喊话内容最多 {limit} 个字符。 · The text is at most {limit} characters.")
    vol = form.get("volume", "").strip()
    if not vol:
        volume = default_volume
    elif len(vol) <= 3 and vol.isascii() and vol.isdigit() and 0 <= int(vol) <= 100:
        volume = int(vol)
    else:
        raise Refused("音量为 0–100。 · The volume is 0 to 100.")
    loop = form.get("loop", "")
    if loop not in ("", "on", "1"):
        raise Refused("循环播放为复选框。 · Loop is a checkbox.")
    return SpeakerArgs(text, volume, loop in ("on", "1"))


@dataclass(frozen=True, slots=True)
class ReadRef:
    """A stored camera read, as far as matching it to a decision goes."""

    id: int
    camera_id: str
    plate: str | None
    received_at: datetime
    images: tuple[str, ...]


def read_for(
    camera_id: str, plate: str | None, at: datetime, reads: Sequence[ReadRef]
) -> ReadRef | None:
    """The camera's read that made a decision at *at*: a push's read and its decision are one
    commit, so the read of the same plate received closest to it (within READ_NEAR)."""
    best: tuple[float, ReadRef] | None = None
    for r in reads:
        if r.camera_id != camera_id or r.plate != plate:
            continue
        gap = abs((r.received_at - at).total_seconds())
        if gap <= READ_NEAR.total_seconds() and (best is None or gap < best[0]):
            best = (gap, r)
    return None if best is None else best[1]


def thumbnail_index(images: Sequence[str]) -> int | None:
    """Which picture of a read to show small: the plate crop if the camera sent one (by its
    part's name), else the first; None without pictures."""
    if not images:
        return None
    for i, rel in enumerate(images):
        name = rel.rsplit("/", 1)[-1].lower()
        if any(word in name for word in PLATE_PICTURES):
            return i
    return 0


def camera_state(
    registered: bool, lifecycle: str | None, last_seen: datetime | None, now: datetime
) -> str:
    """``unregistered``, ``retired``, ``never_seen``, ``online`` (heard within CAMERA_QUIET)
    or ``quiet``."""
    if not registered:
        return "unregistered"
    if lifecycle == "retired":
        return "retired"
    if last_seen is None:
        return "never_seen"
    return "online" if now - last_seen <= CAMERA_QUIET else "quiet"


CAMERA_STATES = {
    "unregistered": "未登记 · not registered",
    "retired": "已退役 · retired",
    "never_seen": "未上线 · never heard",
    "online": "在线 · online",
    "quiet": "静默 · quiet",
}


def local(at: datetime | str | None, zone: tzinfo, fmt: str = "%m-%d %H:%M:%S") -> str:
    """An instant (or ISO text) in the town's zone; ``—`` for none or unreadable text."""
    if at is None:
        return "—"
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return "—"
    if at.tzinfo is None:
        return "—"
    return at.astimezone(zone).strftime(fmt)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{round(value)}%"


def storage(free_mb: float | None, total_mb: float | None) -> str:
    if free_mb is None:
        return "—"
    free = f"{free_mb / 1024:.1f}" if free_mb >= 1024 else f"{round(free_mb)}"
    unit = "GB" if free_mb >= 1024 else "MB"
    if total_mb:
        return f"{free} {unit} / {total_mb / 1024:.1f} GB"
    return f"{free} {unit}"
