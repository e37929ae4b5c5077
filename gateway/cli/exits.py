"""The exit codes of every ``citygate`` command, one convention for scripts (docs/cli.md),
and the one error type a command raises (or returns through ``fail``) to end with one.

Pure: no printing here (``gateway.cli.common.report`` prints an error, as text or JSON)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CliError", "Exit", "from_status"]


class Exit(IntEnum):
    """What a command's exit status means; the same for every command."""

    OK = 0  # done; every check passed
    FAILED = 1  # it ran and the answer is no: a check failed, rows or a document refused
    USAGE = 2  # the command line (or the config file) is wrong: argparse's own code too
    NOT_FOUND = 3  # no such device, charger, token, site, drone, config file, ...
    REFUSED = 4  # the state forbids it: already exists, in use, busy, not allowed
    UNAVAILABLE = 5  # something it needs does not answer: database, broker, adapter
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    PIPE_CLOSED = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE, said nowhere


# The JSON error code (``{"error": {"code": ...}}``) each exit has unless a command names a
# more precise one (``verify_failed``, ``database_unavailable``, ...).
DEFAULT_CODES: dict[Exit, str] = {
    Exit.FAILED: "failed",
    Exit.USAGE: "usage",
    Exit.NOT_FOUND: "not_found",
    Exit.REFUSED: "refused",
    Exit.UNAVAILABLE: "unavailable",
    Exit.INTERRUPTED: "interrupted",
}


def from_status(status: int) -> Exit:
    """The exit for a directory error's HTTP status (404, 409, 422, ...), as the API answers."""
    if status == 404:
        return Exit.NOT_FOUND
    if status in (403, 409, 423):
        return Exit.REFUSED
    if status in (502, 503, 504):
        return Exit.UNAVAILABLE
    if 400 <= status < 500:
        return Exit.USAGE
    return Exit.FAILED


class CliError(Exception):
    """End the command with *exit*: *message* says what went wrong, *hint* what to do next;
    *code* is the JSON error code (default: the exit's, ``DEFAULT_CODES``)."""

    def __init__(self, exit: Exit, message: str, hint: str = "", code: str = "") -> None:
        super().__init__(message)
        self.exit = exit
        self.message = message
        self.hint = hint
        self.code = code or DEFAULT_CODES.get(exit, "error")

    def as_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}
