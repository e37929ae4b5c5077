"""Commands to chargers: one version-neutral vocabulary (what the API offers) mapped to each
OCPP version's request, and each version's answer mapped back to a :class:`CommandResult`.

Pure: building a request and reading an answer do no I/O; :mod:`drivers.ocpp.session` sends
them. Bad parameters and commands the charger's version lacks raise :class:`CommandError`
before anything is sent. (Over 400 lines: one table of ten commands for two families of OCPP
versions, with the parameter checks they share; split, the table would be in pieces.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

__all__ = [
    "COMMANDS",
    "ChargerGone",
    "CommandError",
    "CommandResult",
    "CommandTimeout",
    "Prepared",
    "credential_accepted",
    "prepare",
]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The charger's answer: ``status`` as OCPP says it (Accepted, Rejected, Unlocked...;
    ``CallError`` if it answered with an error), ``payload`` the whole answer, snake_case."""

    status: str
    payload: dict[str, Any] = field(default_factory=dict)


class CommandError(ValueError):
    """A command this charger cannot be given: unknown, not in its OCPP version, or bad
    parameters. The message says which (an HTTP 422)."""


class CommandTimeout(TimeoutError):
    """The charger did not answer in time."""


class ChargerGone(ConnectionError):
    """The charger's connection closed before it answered."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to send and how to read its answer."""

    action: str
    request: Any  # the ocpp library's call dataclass
    read: Callable[[dict[str, Any]], CommandResult]
    # A new basic-auth password the request gives the charger (never logged or echoed).
    secret: str | None = None


class _Params:
    """Typed access to a command's parameters, with messages fit for a 422."""

    def __init__(self, command: str, params: Mapping[str, Any], allowed: set[str]) -> None:
        if not isinstance(params, Mapping):
            raise CommandError(f"{command}: parameters must be an object")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise CommandError(
                f"{command}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(allowed)) or 'none'}"
            )
        self.command = command
        self.params = params

    def _missing(self, key: str) -> CommandError:
        return CommandError(f"{self.command}: {key} is required")

    def integer(self, key: str, *, minimum: int = 0, required: bool = True) -> int | None:
        value = self.params.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        if type(value) is not int or value < minimum:
            raise CommandError(f"{self.command}: {key} must be an integer >= {minimum}")
        return value

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self.params.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        if not isinstance(value, str) or not value:
            raise CommandError(f"{self.command}: {key} must be a non-empty string")
        return value

    def flag(self, key: str) -> bool:
        value = self.params.get(key)
        if value is None:
            raise self._missing(key)
        if not isinstance(value, bool):
            raise CommandError(f"{self.command}: {key} must be true or false")
        return value

    def choice(self, key: str, choices: Mapping[str, str]) -> str:
        value = self.params.get(key)
        if value is None:
            raise self._missing(key)
        if value not in choices:
            raise CommandError(f"{self.command}: {key} must be one of {', '.join(choices)}")
        return choices[value]

    def items(self, key: str, *, required: bool = True) -> list[Any] | None:
        value = self.params.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        if not isinstance(value, list):
            raise CommandError(f"{self.command}: {key} must be a list")
        return value


def _status(payload: dict[str, Any]) -> CommandResult:
    return CommandResult(str(payload.get("status", "Accepted")), payload)


def _overall(results: list[dict[str, Any]], key: str) -> str:
    """One status for per-variable results: theirs if they agree, else ``Partial``."""
    statuses = {str(r.get(key)) for r in results}
    if len(statuses) == 1:
        return statuses.pop()
    return "Partial" if statuses else "Accepted"


