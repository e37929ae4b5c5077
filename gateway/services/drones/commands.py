"""Commands to the drones, written through.

A command is recorded ``pending`` before the link is called, its outcome when final. While it
waits, its row is read every ``POLL_S``: when another instance recorded its outcome (the reply
or progress reached that instance), the command completes here with that outcome (``resolve``
is called on a link that has one, so it stops waiting too). The link call runs in a task of
its own, so an operator who hangs up does not cancel the command. A second command of the same
kind to a drone while one is open (here or, by its row, on another instance) is refused.
``Unsupported`` from a link is a ``rejected`` outcome with a clear detail; any other error of
the link a ``failed`` one.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from dronelink.model import (
    CommandKind,
    CommandOutcome,
    CommandStatus,
    DroneLink,
    Unsupported,
)
from gateway.config import DronesConfig
from gateway.metrics import FastCounter
from gateway.services.drones.live import DroneInfo
from gateway.services.drones.store import CommandRecord, DroneStore

__all__ = ["POLL_S", "CommandBusy", "CommandRunner", "NotRecorded", "speakable"]

log = logging.getLogger(__name__)
POLL_S = 0.5  # how often a waiting command reads its row (another instance may finish it)


def speakable(text: str) -> bool:
    """Text a loudspeaker can say: no control characters, no lone surrogates."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


class CommandBusy(Exception):
    """A command of this kind to this drone is still in flight (``command_id``)."""

    def __init__(self, drone_id: str, kind: str, command_id: str) -> None:
        super().__init__(f"a {kind} command to {drone_id} is still in flight ({command_id})")
        self.command_id = command_id


class NotRecorded(RuntimeError):
    """The command could not be recorded: it was not sent."""


