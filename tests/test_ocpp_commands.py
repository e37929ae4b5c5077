"""Commands to chargers: every command for OCPP 1.6, 2.0.1 and 2.1 against simulated chargers
(answered by the ``ocpp`` library's handlers), bad parameters and commands a version lacks,
chargers that never answer or go away, and probes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.ocpp import (
    COMMANDS,
    ChargerGone,
    ChargerSession,
    CommandError,
    CommandTimeout,
    MemoryBackend,
    serve_ocpp,
)
from drivers.ocpp.commands import credential_accepted, prepare
from events import ChargerHeartbeat, ChargerNotice, ConnectorStatusChanged, MeterSample
from gateway.demo.ocpp import Charger16, Charger21, Charger201, SimCharger
from tests.conftest import wait_for

PASSWORD = "command-test-secret-0"


@pytest.fixture
async def central() -> AsyncIterator[tuple[MemoryBackend, str]]:
    backend = MemoryBackend({cid: PASSWORD for cid in ("CP16", "CP201", "CP21")})
    server = await serve_ocpp(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield backend, f"ws://127.0.0.1:{port}/ocpp/"
    server.close()
    await server.wait_closed()


async def online(backend: MemoryBackend, charger_id: str) -> ChargerSession:
    await wait_for(lambda: charger_id in backend.sessions, 5, what=f"{charger_id} online")
    return backend.sessions[charger_id]


@pytest.fixture
async def cp16(
    central: tuple[MemoryBackend, str],
) -> AsyncIterator[tuple[Charger16, ChargerSession]]:
    backend, url = central
    async with Charger16(url, "CP16", PASSWORD) as cp:
        yield cp, await online(backend, "CP16")


@pytest.fixture(params=[Charger201, Charger21], ids=["ocpp2.0.1", "ocpp2.1"])
async def cp2(
    request: pytest.FixtureRequest, central: tuple[MemoryBackend, str]
) -> AsyncIterator[tuple[Charger201, ChargerSession]]:
    backend, url = central
    cls = request.param
    charger_id = "CP201" if cls is Charger201 else "CP21"
    async with cls(url, charger_id, PASSWORD) as cp:
        yield cp, await online(backend, charger_id)


# -- OCPP 1.6 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "status", "received"),
    [
        (
            "remote_start",
            {"connector_id": 1, "id_tag": "TAG1"},
            "Accepted",
            ("RemoteStartTransaction", {"id_tag": "TAG1", "connector_id": 1}),
        ),
        (
            "remote_start",
            {"id_tag": "TAG1"},
            "Accepted",
            ("RemoteStartTransaction", {"id_tag": "TAG1", "connector_id": None}),
        ),
        (
            "remote_stop",
            {"transaction_id": 7},
            "Accepted",
            ("RemoteStopTransaction", {"transaction_id": 7}),
        ),
        (
            "remote_stop",
            {"transaction_id": "8"},
            "Accepted",
            ("RemoteStopTransaction", {"transaction_id": 8}),
        ),
        ("reset", {"type": "soft"}, "Accepted", ("Reset", {"type": "Soft"})),
        ("reset", {"type": "hard"}, "Accepted", ("Reset", {"type": "Hard"})),
        (
            "change_availability",
            {"connector_id": 2, "operative": False},
            "Accepted",
            ("ChangeAvailability", {"connector_id": 2, "type": "Inoperative"}),
        ),
        (
            "change_availability",
            {"connector_id": 0, "operative": True},
            "Accepted",
            ("ChangeAvailability", {"connector_id": 0, "type": "Operative"}),
        ),
        (
            "unlock_connector",
            {"connector_id": 1},
            "Unlocked",
            ("UnlockConnector", {"connector_id": 1}),
        ),
        (
            "change_configuration",
            {"key": "HeartbeatInterval", "value": 60},
            "Accepted",
            ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ),
        (
            "change_configuration",
            {"key": "NoSuchKey", "value": "x"},
            "NotSupported",
            ("ChangeConfiguration", {"key": "NoSuchKey", "value": "x"}),
        ),
    ],
)
async def test_commands_16(
    cp16: tuple[Charger16, ChargerSession],
    name: str,
    params: dict[str, Any],
    status: str,
    received: tuple[str, dict[str, Any]],
) -> None:
    cp, session = cp16
    result = await session.command(name, params, timeout=5)
    assert result.status == status and result.payload["status"] == status
    assert cp.received == [received]


async def test_get_configuration_16(cp16: tuple[Charger16, ChargerSession]) -> None:
    cp, session = cp16
    result = await session.command("get_configuration", {"keys": ["HeartbeatInterval", "Nope"]})
    assert result.status == "Accepted"
    assert result.payload == {
        "configuration_key": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknown_key": ["Nope"],
    }
    everything = await session.command("get_configuration", {})
    assert {c["key"] for c in everything.payload["configuration_key"]} == set(cp.config)
    assert cp.received[-1] == ("GetConfiguration", {"key": None})


@pytest.mark.parametrize(
    ("message", "event"),
    [
        ("Heartbeat", ChargerHeartbeat),
        ("StatusNotification", ConnectorStatusChanged),
        ("MeterValues", MeterSample),
    ],
)
async def test_trigger_message_16(
    central: tuple[MemoryBackend, str],
    cp16: tuple[Charger16, ChargerSession],
    message: str,
    event: type[Any],
) -> None:
    backend, _ = central
    cp, session = cp16
    result = await session.command("trigger_message", {"message": message, "connector_id": 1})
    assert result.status == "Accepted"
    assert cp.received == [("TriggerMessage", {"requested_message": message, "connector_id": 1})]
    await wait_for(lambda: backend.of(event, "CP16"), 5, what=f"the triggered {message}")


async def test_answers_other_than_accepted(cp16: tuple[Charger16, ChargerSession]) -> None:
    cp, session = cp16
    cp.answers["RemoteStartTransaction"] = "Rejected"
    cp.answers["UnlockConnector"] = "UnlockFailed"
    cp.answers["TriggerMessage"] = "NotImplemented"
    assert (await session.command("remote_start", {"id_tag": "T"})).status == "Rejected"
    assert (await session.command("unlock_connector", {"connector_id": 1})).status == "UnlockFailed"
    assert (
        await session.command("trigger_message", {"message": "Heartbeat"})
    ).status == "NotImplemented"
    # An answer that breaks the charger's own schema becomes its CALLERROR.
    cp.answers["Reset"] = "Maybe"
    result = await session.command("reset", {"type": "soft"})
    assert result.status == "CallError" and result.payload["error_code"]


# -- OCPP 2.0.1 / 2.1 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "status", "received"),
    [
        (
            "remote_stop",
            {"transaction_id": "a1b2c3"},
            "Accepted",
            ("RequestStopTransaction", {"transaction_id": "a1b2c3"}),
        ),
        ("reset", {"type": "soft"}, "Accepted", ("Reset", {"type": "OnIdle", "evse_id": None})),
        ("reset", {"type": "hard"}, "Accepted", ("Reset", {"type": "Immediate", "evse_id": None})),
        (
            "change_availability",
            {"connector_id": 2, "operative": False},
            "Accepted",
            ("ChangeAvailability", {"operational_status": "Inoperative", "evse": {"id": 2}}),
        ),
        (
            "change_availability",
            {"connector_id": 0, "operative": True},
            "Accepted",
            ("ChangeAvailability", {"operational_status": "Operative", "evse": None}),
        ),
        (
            "unlock_connector",
            {"connector_id": 2},
            "Unlocked",
            ("UnlockConnector", {"evse_id": 2, "connector_id": 1}),
        ),
        (
            "unlock_connector",
            {"connector_id": 1, "evse_connector_id": 2},
            "Unlocked",
            ("UnlockConnector", {"evse_id": 1, "connector_id": 2}),
        ),
    ],
)
async def test_commands_2(
    cp2: tuple[Charger201, ChargerSession],
    name: str,
    params: dict[str, Any],
    status: str,
    received: tuple[str, dict[str, Any]],
) -> None:
    cp, session = cp2
    result = await session.command(name, params, timeout=5)
    assert result.status == status
    assert cp.received == [received]


async def test_remote_start_2(cp2: tuple[Charger201, ChargerSession]) -> None:
    cp, session = cp2
    result = await session.command("remote_start", {"connector_id": 1, "id_tag": "APP-42"})
    assert result.status == "Accepted"
    ((action, params),) = cp.received
    assert action == "RequestStartTransaction"
    assert params == {
        "id_token": {"id_token": "APP-42", "type": "Central"},
        "remote_start_id": result.payload["remote_start_id"],
        "evse_id": 1,
    }
    again = await session.command(
        "remote_start", {"id_tag": "CARD", "id_token_type": "ISO14443", "remote_start_id": 9}
    )
    assert again.payload["remote_start_id"] == 9
    assert cp.received[-1][1]["id_token"] == {"id_token": "CARD", "type": "ISO14443"}


async def test_trigger_message_2(
    central: tuple[MemoryBackend, str], cp2: tuple[Charger201, ChargerSession]
) -> None:
    backend, _ = central
    cp, session = cp2
    result = await session.command(
        "trigger_message", {"message": "StatusNotification", "connector_id": 2}
    )
    assert result.status == "Accepted"
    assert cp.received == [
        (
            "TriggerMessage",
            {"requested_message": "StatusNotification", "evse": {"id": 2, "connector_id": 1}},
        )
    ]
    (status,) = await wait_for(lambda: backend.of(ConnectorStatusChanged), 5)
    assert status.connector_id == 2
    assert (await session.command("trigger_message", {"message": "Heartbeat"})).status == "Accepted"
    assert cp.received[-1] == ("TriggerMessage", {"requested_message": "Heartbeat", "evse": None})
    await wait_for(lambda: backend.of(ChargerHeartbeat), 5)


async def test_variables_2(cp2: tuple[Charger201, ChargerSession]) -> None:
    cp, session = cp2
    result = await session.command(
        "get_variables",
        {
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                {"component": "OCPPCommCtrlr", "variable": "Nope"},
            ]
        },
    )
    assert result.status == "Partial"
    assert [
        (r["variable"]["name"], r["attribute_status"], r.get("attribute_value"))
        for r in result.payload["get_variable_result"]
    ] == [
        ("HeartbeatInterval", "Accepted", "300"),
        ("Nope", "UnknownVariable", None),
    ]
    result = await session.command(
        "set_variables",
        {
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": 60}
            ]
        },
    )
    assert result.status == "Accepted"
    assert cp.variables[("OCPPCommCtrlr", "HeartbeatInterval")] == "60"
    result = await session.command(
        "get_variables", {"variables": [{"component": "Nowhere", "variable": "X", "evse_id": 1}]}
    )
    assert result.status == "UnknownComponent"
    assert cp.received[-1][1]["get_variable_data"] == [
        {"component": {"name": "Nowhere", "evse": {"id": 1}}, "variable": {"name": "X"}}
    ]


# -- what cannot be sent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "name", "params", "message"),
    [
        ("ocpp1.6", "get_variables", {"variables": []}, "not in OCPP 1.6"),
        ("ocpp1.6", "set_variables", {"variables": []}, "use change_configuration"),
        ("ocpp2.0.1", "get_configuration", {}, "use get_variables"),
        ("ocpp2.1", "change_configuration", {"key": "a", "value": "b"}, "not in OCPP 2.1"),
        ("ocpp1.6", "self_destruct", {}, "unknown command"),
        ("ocpp1.6", "reset", {}, "type is required"),
        ("ocpp1.6", "reset", {"type": "medium"}, "type must be one of soft, hard"),
        ("ocpp1.6", "reset", {"type": "soft", "when": "now"}, "unknown parameter(s) when"),
        ("ocpp1.6", "remote_start", {"connector_id": 1}, "id_tag is required"),
        (
            "ocpp1.6",
            "remote_start",
            {"id_tag": "T", "connector_id": 0},
            "connector_id must be an integer >= 1",
        ),
        (
            "ocpp1.6",
            "remote_start",
            {"id_tag": "T", "id_token_type": "Central"},
            "unknown parameter",
        ),
        ("ocpp1.6", "remote_stop", {"transaction_id": "abc"}, "transaction number"),
        (
            "ocpp1.6",
            "change_availability",
            {"connector_id": 1, "operative": "yes"},
            "true or false",
        ),
        ("ocpp1.6", "change_availability", {"connector_id": True, "operative": True}, "integer"),
        ("ocpp1.6", "unlock_connector", {"connector_id": 0}, ">= 1"),
        ("ocpp1.6", "trigger_message", {"message": "TransactionEvent"}, "message must be one of"),
        (
            "ocpp2.0.1",
            "trigger_message",
            {"message": "DiagnosticsStatusNotification"},
            "message must be one of",
        ),
        ("ocpp1.6", "get_configuration", {"keys": "HeartbeatInterval"}, "must be a list"),
        ("ocpp1.6", "change_configuration", {"key": "K"}, "value is required"),
        (
            "ocpp1.6",
            "change_configuration",
            {"key": "K", "value": [1]},
            "string, number or boolean",
        ),
        ("ocpp2.0.1", "remote_stop", {}, "transaction_id is required"),
        ("ocpp2.0.1", "get_variables", {"variables": []}, "at least one"),
        ("ocpp2.0.1", "get_variables", {"variables": ["HeartbeatInterval"]}, "is an object"),
        ("ocpp2.0.1", "get_variables", {"variables": [{"component": "C"}]}, "variable is required"),
        (
            "ocpp2.0.1",
            "set_variables",
            {"variables": [{"component": "C", "variable": "V"}]},
            "needs a value",
        ),
        (
            "ocpp2.0.1",
            "set_variables",
            {"variables": [{"component": "C", "variable": "V", "value": 1, "x": 2}]},
            "unknown parameter",
        ),
        ("ocpp3", "reset", {"type": "soft"}, "no commands for protocol"),
    ],
)
def test_command_errors(protocol: str, name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError) as refused:
        prepare(protocol, name, params)
    assert message in str(refused.value)
    assert isinstance(refused.value, ValueError)  # the API's 422


async def test_schema_checked_before_sending(cp16: tuple[Charger16, ChargerSession]) -> None:
    cp, session = cp16
    with pytest.raises(CommandError, match="idTag"):
        await session.command("remote_start", {"id_tag": "X" * 21})  # CiString20
    with pytest.raises(CommandError, match="unknown command"):
        await session.command("fly", {})
    assert cp.received == []


def test_every_command_exists_in_some_version() -> None:
    for name in COMMANDS:
        built = []
        for protocol in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"):
            try:
                prepare(protocol, name, {})
                built.append(protocol)
            except CommandError as e:
                if "is required" in str(e) or "at least one" in str(e):
                    built.append(protocol)
        assert built, name


# -- chargers that do not answer ----------------------------------------------------------------


async def test_silent_charger_times_out_and_probe_fails(
    central: tuple[MemoryBackend, str], cp16: tuple[Charger16, ChargerSession]
) -> None:
    backend, _ = central
    cp, session = cp16
    cp.silent = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CommandTimeout):
        await session.command("reset", {"type": "soft"}, timeout=0.3)
    assert loop.time() - started < 2
    assert await session.probe(timeout=0.3) is False
    # The charger is still connected and its messages are still handled.
    await cp.heartbeat()
    cp.silent = False
    assert await session.probe(timeout=5) is True
    await wait_for(lambda: len(backend.of(ChargerHeartbeat)) >= 2, 5, what="the probe's heartbeat")
    assert cp.triggered == ["Heartbeat"]


async def test_charger_leaving_mid_command(
    central: tuple[MemoryBackend, str], cp16: tuple[Charger16, ChargerSession]
) -> None:
    cp, session = cp16
    cp.silent = True
    pending = asyncio.create_task(
        session.command("unlock_connector", {"connector_id": 1}, timeout=30)
    )
    await wait_for(lambda: cp.ignored, 5, what="the command on the wire")
    await cp.disconnect()
    with pytest.raises(ChargerGone):
        await asyncio.wait_for(pending, 5)  # at once, not after 30 s
    with pytest.raises(ChargerGone):
        await session.command("reset", {"type": "soft"})
    assert await session.probe(timeout=1) is False


async def test_commands_to_many_chargers_at_once(central: tuple[MemoryBackend, str]) -> None:
    backend, url = central
    chargers: list[SimCharger] = [
        Charger16(url, "CP16", PASSWORD),
        Charger201(url, "CP201", PASSWORD),
        Charger21(url, "CP21", PASSWORD),
    ]
    for c in chargers:
        await c.connect()
    try:
        sessions = [await online(backend, c.charger_id) for c in chargers]
        results = await asyncio.gather(
            *(s.command("reset", {"type": "hard"}) for s in sessions for _ in range(5))
        )
        assert {r.status for r in results} == {"Accepted"}
        assert [len(c.received) for c in chargers] == [5, 5, 5]
    finally:
        for c in chargers:
            await c.disconnect()


async def test_notify_and_commands_interleave(
    cp2: tuple[Charger201, ChargerSession], central: tuple[MemoryBackend, str]
) -> None:
    """The charger keeps talking while a command waits: nothing deadlocks."""
    backend, _ = central
    cp, session = cp2
    command = asyncio.create_task(session.command("reset", {"type": "soft"}))
    await cp.notify_event(1, tech_code="X")
    assert (await command).status == "Accepted"
    await wait_for(lambda: backend.of(ChargerNotice), 5)


async def test_password_setting_frames_are_not_logged(
    cp2: tuple[Charger201, ChargerSession], caplog: pytest.LogCaptureFixture
) -> None:
    cp, session = cp2
    caplog.set_level(logging.INFO)
    cp.variables[("SecurityCtrlr", "BasicAuthPassword")] = "old-password-00000000"
    result = await session.command(
        "set_variables",
        {
            "variables": [
                {
                    "component": "SecurityCtrlr",
                    "variable": "BasicAuthPassword",
                    "value": "new-password-11111111",
                }
            ]
        },
    )
    assert result.status == "Accepted"
    ours = [r for r in caplog.records if r.name.startswith("drivers")]
    assert any("redacted" in r.getMessage() for r in ours)  # the frame log line is there...
    assert not any("new-password-11111111" in r.getMessage() for r in ours)  # ...without it


async def test_password_rotation_follows_only_what_the_charger_took(
    central: tuple[MemoryBackend, str], cp16: tuple[Charger16, ChargerSession]
) -> None:
    backend, _ = central
    cp, session = cp16
    rotate = {"key": "AuthorizationKey", "value": "first-new-password-0000"}
    cp.silent = True  # no answer: the old password stays
    with pytest.raises(CommandTimeout):
        await session.command("change_configuration", rotate, timeout=0.3)
    assert backend.passwords["CP16"] == PASSWORD
    cp.silent = False
    cp.answers["ChangeConfiguration"] = "RebootRequired"  # stored, used after its reboot
    result = await session.command("change_configuration", rotate)
    assert result.status == "RebootRequired" and result.payload == {"status": "RebootRequired"}
    assert backend.passwords["CP16"] == "first-new-password-0000" == cp.password
    # Another configuration key is not a password, whatever its value.
    await session.command("change_configuration", {"key": "HeartbeatInterval", "value": "60"})
    assert backend.passwords["CP16"] == "first-new-password-0000"


@pytest.mark.parametrize(
    ("protocol", "name", "params"),
    [
        ("ocpp1.6", "change_configuration", {"key": "AuthorizationKey", "value": "short-secret"}),
        (
            "ocpp2.0.1",
            "set_variables",
            {
                "variables": [
                    {
                        "component": "SecurityCtrlr",
                        "variable": "BasicAuthPassword",
                        "value": "short-secret",
                    }
                ]
            },
        ),
    ],
)
def test_passwords_are_bounded_and_never_repeated(
    protocol: str, name: str, params: dict[str, Any]
) -> None:
    with pytest.raises(CommandError) as refused:
        prepare(protocol, name, params)
    assert "16 to 40" in str(refused.value) and "short-secret" not in str(refused.value)


def test_credential_accepted_reads_the_password_entry_only() -> None:
    password = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    other = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    assert credential_accepted(
        "SetVariables",
        {"set_variable_result": [{**other, "attribute_status": "Rejected"},
                                 {**password, "attribute_status": "Accepted"}]},
    )  # fmt: skip
    assert not credential_accepted(
        "SetVariables",
        {"set_variable_result": [{**other, "attribute_status": "Accepted"},
                                 {**password, "attribute_status": "Rejected"}]},
    )  # fmt: skip
    assert credential_accepted("ChangeConfiguration", {"status": "Accepted"})
    assert not credential_accepted("ChangeConfiguration", {"status": "NotSupported"})
    assert not credential_accepted("Reset", {"status": "Accepted"})
