"""Errors that end a command with a clear message instead of a traceback."""


class StartupError(Exception):
    """The gateway cannot start (port taken, database unreachable...); the message says why."""
