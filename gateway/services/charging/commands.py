"""Sending a command to a connected charger for a person: the one path behind
``POST /api/v1/chargers/{id}/commands/{command}`` and the web page's command buttons. Each
command that went out is written to the audit log (kind ``charger``, action ``command``):
who sent what, with which parameters, and what the charger answered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.ocpp.commands import COMMANDS, ChargerGone, CommandError, CommandTimeout
from gateway.directory.audit import Actor, record_audit
from gateway.services.charging.cluster_rules import answered, failed
from gateway.services.charging.fleet import ChargerFleet

# Commands whose parameters may carry a secret (a new password as a configuration value):
# the audit log names the command and its outcome, never these parameters.
SECRET_PARAMS = frozenset({"change_configuration", "set_variables"})


class Refused(Exception):
    """A command not sent or not answered: an HTTP ``status``, a ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Sent:
    charger_id: str
    command: str
    status: str
    payload: dict[str, Any]


def _audited_params(command: str, params: Mapping[str, Any]) -> Any:
    return "[not recorded]" if command in SECRET_PARAMS else dict(params)


async def send_command(
    rt: ChargerFleet,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime],
    actor: Actor,
    charger_id: str,
    command: str,
    params: Mapping[str, Any],
) -> Sent:
    """Send *command* to the charger and return its answer, or raise :class:`Refused`: no
    such charger or command (404), not connected (409), bad parameters (422, nothing sent),
    no answer in time (504), gone before answering (409). Audited once it went out."""
    if charger_id not in rt.chargers:
        raise Refused(404, "no_charger", f"no charger {charger_id[:64]!r}")
    if command not in COMMANDS:
        raise Refused(
            404, "no_command", f"no command {command[:64]!r}; commands: {', '.join(COMMANDS)}"
        )
    session = rt.live.get(charger_id)
    if session is not None:
        # The call runs in its own task: the caller waits for the answer, never the
        # charger's receive loop.
        try:
            result = await session.command(command, params, timeout=rt.config.command_timeout_s)
            done = answered(result)
        except (CommandError, CommandTimeout, ChargerGone) as exc:
            done = failed(exc)
    else:
        # Connected to another instance (PostgreSQL): that one runs it and answers.
        relay = rt.cluster.relay if rt.cluster is not None else None
        relayed = None if relay is None else await relay(charger_id, command, params, actor)
        if relayed is None:
            raise Refused(409, "not_connected", f"charger {charger_id!r} is not connected")
        done = relayed
    if done.kind == "bad_params":
        raise Refused(422, "bad_params", done.message)  # nothing was sent
    refused: Refused | None = None
    outcome = done.status
    if done.kind == "no_answer":
        outcome = "no_answer"
        refused = Refused(504, "no_answer", f"charger {charger_id!r} did not answer in time")
    elif done.kind == "gone":
        outcome = "not_connected"
        refused = Refused(
            409, "not_connected", f"charger {charger_id!r} disconnected before answering"
        )
    after = {"command": command, "params": _audited_params(command, params), "outcome": outcome}
    async with sessions.begin() as db:
        await record_audit(db, actor, "charger", charger_id, "command", None, after, clock())
    if refused is not None:
        raise refused
    return Sent(charger_id, command, done.status, done.payload)
