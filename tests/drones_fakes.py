"""An explicit test double of ``dronelink.model.DroneLink`` for the drone service's own logic
(the real DJI and MAVLink links get their end-to-end tests with their simulators).

Every call is recorded with the command's row as it stood when the link was called (to prove
it was recorded ``pending`` first). A call answers at once with ``outcome`` unless ``hold``:
then it waits until ``release`` or ``resolve`` (the DJI link's completion from another
instance) gives its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dronelink.model import CommandOutcome, CommandStatus, Unsupported


@dataclass
class Call:
    method: str
    key: str
    command_id: str
    args: dict[str, Any]
    row_status: str | None  # the command's row when the link was called


@dataclass
class FakeLink:
    source: str
    row_status: Callable[[str], Awaitable[str | None]] | None = None
    outcome: CommandOutcome = field(default_factory=lambda: CommandOutcome(CommandStatus.OK))
    hold: bool = False
    speaker_supported: bool = True

    @property
    def speaks(self) -> bool:
        return self.speaker_supported

    calls: list[Call] = field(default_factory=list)
    resolved: dict[str, CommandOutcome] = field(default_factory=dict)
    _waiting: dict[str, asyncio.Future[CommandOutcome]] = field(default_factory=dict)

    async def _call(self, method: str, key: str, command_id: str, **args: Any) -> CommandOutcome:
        status = None if self.row_status is None else await self.row_status(command_id)
        self.calls.append(Call(method, key, command_id, args, status))
        if not self.hold:
            return self.outcome
        fut = self._waiting[command_id] = asyncio.get_running_loop().create_future()
        try:
            return await fut
        finally:
            self._waiting.pop(command_id, None)

    def return_home(self, key: str, *, command_id: str) -> Awaitable[CommandOutcome]:
        return self._call("return_home", key, command_id)

    def speaker(
        self, key: str, text: str, volume: int, loop: bool, *, command_id: str
    ) -> Awaitable[CommandOutcome]:
        if not self.speaker_supported:
            raise Unsupported(f"{self.source} vehicle {key} has no loudspeaker")
        return self._call("speaker", key, command_id, text=text, volume=volume, loop=loop)

    def speaker_stop(self, key: str, *, command_id: str) -> Awaitable[CommandOutcome]:
        return self._call("speaker_stop", key, command_id)

    def release(self, command_id: str, outcome: CommandOutcome) -> None:
        fut = self._waiting.get(command_id)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    def resolve(self, command_id: str, outcome: CommandOutcome) -> None:
        """The DJI link's hook: a command waiting here was finished by another instance."""
        self.resolved[command_id] = outcome
        self.release(command_id, outcome)

    def waiting(self) -> set[str]:
        return set(self._waiting)


@dataclass
class NoResolveLink(FakeLink):
    """A link without ``resolve`` (like the MAVLink one): the service ends the wait itself."""

    def __getattribute__(self, name: str) -> Any:
        if name == "resolve":
            raise AttributeError(name)
        return super().__getattribute__(name)
