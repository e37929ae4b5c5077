"""One COMMAND_LONG's life: send, wait for its COMMAND_ACK, resend on silence, give up.

MAVLink's own retry rule: a resend carries ``confirmation`` incremented (0, 1, 2, ...), so the
vehicle can tell a repeat from a new command. A COMMAND_ACK names only the command number, so
at most one command of a number may be outstanding per vehicle (the link enforces that).
``MAV_RESULT_IN_PROGRESS`` stops the resends and waits one more timeout per progress report.
Pure: the caller passes the time (any monotonic seconds) and does the sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from dronelink.mavlink.wire import (
    MAV_RESULT_ACCEPTED,
    MAV_RESULT_DENIED,
    MAV_RESULT_FAILED,
    MAV_RESULT_IN_PROGRESS,
    MAV_RESULT_TEMPORARILY_REJECTED,
    MAV_RESULT_UNSUPPORTED,
)
from dronelink.model import CommandOutcome, CommandStatus

__all__ = ["Attempt", "Resend", "status_of"]

_RESULTS = {
    MAV_RESULT_ACCEPTED: CommandStatus.OK,
    MAV_RESULT_TEMPORARILY_REJECTED: CommandStatus.REJECTED,
    MAV_RESULT_DENIED: CommandStatus.REJECTED,
    MAV_RESULT_UNSUPPORTED: CommandStatus.REJECTED,
    MAV_RESULT_FAILED: CommandStatus.FAILED,
    MAV_RESULT_IN_PROGRESS: CommandStatus.IN_PROGRESS,
    6: CommandStatus.CANCELED,  # MAV_RESULT_CANCELLED
    7: CommandStatus.REJECTED,  # COMMAND_LONG_ONLY
    8: CommandStatus.REJECTED,  # COMMAND_INT_ONLY
    9: CommandStatus.REJECTED,  # COMMAND_UNSUPPORTED_MAV_FRAME
}
_NAMES = {
    0: "accepted",
    1: "temporarily rejected",
    2: "denied",
    3: "unsupported",
    4: "failed",
    5: "in progress",
    6: "cancelled",
    7: "COMMAND_LONG only",
    8: "COMMAND_INT only",
    9: "unsupported frame",
}


def status_of(result: int) -> CommandStatus:
    """MAV_RESULT → the operator's status; a result this dialect does not know is a failure."""
    return _RESULTS.get(result, CommandStatus.FAILED)


@dataclass(frozen=True, slots=True)
class Resend:
    confirmation: int


class Attempt:
    """The retry policy of one command, started (confirmation 0 on the wire) at *now*."""

    def __init__(self, *, ack_timeout_s: float, retries: int, now: float) -> None:
        if ack_timeout_s <= 0 or not 0 <= retries <= 255:  # confirmation is a uint8
            raise ValueError("ack_timeout_s must be > 0 and retries in 0..255")
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.confirmation = 0
        self.deadline = now + ack_timeout_s
        self.in_progress = False
        self.outcome: CommandOutcome | None = None

    @property
    def attempts(self) -> int:
        return self.confirmation + 1

    def on_ack(self, result: int, now: float) -> CommandOutcome | None:
        """The vehicle answered: the final outcome, or None while it reports progress."""
        if self.outcome is not None:
            return self.outcome
        status = status_of(result)
        if status is CommandStatus.IN_PROGRESS:
            self.in_progress = True
            self.deadline = now + self.ack_timeout_s
            return None
        self.outcome = CommandOutcome(
            status, self.attempts, result, _NAMES.get(result, f"MAV_RESULT {result}")
        )
        return self.outcome

    def poll(self, now: float) -> Resend | CommandOutcome | None:
        """At or past the deadline: resend with the next confirmation, or time out."""
        if self.outcome is not None:
            return self.outcome
        if now < self.deadline:
            return None
        if self.in_progress or self.confirmation >= self.retries:
            detail = "no final answer after progress" if self.in_progress else "no answer"
            self.outcome = CommandOutcome(CommandStatus.TIMEOUT, self.attempts, None, detail)
            return self.outcome
        self.confirmation += 1
        self.deadline = now + self.ack_timeout_s
        return Resend(self.confirmation)
