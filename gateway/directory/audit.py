"""The audit log: who changed which device, binding, password, token or town object, when,
and what it was before and after.

Every writer that records a change in the change feed (``gateway.infra.changes``) records an
audit entry in the same transaction, so a change is never half-recorded: both commit or
neither does. *Who* is an ``Actor``: the API token's label and id (``source`` api), or
``cli:<os user>`` from the CLI (``source`` cli, or import for file imports), or the gateway
itself (``system``, e.g. the town file imported at start).

Before and after are the object's public fields as plain JSON (never ORM objects), passed
through ``redact``: anything named like a secret (password, hash, HA1, secret, token, key
material ...), at any depth, is replaced by ``"[redacted]"`` (or stays null when unset), and
any string that looks like an API token is replaced too. ``redact`` is pure.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, cast

import orjson
from sqlalchemy import Table, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.infra.gcpause import gc_paused
from gateway.infra.storage.plain import insert_plain
from gateway.infra.storage.schema import AuditRow

__all__ = [
    "REDACTED",
    "STARTUP",
    "SYSTEM",
    "Actor",
    "Edit",
    "is_secret_name",
    "record_audit",
    "record_audits",
    "redact",
    "snapshot",
]

REDACTED = "[redacted]"
AUDIT = cast(Table, AuditRow.__table__)  # Core executemany: no ORM work per row
SOURCES = ("api", "web", "cli", "import", "startup", "ocpp", "system")

# Substrings that make a field a secret wherever they appear in its name ...
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "ha1",
    "hash",
    "digest",
    "credential",
    "private",
    "apikey",
    "api_key",
    "authorization",
    "signature",
    "salt",
    "cookie",
    "session_key",
)
# ... and words that do when they are the name or one of its ``_``/``-`` separated parts
# (``token``, ``auth_token``, ``key``, ``ssh_key`` are secrets; ``token_id``, ``keyboard`` and
# ``monkey`` are not, nor is ``key_id``: an id names a secret without being one).
_SECRET_WORDS = frozenset({"token", "key", "pin", "pwd", "psk", "otp", "bearer", "jwt"})
_NOT_SECRET_SUFFIXES = ("_id", "_ids", "_at", "_set", "_label", "_count")
_AS_IS = (bool, int, float)  # exactly these types: a subclass (an IntEnum) goes by value
_TOKEN_TEXT = re.compile(r"cg_[0-9a-f]+_[A-Za-z0-9_\-]+")  # a clear API token in free text


def _normal(name: str) -> str:
    """camelCase and kebab-case as snake_case, lower-case (``basicAuthPassword``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return spaced.replace("-", "_").replace(" ", "_").lower()


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a field called *name* holds a secret (or material derived from one). Cached:
    the same few dozen field names come back for every row of a bulk import."""
    n = _normal(name)
    if n.endswith(_NOT_SECRET_SUFFIXES):
        return False
    if any(part in n for part in _SECRET_PARTS):
        return True
    return any(word in _SECRET_WORDS for word in n.split("_"))


def _plain(value: Any) -> Any:
    """*value* as JSON (datetimes as ISO text, enums by value, the rest as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    return str(value)


def _as_is(v: Any) -> bool:
    """A value that stays as it is: None, a bool or number (exactly: an IntEnum goes by
    value), a string with no clear token in it (``_TOKEN_TEXT`` starts with ``cg_``)."""
    t = type(v)
    return v is None or t in _AS_IS or (t is str and "cg_" not in v)


def redact(value: Any) -> Any:
    """A JSON copy of *value* with every secret replaced (pure; see the module docstring).

    Mappings are walked key by key (a key named like a secret hides its whole value, however
    deep), sequences item by item; a string that looks like a clear API token is hidden
    wherever it is. Non-JSON scalars become text, keys become text."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = k if type(k) is str else str(_plain(k))
            if is_secret_name(name):
                out[name] = None if v is None else REDACTED
            elif _as_is(v):  # most fields: no walk, nothing to hide
                out[name] = v
            else:
                out[name] = redact(v)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [redact(v) for v in items]
    plain = _plain(value)
    if isinstance(plain, str) and _TOKEN_TEXT.search(plain):
        return _TOKEN_TEXT.sub(REDACTED, plain)
    return plain


def snapshot(row: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The columns of ORM *row* as a plain dict (secrets are redacted when stored)."""
    skip = set(exclude)
    return {
        a.key: getattr(row, a.key) for a in inspect(row).mapper.column_attrs if a.key not in skip
    }


def _request_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a token's label and id (API), ``cli:<user>`` (CLI), ``system``.
    ``request_id`` ties together the entries one request, command or import made."""

    label: str
    token_id: str | None = None
    role: str = "system"
    source: str = "system"
    request_id: str = field(default_factory=_request_id)

    @classmethod
    def of_token(cls, token_id: str, role: str, label: str) -> Actor:
        """An API caller: its token's label (or ``token:<id>`` for an unlabelled token)."""
        return cls(label or f"token:{token_id}", token_id, role, "api")

    @classmethod
    def cli(cls, user: str, as_label: str | None = None, source: str = "cli") -> Actor:
        """A CLI user: ``cli:<user>``, or ``LABEL (cli:<user>)`` with ``--as LABEL``."""
        who = f"cli:{user}"
        return cls(f"{as_label} ({who})" if as_label else who, None, "cli", source)

    def via(self, source: str) -> Actor:
        """The same actor through another source (a CLI command importing a file)."""
        return Actor(self.label, self.token_id, self.role, source, self.request_id)


SYSTEM = Actor("system", None, "system", "system", "")
STARTUP = Actor("system", None, "system", "startup", "")  # what a gateway imports at start


@dataclass(frozen=True, slots=True)
class Edit:
    """One audited change: an object of *kind* and *key*, what *action* did to it, and its
    public fields before (None: it did not exist) and after (None: it is gone)."""

    kind: str
    key: str
    action: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


_EDIT = ("kind", "key", "action", "before", "after")
_FLAT = frozenset({str, int, bool, type(None)})  # exact types: JSON as they are (no NaN)


@functools.lru_cache(maxsize=256)
def _secret_keys(keys: tuple[Any, ...]) -> tuple[str, ...] | None:
    """Which of a flat mapping's *keys* are secret names; None when a key is not text (the
    slow path then). Cached: a bulk import's edits all have the same few key sets."""
    if any(type(k) is not str for k in keys):
        return None
    return tuple(k for k in keys if is_secret_name(k))


def _json(value: Mapping[str, Any] | None, dump: Callable[[Any], Any]) -> Any:
    """``dump(redact(value))`` (*dump*: the column's own JSON serialiser), with a fast path for
    the flat mappings nearly every edit is: secret keys replaced by name (nothing to replace
    when they are unset), serialised by orjson, and only text with ``cg_`` in it (a token,
    perhaps) walked by ``redact``. The same JSON value either way, spelled more tightly."""
    if value is None:
        return dump(None)  # JSON null, as SQLAlchemy's JSON stores None
    secret = _secret_keys(tuple(value))
    if secret is not None and _FLAT.issuperset(map(type, value.values())):
        flat = value
        if any(value[k] is not None for k in secret):
            flat = {k: REDACTED if k in secret and v is not None else v
                    for k, v in value.items()}  # fmt: skip
        try:
            out = orjson.dumps(flat).decode()
        except orjson.JSONEncodeError:  # an integer beyond 64 bits
            return dump(redact(value))
        if "cg_" not in out:  # ASCII stays as it is in JSON: no "cg_" here, none in a value
            return out
    return dump(redact(value))


async def record_audits(
    session: AsyncSession, actor: Actor, edits: Sequence[Edit], now: datetime
) -> int:
    """Write audit entries for *edits* in *session*'s transaction; returns how many. One
    bulk insert (a town import writes thousands): committed with the change, or never."""
    if not edits:
        return len(edits)
    dialect = session.get_bind().dialect
    dump = AUDIT.c.before.type.dialect_impl(dialect).bind_processor(dialect)
    assert dump is not None  # JSON's: the serialiser
    who = {
        "actor": actor.label[:200],
        "actor_token_id": actor.token_id,
        "role": actor.role[:16],
        "source": actor.source[:16],
        "request_id": actor.request_id[:64] or None,
    }
    null = dump(None)
    with gc_paused():  # a town import's thousands of rows
        rows = [
            (e.kind[:16], e.key[:200], e.action[:16],
             null if e.before is None else _json(e.before, dump),
             null if e.after is None else _json(e.after, dump))
            for e in edits
        ]  # fmt: skip
    # plain rows: JSON serialised here, the actor and the time bound once for all of them
    await insert_plain(session, AUDIT, _EDIT, rows, {"at": now, **who})
    return len(edits)


async def record_audit(
    session: AsyncSession,
    actor: Actor,
    kind: str,
    key: str,
    action: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Write one audit entry in *session*'s transaction (kept if it commits, else not)."""
    await record_audits(session, actor, [Edit(kind, key, action, before, after)], now)
