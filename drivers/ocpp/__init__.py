"""OCPP 1.6J, 2.0.1 and 2.1 for the town's chargers: a sans-I/O core and a websocket transport.

:class:`OcppConnection` (``core``) is the protocol: frame text and the time in; answers,
events, problems and the answers to our calls out. ``serve_ocpp(backend, host, port)`` is the
transport: a websockets server with basic auth and TLS whose connections are
:class:`ChargerSession` (commanded, probed, closed). The backend (:class:`ChargerBackend`) is
how the driver reaches the rest of citygate; the gateway implements it. See docs/ocpp.md.
"""

from drivers.ocpp.backend import AuthVerdict, ChargerBackend, IdTagStatus, Link, MemoryBackend
from drivers.ocpp.commands import (
    COMMANDS,
    ChargerGone,
    CommandError,
    CommandResult,
    CommandTimeout,
)
from drivers.ocpp.core import (
    SUBPROTOCOLS,
    NoCommonSubprotocol,
    OcppConnection,
    Received,
    Response,
    select_subprotocol,
)
from drivers.ocpp.server import charger_id_from_path, serve_ocpp
from drivers.ocpp.session import ChargerSession

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
    "Link",
    "MemoryBackend",
    "NoCommonSubprotocol",
    "OcppConnection",
    "Received",
    "Response",
    "charger_id_from_path",
    "select_subprotocol",
    "serve_ocpp",
]
