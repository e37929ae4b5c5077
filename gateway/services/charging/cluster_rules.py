"""The pure rules of chargers across several gateway instances: the advisory lock key of a
charger, the notices instances send each other (one NOTIFY channel, JSON payloads, validated
on the way in), and a command's outcome as it travels between the instance that runs it and
the one that was asked. No I/O, no clock (``gateway.services.charging.cluster`` does both)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.ocpp.commands import ChargerGone, CommandError, CommandResult, CommandTimeout

CHANNEL = "citygate_chargers"
MAX_PAYLOAD = 7900  # PostgreSQL's NOTIFY payload is under 8000 bytes
# One session-level advisory lock per instance, held while it is the leader: the instance
# that sweeps and reports the chargers no instance holds (outages after the grace).
LEADER_KEY = 0x6367_0002
TAKEOVER_S = 5.0  # how long a new connection waits for the old owner to let the charger go
RELAY_MARGIN_S = 2.0  # a relayed command's caller waits the command's timeout plus this

Op = Literal["release", "owner", "command", "done", "state"]
_OPS = frozenset({"release", "owner", "command", "done", "state"})
_MAX_ID = 64


def lock_key(charger_id: str) -> int:
    """The charger's advisory lock key: a signed 64-bit hash of its id (its own namespace:
    the change feed's and the leader's keys are small numbers, a hash is one in 2^48)."""
    digest = hashlib.blake2b(f"charger:{charger_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def instance_key(instance_id: str) -> int:
    """The advisory lock an instance holds while it lives (another namespace of the hash)."""
    digest = hashlib.blake2b(f"instance:{instance_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class Notice:
    """One message between instances: ``to`` an instance id (or ``""``: everybody)."""

    op: Op
    sender: str
    to: str = ""
    charger: str = ""  # release, owner
    owner: str = ""  # owner: the instance that now holds the charger ("" = nobody)
    id: str = ""  # command, done: the command row
    ids: tuple[str, ...] = field(default=())  # state: chargers whose rows changed
    history: bool = False  # state: their history (a status, an outage) changed too


def encode(notice: Notice) -> str:
    body: dict[str, Any] = {"op": notice.op, "from": notice.sender}
    for name in ("to", "charger", "owner", "id"):
        value = getattr(notice, name)
        if value:
            body[name] = value
    if notice.ids:
        body["ids"] = list(notice.ids)
    if notice.history:
        body["history"] = True
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def state_notices(
    sender: str, ids: set[str] | frozenset[str], history: bool = False
) -> list[Notice]:
    """``state`` notices naming *ids*, each small enough for one NOTIFY."""
    out: list[Notice] = []
    chunk: list[str] = []
    size = 0
    for charger_id in sorted(ids):
        cost = len(charger_id.encode()) * 6 + 3  # worst case of JSON escaping
        if chunk and size + cost > MAX_PAYLOAD - 200:
            out.append(Notice("state", sender, ids=tuple(chunk), history=history))
            chunk, size = [], 0
        chunk.append(charger_id)
        size += cost
    if chunk:
        out.append(Notice("state", sender, ids=tuple(chunk), history=history))
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_ID:
        raise ValueError("bad field")
    return value


def decode(payload: str) -> Notice | None:
    """A notice from a NOTIFY payload, or ``None`` for anything that is not one of ours."""
    if len(payload) > 8000:
        return None
    try:
        body = json.loads(payload)
        if not isinstance(body, dict) or body.get("op") not in _OPS:
            return None
        ids = body.get("ids", [])
        if not isinstance(ids, list):
            return None
        return Notice(
            op=body["op"],
            sender=_text(body.get("from")),
            to=_text(body.get("to")),
            charger=_text(body.get("charger")),
            owner=_text(body.get("owner")),
            id=_text(body.get("id")),
            ids=tuple(_text(i) for i in ids),
            history=body.get("history") is True,
        )
    except (ValueError, TypeError):
        return None


def for_me(notice: Notice, me: str) -> bool:
    """Whether *me* acts on *notice*: addressed to it (or to all) and not its own."""
    return notice.sender != me and notice.to in ("", me)


OutcomeKind = Literal["answered", "bad_params", "no_answer", "gone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a command ended, wherever it ran: the charger's answer, or why there is none."""

    kind: OutcomeKind
    status: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "payload": self.payload,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, body: Any) -> Outcome:
        """An outcome written by another instance; one that cannot be read is ``gone``."""
        if not isinstance(body, dict) or body.get("kind") not in (
            "answered",
            "bad_params",
            "no_answer",
            "gone",
        ):
            return cls("gone", message="unreadable answer")
        payload = body.get("payload")
        return cls(
            body["kind"],
            str(body.get("status") or ""),
            payload if isinstance(payload, dict) else {},
            str(body.get("message") or "")[:500],
        )


def answered(result: CommandResult) -> Outcome:
    return Outcome("answered", result.status, dict(result.payload))


def failed(exc: Exception) -> Outcome:
    """The outcome of a command that raised *exc* (the session's own exceptions)."""
    if isinstance(exc, CommandError):
        return Outcome("bad_params", message=str(exc)[:500])
    if isinstance(exc, CommandTimeout):
        return Outcome("no_answer")
    if isinstance(exc, ChargerGone):
        return Outcome("gone")
    raise exc
