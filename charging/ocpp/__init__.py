"""The OCPP central system for the town's chargers (OCPP 1.6J, 2.0.1 and 2.1 over websockets).

``serve_ocpp(backend, host, port)`` starts it; the backend (:class:`ChargerBackend`) is how it
reaches the rest of citygate; each connected charger is a :class:`ChargerSession` that can be
commanded, probed and closed. See docs/ocpp.md.
"""

from charging.ocpp.backend import AuthVerdict, ChargerBackend, IdTagStatus, MemoryBackend
from charging.ocpp.commands import (
    COMMANDS,
    ChargerGone,
    CommandError,
    CommandResult,
    CommandTimeout,
)
from charging.ocpp.server import SUBPROTOCOLS, charger_id_from_path, serve_ocpp
from charging.ocpp.session import ChargerSession

__all__ = [
    "COMMANDS",
    "SUBPROTOCOLS",
    "AuthVerdict",
    "ChargerBackend",
    "ChargerGone",
    "ChargerSession",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "IdTagStatus",
    "MemoryBackend",
    "charger_id_from_path",
    "serve_ocpp",
]
