"""Commands through any instance: the one asked writes the command in ``charger_commands``
and NOTIFYs the instance that holds the charger's connection, which runs it and writes the
outcome back (NOTIFY ``done``); both also poll, so a lost notification costs a second. The
answer and the audit entry are the caller's, as for a local command (``commands.send_command``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from drivers.aio import wait_for
from drivers.ocpp.commands import ChargerGone, CommandError, CommandTimeout
from gateway.directory.audit import Actor
from gateway.infra.storage.schema import ChargerCommandRow, ChargerConnectionRow
from gateway.services.charging.cluster_link import POLL_S, ClusterLink
from gateway.services.charging.cluster_rules import (
    RELAY_MARGIN_S,
    Notice,
    Outcome,
    answered,
    failed,
)

log = logging.getLogger(__name__)


class CommandRelay(ClusterLink):
    """Relays commands to the holder, and runs the ones relayed to this instance."""

    async def relay(
        self, charger_id: str, command: str, params: Mapping[str, Any], actor: Actor
    ) -> Outcome | None:
        """Have the instance that holds *charger_id* run *command*; ``None`` when no live
        instance holds it (not connected). Waits the command's timeout plus a margin."""
        async with self._sessions() as db:
            row = await db.get(ChargerConnectionRow, charger_id)
        if row is None or row.instance_id == self.instance:
            return None  # nobody, or us between two connections
        if await self._stale(charger_id, row.instance_id):
            return None
        command_id = str(uuid.uuid4())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers[command_id] = waiter
        try:
            async with self._sessions.begin() as db:
                db.add(
                    ChargerCommandRow(
                        id=command_id, charger_id=charger_id, instance_id=row.instance_id,
                        origin=self.instance, action=command, params=dict(params),
                        requested_by=actor.label[:200], status="pending",
                        created_at=self._clock(),
                    )
                )  # fmt: skip
                await db.flush()
                await self._notify(db, Notice("command", self.instance, to=row.instance_id,
                                              id=command_id))  # fmt: skip
            log.info("%s: %s relayed to %s (%s)", charger_id, command, row.instance_id, command_id)
            return await self._answer(command_id, waiter)
        finally:
            self._answers.pop(command_id, None)
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as db:
                    await db.execute(
                        delete(ChargerCommandRow).where(ChargerCommandRow.id == command_id)
                    )

    async def _answer(self, command_id: str, waiter: asyncio.Future[None]) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._fleet.config.command_timeout_s + RELAY_MARGIN_S
        while True:
            left = deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                await wait_for(asyncio.shield(waiter), max(0.0, min(POLL_S, left)))
            async with self._sessions.begin() as db:
                row = await db.get(ChargerCommandRow, command_id, with_for_update=True)
                if row is None:
                    return Outcome("gone", message="command lost")
                if row.status == "done":
                    return Outcome.from_json(row.result)
                if left <= 0:
                    # Not answered in time; one not even taken is never run late.
                    row.status = "expired"
                    row.params = None
                    return Outcome("no_answer")

    async def _take_pending(self) -> None:
        """Commands addressed to us whose notice was lost."""
        async with self._sessions() as db:
            ids = (
                await db.execute(
                    select(ChargerCommandRow.id).where(
                        ChargerCommandRow.instance_id == self.instance,
                        ChargerCommandRow.status == "pending",
                    )
                )
            ).scalars()
            for command_id in list(ids):
                self._spawn(self._serve(command_id))

    async def _serve(self, command_id: str) -> None:
        """Run a command another instance relayed to us and write its outcome back."""
        async with self._sessions.begin() as db:
            row = await db.get(ChargerCommandRow, command_id, with_for_update=True)
            if row is None or row.status != "pending" or row.instance_id != self.instance:
                return  # taken already, expired, or not ours
            charger_id, action, origin = row.charger_id, row.action, row.origin
            params = dict(row.params or {})
            row.status = "running"
            row.params = None  # may carry a password: not kept longer than needed
        session = self._fleet.live.get(charger_id)
        if session is None:
            outcome = Outcome("gone")
        else:
            try:
                result = await session.command(
                    action, params, timeout=self._fleet.config.command_timeout_s
                )
                outcome = answered(result)
            except (CommandError, CommandTimeout, ChargerGone) as exc:
                outcome = failed(exc)
        async with self._sessions.begin() as db:
            row = await db.get(ChargerCommandRow, command_id, with_for_update=True)
            if row is None:
                return  # the caller gave up and deleted it
            row.status = "done"
            row.result = outcome.to_json()
            await self._notify(db, Notice("done", self.instance, to=origin, id=command_id))
        log.info("%s: relayed %s from %s: %s", charger_id, action, origin, outcome.kind)