class CommandRunner:
    def __init__(
        self,
        config: DronesConfig,
        store: DroneStore,
        clock: Callable[[], datetime],
        links: Mapping[str, DroneLink],
        registry: CollectorRegistry,
    ) -> None:
        self.config, self.store, self.clock, self.links = config, store, clock, links
        self.counts = FastCounter(
            "citygate_drone_commands", "Drone commands by kind and outcome", ["kind", "status"],
            registry,
        )  # fmt: skip
        self._inflight: dict[tuple[str, str], str] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the caller may be gone
            log.warning("drones: a command ended with %r", task.exception())

    def max_command_s(self) -> float:
        c = self.config
        return c.command_timeout_s * (c.command_retries + 1)

    async def command(
        self,
        info: DroneInfo,
        kind: CommandKind,
        args: Mapping[str, Any],
        requested_by: str,
    ) -> CommandRecord:
        """Record the command, send it, record and return its outcome (final, unless the
        database failed to keep it). Raises CommandBusy, NotRecorded, or ValueError for
        arguments the kind does not take."""
        drone_id = info.id
        clean = self._args(kind, args)
        slot = (drone_id, kind.value)
        busy = self._inflight.get(slot)
        if busy is not None:
            raise CommandBusy(drone_id, kind.value, busy)
        now = self.clock()
        since = now - timedelta(seconds=self.max_command_s())
        command_id = str(uuid.uuid4())
        self._inflight[slot] = command_id
        try:
            busy = await self.store.open_or_insert(command_id, drone_id, kind.value, clean,
                                                   requested_by, now, since)  # fmt: skip
        except Exception as exc:
            self._inflight.pop(slot, None)
            raise NotRecorded(f"the command could not be recorded: {exc}") from exc
        if busy is not None:  # open on another instance (by its row)
            self._inflight.pop(slot, None)
            raise CommandBusy(drone_id, kind.value, busy)
        task = asyncio.get_running_loop().create_task(self._execute(info, command_id, kind, clean))
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return await asyncio.shield(task)

    def _args(self, kind: CommandKind, args: Mapping[str, Any]) -> dict[str, Any]:
        if kind is not CommandKind.SPEAKER:
            if args:
                raise ValueError(f"{kind.value} takes no arguments")
            return {}
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("speaker needs a text")
        text = " ".join(text.split())
        if not speakable(text):
            raise ValueError("speaker text has control characters or lone surrogates")
        if len(text) > self.config.speaker_max_chars:
            raise ValueError(f"speaker text is longer than {self.config.speaker_max_chars}")
        volume = args.get("volume", self.config.default_volume)
        if type(volume) is not int or not 0 <= volume <= 100:
            raise ValueError("volume must be an integer 0..100")
        loop = args.get("loop", False)
        if type(loop) is not bool:
            raise ValueError("loop must be true or false")
        return {"text": text, "volume": volume, "loop": loop}

    async def _execute(
        self, info: DroneInfo, command_id: str, kind: CommandKind, args: dict[str, Any]
    ) -> CommandRecord:
        try:
            link = self.links.get(info.kind)
            if link is None:
                outcome = CommandOutcome(
                    CommandStatus.REJECTED, 0, None, f"no {info.kind} link runs on this gateway"
                )
            else:
                outcome = await self._send(link, info, command_id, kind, args)
        finally:
            self._inflight.pop((info.id, kind.value), None)
        self.counts.labels(kind.value, outcome.status.value).inc()
        if not outcome.status.final:  # a link must end final; anything else did not finish
            outcome = replace(outcome, status=CommandStatus.FAILED,
                              detail=outcome.detail or "the link ended it unfinished")  # fmt: skip
        for attempt in range(3):  # the outcome matters: a short retry on a database hiccup
            try:
                record = await self.store.finish_command(
                    command_id, outcome.status, self.clock(), attempts=outcome.attempts,
                    result_code=outcome.result_code, detail=outcome.detail,
                )  # fmt: skip
                break
            except Exception as exc:
                log.warning("drones: outcome of %s not recorded (%s)", command_id, exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            raise NotRecorded(f"command {command_id} ended {outcome.status} but was not recorded")
        assert record is not None
        if record.status in (CommandStatus.REJECTED, CommandStatus.FAILED, CommandStatus.TIMEOUT):
            log.warning("drone %s: %s %s: %s", info.id, kind.value, record.status, record.detail)
        return record

    async def _send(
        self,
        link: DroneLink,
        info: DroneInfo,
        command_id: str,
        kind: CommandKind,
        args: dict[str, Any],
    ) -> CommandOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_command_s()
        attempts = 0
        for round_ in range(self.config.command_retries + 1):
            call = loop.create_task(self._call(link, info, command_id, kind, args))
            outcome, elsewhere = await self._wait(link, command_id, call, deadline)
            attempts += outcome.attempts
            retry = outcome.status is CommandStatus.TIMEOUT and not elsewhere
            if not retry or round_ == self.config.command_retries or loop.time() >= deadline:
                return replace(outcome, attempts=max(attempts, outcome.attempts))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(
        self,
        link: DroneLink,
        info: DroneInfo,
        command_id: str,
        kind: CommandKind,
        args: dict[str, Any],
    ) -> CommandOutcome:
        try:
            if kind is CommandKind.SPEAKER:
                return await link.speaker(
                    info.key, args["text"], args["volume"], args["loop"], command_id=command_id
                )
            if kind is CommandKind.SPEAKER_STOP:
                return await link.speaker_stop(info.key, command_id=command_id)
            return await link.return_home(info.key, command_id=command_id)
        except Unsupported as exc:
            why = str(exc) or "not supported by this vehicle"
            return CommandOutcome(
                CommandStatus.REJECTED, 0, None,
                f"{info.id} ({info.kind}) cannot do {kind.value}: {why}",
            )  # fmt: skip
        except Exception as exc:
            log.warning("drone %s: %s: link error %s: %s", info.id, kind.value,
                        type(exc).__name__, exc)  # fmt: skip
            return CommandOutcome(
                CommandStatus.FAILED, 1, None, f"link error: {type(exc).__name__}: {exc}"
            )

    async def _wait(
        self,
        link: DroneLink,
        command_id: str,
        call: asyncio.Task[CommandOutcome],
        deadline: float,
    ) -> tuple[CommandOutcome, bool]:
        """The link's outcome, or the one another instance recorded first (then True)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    timeout = self.max_command_s()
                    return CommandOutcome(
                        CommandStatus.TIMEOUT, 1, None, f"no outcome within {timeout:.0f} s"
                    ), False
                done, _ = await asyncio.wait({call}, timeout=min(POLL_S, remaining))
                if done:
                    return call.result(), False
                try:
                    row = await self.store.command(command_id)
                except Exception as exc:  # the link may still answer; the row is read again
                    log.debug("drones: command %s not read back: %s", command_id, exc)
                    continue
                if row is None or not row.final:
                    continue
                outcome = CommandOutcome(
                    CommandStatus(row.status), max(row.attempts, 1), row.result_code, row.detail
                )
                resolve = getattr(link, "resolve", None)
                if callable(resolve):
                    resolve(command_id, outcome)
                    done, _ = await asyncio.wait({call}, timeout=POLL_S)
                return outcome, True
        finally:
            if not call.done():
                call.cancel()