def _config_value(command: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise CommandError(f"{command}: value must be a string, number or boolean")


# The configuration key (1.6 security whitepaper) and the component/variable (2.0.1) that hold
# the password a charger sends in its basic-auth header.
AUTHORIZATION_KEY = "AuthorizationKey"
BASIC_AUTH_PASSWORD = ("SecurityCtrlr", "BasicAuthPassword")

# -- OCPP 1.6 ---------------------------------------------------------------------------------

_TRIGGERS_16 = {
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
}
_TRIGGERS_2 = {
    "BootNotification",
    "LogStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "SignChargingStationCertificate",
    "SignV2GCertificate",
    "StatusNotification",
    "TransactionEvent",
    "SignCombinedCertificate",
    "PublishFirmwareStatusNotification",
}


def _remote_start_16(p: _Params) -> Prepared:
    request = call16.RemoteStartTransaction(
        id_tag=p.text("id_tag"), connector_id=p.integer("connector_id", minimum=1, required=False)
    )
    return Prepared("RemoteStartTransaction", request, _status)


def _remote_stop_16(p: _Params) -> Prepared:
    value = p.params.get("transaction_id")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if type(value) is not int:
        raise CommandError("remote_stop: transaction_id must be an OCPP 1.6 transaction number")
    return Prepared(
        "RemoteStopTransaction", call16.RemoteStopTransaction(transaction_id=value), _status
    )


def _reset_16(p: _Params) -> Prepared:
    kind = p.choice("type", {"soft": "Soft", "hard": "Hard"})
    return Prepared("Reset", call16.Reset(type=kind), _status)


def _availability_16(p: _Params) -> Prepared:
    request = call16.ChangeAvailability(
        connector_id=p.integer("connector_id"),
        type="Operative" if p.flag("operative") else "Inoperative",
    )
    return Prepared("ChangeAvailability", request, _status)


def _unlock_16(p: _Params) -> Prepared:
    request = call16.UnlockConnector(connector_id=p.integer("connector_id", minimum=1))
    return Prepared("UnlockConnector", request, _status)


def _trigger_16(p: _Params) -> Prepared:
    message = p.choice("message", {m: m for m in sorted(_TRIGGERS_16)})
    request = call16.TriggerMessage(
        requested_message=message, connector_id=p.integer("connector_id", required=False)
    )
    return Prepared("TriggerMessage", request, _status)


def _get_configuration(p: _Params) -> Prepared:
    keys = p.items("keys", required=False)
    if keys is not None and not all(isinstance(k, str) and k for k in keys):
        raise CommandError("get_configuration: keys must be a list of key names")
    request = call16.GetConfiguration(key=keys or None)
    return Prepared("GetConfiguration", request, lambda payload: CommandResult("Accepted", payload))


def _password(command: str, value: str) -> str:
    """A new basic-auth password: OCPP's 16..40 characters (the value is never shown)."""
    if not 16 <= len(value) <= 40 or not value.isprintable():
        raise CommandError(f"{command}: a password is 16 to 40 printable characters")
    return value


def _change_configuration(p: _Params) -> Prepared:
    key = p.text("key")
    if "value" not in p.params:
        raise CommandError("change_configuration: value is required")
    value = _config_value("change_configuration", p.params["value"])
    secret = _password("change_configuration", value) if key == AUTHORIZATION_KEY else None
    return Prepared(
        "ChangeConfiguration",
        call16.ChangeConfiguration(key=key, value=value),
        _status,
        secret,
    )


# -- OCPP 2.0.1 / 2.1 -------------------------------------------------------------------------


def _remote_start_2(m: ModuleType, p: _Params) -> Prepared:
    remote_start_id = p.integer("remote_start_id", required=False)
    if remote_start_id is None:
        remote_start_id = secrets.randbelow(2**31 - 1) + 1
    request = m.RequestStartTransaction(
        id_token={
            "id_token": p.text("id_tag"),
            "type": p.text("id_token_type", required=False) or "Central",
        },
        remote_start_id=remote_start_id,
        evse_id=p.integer("connector_id", minimum=1, required=False),
    )

    def read(payload: dict[str, Any]) -> CommandResult:
        return _status({**payload, "remote_start_id": remote_start_id})

    return Prepared("RequestStartTransaction", request, read)


def _remote_stop_2(m: ModuleType, p: _Params) -> Prepared:
    value = p.params.get("transaction_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise CommandError("remote_stop: transaction_id is required")
    return Prepared(
        "RequestStopTransaction", m.RequestStopTransaction(transaction_id=value), _status
    )


def _reset_2(m: ModuleType, p: _Params) -> Prepared:
    # soft waits for running transactions to end (OnIdle); hard resets now (Immediate).
    kind = p.choice("type", {"soft": "OnIdle", "hard": "Immediate"})
    return Prepared("Reset", m.Reset(type=kind), _status)


def _evse(connector_id: int | None, connector: int | None = None) -> dict[str, int] | None:
    if not connector_id:
        return None  # evse 0 / absent: the whole charging station
    return (
        {"id": connector_id}
        if connector is None
        else {"id": connector_id, "connector_id": connector}
    )


def _availability_2(m: ModuleType, p: _Params) -> Prepared:
    request = m.ChangeAvailability(
        operational_status="Operative" if p.flag("operative") else "Inoperative",
        evse=_evse(p.integer("connector_id")),
    )
    return Prepared("ChangeAvailability", request, _status)


def _unlock_2(m: ModuleType, p: _Params) -> Prepared:
    request = m.UnlockConnector(
        evse_id=p.integer("connector_id", minimum=1),
        connector_id=p.integer("evse_connector_id", minimum=1, required=False) or 1,
    )
    return Prepared("UnlockConnector", request, _status)


def _trigger_2(m: ModuleType, p: _Params) -> Prepared:
    message = p.choice("message", {t: t for t in sorted(_TRIGGERS_2)})
    connector_id = p.integer("connector_id", required=False)
    connector = p.integer("evse_connector_id", minimum=1, required=False)
    if message == "StatusNotification" and connector_id:
        connector = connector or 1  # a StatusNotification is per connector
    request = m.TriggerMessage(requested_message=message, evse=_evse(connector_id, connector))
    return Prepared("TriggerMessage", request, _status)


def _component(command: str, item: object, *, with_value: bool) -> dict[str, Any]:
    """One ``{component, variable[, value], instance?, evse_id?, attribute_type?}`` entry as
    OCPP's component/variable pair."""
    allowed = {"component", "variable", "instance", "evse_id", "attribute_type"}
    if with_value:
        allowed.add("value")
    if not isinstance(item, Mapping):
        raise CommandError(f"{command}: each variable is an object {{component, variable}}")
    p = _Params(command, item, allowed)
    component: dict[str, Any] = {"name": p.text("component")}
    evse_id = p.integer("evse_id", required=False)
    if evse_id is not None:
        component["evse"] = {"id": evse_id}
    entry: dict[str, Any] = {"component": component, "variable": {"name": p.text("variable")}}
    instance = p.text("instance", required=False)
    if instance is not None:
        entry["variable"]["instance"] = instance
    attribute_type = p.text("attribute_type", required=False)
    if attribute_type is not None:
        entry["attribute_type"] = attribute_type
    if with_value:
        if "value" not in item:
            raise CommandError(f"{command}: each variable needs a value")
        entry["attribute_value"] = _config_value(command, item["value"])
    return entry


def _variables(command: str, p: _Params, *, with_value: bool) -> list[dict[str, Any]]:
    items = p.items("variables")
    if not items:
        raise CommandError(f"{command}: variables must list at least one {{component, variable}}")
    return [_component(command, item, with_value=with_value) for item in items]


def _get_variables(m: ModuleType, p: _Params) -> Prepared:
    request = m.GetVariables(get_variable_data=_variables("get_variables", p, with_value=False))

    def read(payload: dict[str, Any]) -> CommandResult:
        return CommandResult(
            _overall(payload.get("get_variable_result", []), "attribute_status"), payload
        )

    return Prepared("GetVariables", request, read)


def _is_password(entry: Mapping[str, Any]) -> bool:
    return (entry.get("component") or {}).get("name") == BASIC_AUTH_PASSWORD[0] and (
        entry.get("variable") or {}
    ).get("name") == BASIC_AUTH_PASSWORD[1]


def _set_variables(m: ModuleType, p: _Params) -> Prepared:
    data = _variables("set_variables", p, with_value=True)
    secrets_ = [e["attribute_value"] for e in data if _is_password(e)]
    if len(secrets_) > 1:
        raise CommandError("set_variables: one BasicAuthPassword at a time")
    secret = _password("set_variables", secrets_[0]) if secrets_ else None
    request = m.SetVariables(set_variable_data=data)

    def read(payload: dict[str, Any]) -> CommandResult:
        return CommandResult(
            _overall(payload.get("set_variable_result", []), "attribute_status"), payload
        )

    return Prepared("SetVariables", request, read, secret)


# A charger that stored a new password (now, or at its next reboot) opens its next connection
# with it: the registry must follow, or the charger is locked out.
_STORED = ("Accepted", "RebootRequired")


def credential_accepted(action: str, payload: Mapping[str, Any]) -> bool:
    """Whether the charger's answer (snake_case) to a password-setting request says it took
    the new password."""
    if action == "ChangeConfiguration":
        return payload.get("status") in _STORED
    if action == "SetVariables":
        return any(
            _is_password(r) and r.get("attribute_status") in _STORED
            for r in payload.get("set_variable_result", [])
            if isinstance(r, Mapping)
        )
    return False


# name -> (allowed params, 1.6 builder, 2.x builder); None: not in that version (with a hint)
_Builder16 = Callable[[_Params], Prepared]
_Builder2 = Callable[[ModuleType, _Params], Prepared]
_TABLE: dict[str, tuple[set[str], _Builder16 | str, _Builder2 | str]] = {
    "remote_start": (
        {"connector_id", "id_tag", "id_token_type", "remote_start_id"},
        _remote_start_16,
        _remote_start_2,
    ),
    "remote_stop": ({"transaction_id"}, _remote_stop_16, _remote_stop_2),
    "reset": ({"type"}, _reset_16, _reset_2),
    "change_availability": ({"connector_id", "operative"}, _availability_16, _availability_2),
    "unlock_connector": ({"connector_id", "evse_connector_id"}, _unlock_16, _unlock_2),
    "trigger_message": ({"message", "connector_id", "evse_connector_id"}, _trigger_16, _trigger_2),
    "get_configuration": ({"keys"}, _get_configuration, "use get_variables"),
    "change_configuration": ({"key", "value"}, _change_configuration, "use set_variables"),
    "get_variables": ({"variables"}, "use get_configuration", _get_variables),
    "set_variables": ({"variables"}, "use change_configuration", _set_variables),
}
COMMANDS = tuple(_TABLE)
_CALLS = {"ocpp2.0.1": call201, "ocpp2.1": call21}
# Parameters that only mean something in 2.0.1+ are refused for 1.6 rather than ignored.
_ONLY_2 = {"id_token_type", "remote_start_id", "evse_connector_id"}


def prepare(protocol: str, name: str, params: Mapping[str, Any]) -> Prepared:
    """The request for command *name* to a charger speaking *protocol* (``ocpp1.6``,
    ``ocpp2.0.1``, ``ocpp2.1``); :class:`CommandError` if it cannot be given."""
    entry = _TABLE.get(name)
    if entry is None:
        raise CommandError(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    allowed, v16, v2 = entry
    if protocol == "ocpp1.6":
        if isinstance(v16, str):
            raise CommandError(f"{name} is not in OCPP 1.6 ({v16})")
        return v16(_Params(name, params, allowed - _ONLY_2))
    module = _CALLS.get(protocol)
    if module is None:
        raise CommandError(f"no commands for protocol {protocol!r}")
    if isinstance(v2, str):
        raise CommandError(f"{name} is not in OCPP {protocol.removeprefix('ocpp')} ({v2})")
    return v2(module, _Params(name, params, allowed))
