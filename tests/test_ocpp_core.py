"""The sans-I/O OCPP core without any socket: frames and the time in; answers, events, problems
and matched responses out. The CallError rules of OCPP-J for every kind of bad frame, the
connection staying usable after each, call/result matching by id, the subprotocol choice,
and (hypothesis) that no input whatever makes the core raise or leaves a CALL unanswered."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ocpp import (
    SUBPROTOCOLS,
    NoCommonSubprotocol,
    OcppConnection,
    select_subprotocol,
)
from drivers.ocpp.handlers import IdTagStatus, iso
from events import ChargerBooted, ChargerHeartbeat, ChargingStarted, MeterSample

NOW = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


class Policy:
    """The synchronous decisions the core asks for."""

    def __init__(self) -> None:
        self.next_tx = 100

    def heartbeat_interval(self, charger_id: str) -> int:
        return 120

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        if id_tag == "BOOM":
            raise RuntimeError("authorization cache broken")
        return "Accepted" if id_tag == "TAG1" else "Invalid"

    def new_transaction_id(self, charger_id: str) -> int:
        self.next_tx += 1
        return self.next_tx

    def connector_count(self, charger_id: str) -> int | None:
        return self.connectors

    connectors: int | None = None


def conn(protocol: str = "ocpp1.6", **kw: Any) -> OcppConnection:
    ids = iter(f"c{n}" for n in range(1, 10_000))
    return OcppConnection("CP1", protocol, Policy(), new_id=lambda: next(ids), **kw)


def answer(c: OcppConnection, frame: str | bytes, now: datetime = NOW) -> Any:
    out = c.receive(frame, now)
    assert len(out.replies) == 1, (frame, out)
    return json.loads(out.replies[0])


def usable(c: OcppConnection) -> None:
    a = answer(c, '[2,"hb","Heartbeat",{}]')
    assert a[:2] == [3, "hb"] and "currentTime" in a[2]


# -- subprotocols -------------------------------------------------------------------------------


def test_subprotocol_choice() -> None:
    assert select_subprotocol([]) is None  # none offered: 1.6 without a header
    assert select_subprotocol(["ocpp1.6"]) == "ocpp1.6"
    assert select_subprotocol(["ocpp1.6", "ocpp2.1"]) == "ocpp2.1"
    assert select_subprotocol(["ocpp1.5", "ocpp2.1", "ocpp2.0.1"]) == "ocpp2.0.1"
    with pytest.raises(NoCommonSubprotocol):
        select_subprotocol(["ocpp1.2", "ocpp2.0"])


@given(st.lists(st.sampled_from([*SUBPROTOCOLS, "ocpp1.5", "ocpp2.0", "mqtt", ""]), max_size=6))
def test_subprotocol_choice_is_the_best_offered(offered: list[str]) -> None:
    common = [p for p in SUBPROTOCOLS if p in offered]
    if not offered:
        assert select_subprotocol(offered) is None
    elif not common:
        with pytest.raises(NoCommonSubprotocol):
            select_subprotocol(offered)
    else:
        assert select_subprotocol(offered) == common[0]


def test_unknown_protocol_refused() -> None:
    with pytest.raises(ValueError, match="unknown OCPP protocol"):
        OcppConnection("CP1", "ocpp1.5", Policy())


# -- messages, the time as an argument ----------------------------------------------------------


def test_boot_and_heartbeat_use_the_time_given() -> None:
    c = conn()
    boot = '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
    out = c.receive(boot, NOW)
    assert json.loads(out.replies[0]) == [
        3,
        "b1",
        {"currentTime": "2026-12-01T08:30:15.123Z", "interval": 120, "status": "Accepted"},
    ]
    (booted,) = out.events
    assert isinstance(booted, ChargerBooted) and booted.ts == NOW and booted.vendor == "V"
    later = NOW + timedelta(hours=5)
    out = c.receive('[2,"h1","Heartbeat",{}]', later)
    assert json.loads(out.replies[0])[2] == {"currentTime": iso(later)}
    assert out.events == [ChargerHeartbeat(device_id="CP1", ts=later)]
    assert out.problems == []


def test_meter_values_and_transactions_16() -> None:
    c = conn()
    start = (
        '[2,"s1","StartTransaction",{"connectorId":2,"idTag":"TAG1","meterStart":1000,'
        '"timestamp":"2026-12-01T07:00:00Z"}]'
    )
    a = answer(c, start)
    assert a[2] == {"transactionId": 101, "idTagInfo": {"status": "Accepted"}}
    # A re-sent StartTransaction (the charger lost our answer): the same id, no second event.
    out = c.receive(start.replace('"s1"', '"s2"'), NOW)
    assert json.loads(out.replies[0])[2]["transactionId"] == 101
    assert out.events == [] and out.problems[0][0] == "duplicate"
    mv = (
        '[2,"m1","MeterValues",{"connectorId":2,"transactionId":101,"meterValue":[{"timestamp":'
        '"2026-12-01T07:10:00Z","sampledValue":[{"value":"1.5","unit":"kWh"}]}]}]'
    )
    out = c.receive(mv, NOW)
    (sample,) = out.events
    assert isinstance(sample, MeterSample) and sample.energy_wh == 1500.0
    assert sample.transaction_id == "101" and sample.ts == datetime(2026, 12, 1, 7, 10, tzinfo=UTC)
    stop = '[2,"t1","StopTransaction",{"meterStop":2000,"timestamp":"x","transactionId":101}]'
    out = c.receive(stop, NOW)
    assert [type(e).__name__ for e in out.events] == ["ChargingEnded"]
    assert out.events[0].ts == NOW and out.events[0].connector_id == 2  # unreadable time: arrival
    assert ("bad_timestamp", "'x'") in out.problems
    assert c.receive(stop.replace('"t1"', '"t2"'), NOW).problems[0][0] == "duplicate"


def test_transaction_event_201_and_free_vend() -> None:
    c = conn("ocpp2.0.1")
    started = {
        "eventType": "Started",
        "timestamp": "2026-12-01T07:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "T-1"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "whatever", "type": "NoAuthorization"},
    }
    out = c.receive(json.dumps([2, "e1", "TransactionEvent", started]), NOW)
    assert json.loads(out.replies[0])[2] == {"idTokenInfo": {"status": "Accepted"}}
    (ev,) = out.events
    assert isinstance(ev, ChargingStarted) and ev.transaction_id == "T-1" and ev.connector_id == 1
    again = c.receive(json.dumps([2, "e2", "TransactionEvent", started]), NOW)
    assert again.events == [] and again.problems[0][0] == "duplicate"


# -- bad frames: the right CallError, the connection stays usable -------------------------------

CASES_16 = [
    ('[2,"m1","Heartbeat",{', "FormationViolation", "malformed"),
    ('[2,"m2","Heartbeat",[]]', "FormationViolation", "malformed"),
    ('[2,"m3","Heartbeat"]', "FormationViolation", "malformed"),
    ('[2,"m4",["Heartbeat"],{}]', "FormationViolation", "malformed"),
    ('[7,"m5",{}]', "FormationViolation", "bad_message_type"),
    (
        '[2,"m6","StatusNotification",{"connectorId":"one","errorCode":"NoError",'
        '"status":"Available"}]',
        "TypeConstraintViolation",
        "validation",
    ),
    ('[2,"m7","StatusNotification",{"connectorId":1}]', "ProtocolError", "validation"),
    (
        '[2,"m8","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Sleeping"}]',
        "PropertyConstraintViolation",
        "validation",
    ),
    ('[2,"m9","Authorize",{"idTag":"' + "X" * 21 + '"}]', "TypeConstraintViolation", "validation"),
    ('[2,"m10","Heartbeat",{"extra":1}]', "FormationViolation", "validation"),
    ('[2,"m11","FlyToTheMoon",{}]', "NotImplemented", "not_implemented"),
    ('[2,"m12","Reset",{"type":"Hard"}]', "NotSupported", "not_supported"),
    ('[2,"m13","Authorize",{"idTag":"BOOM"}]', "InternalError", "internal_error"),
]


@pytest.mark.parametrize(("frame", "code", "reason"), CASES_16)
def test_bad_calls_16(frame: str, code: str, reason: str) -> None:
    c = conn()
    out = c.receive(frame, NOW)
    (reply,) = out.replies
    got = json.loads(reply)
    assert got[0] == 4 and got[2] == code and got[4] == {}
    assert isinstance(got[3], str) and 0 < len(got[3]) <= 255
    assert out.events == []
    assert [r for r, _ in out.problems] == [reason]
    usable(c)


@pytest.mark.parametrize(
    "frame", ["this is not JSON", '{"not": "an array"}', "[]", "[2]", '[3,"nobody-asked",{}]']
)
def test_unanswerable_frames_16(frame: str) -> None:
    c = conn()
    out = c.receive(frame, NOW)
    assert out.replies == [] and len(out.problems) == 1  # 1.6 has no way to answer them
    usable(c)


@pytest.mark.parametrize(
    ("frame", "uid", "code"),
    [
        ("garbage", "-1", "RpcFrameworkError"),
        ('[2,"x1","Heartbeat",{"extra":1}]', "x1", "FormatViolation"),
        ('[5,"x2",{}]', "x2", "MessageTypeNotSupported"),
        ("[9]", "-1", "RpcFrameworkError"),
        ('[2,"x3","Heartbeat"]', "x3", "RpcFrameworkError"),
        ('[2,"x4","FlyToTheMoon",{}]', "x4", "NotImplemented"),
        (
            '[2,"x5","NotifyChargingLimit",{"chargingLimit":{"chargingLimitSource":"EMS"}}]',
            "x5",
            "NotSupported",
        ),
        ('[2,"x6","Heartbeat",{', "x6", "FormatViolation"),
    ],
)
def test_bad_frames_201(frame: str, uid: str, code: str) -> None:
    c = conn("ocpp2.0.1")
    assert answer(c, frame)[:3] == [4, uid, code]
    usable(c)


def test_21_send_and_callresulterror_are_counted_not_answered() -> None:
    c = conn("ocpp2.1")
    for frame in ('[5,"a",{}]', '[6,"b","NotifyPeriodicEventStream",{}]'):
        out = c.receive(frame, NOW)
        assert out.replies == [] and out.problems[0][0] == "unsupported_message_type"
    usable(c)


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
def test_oversized_frames_refused_connection_usable(protocol: str) -> None:
    c = conn(protocol, max_frame=1000)
    big = '[2,"big","DataTransfer",{"vendorId":"V","data":"' + "x" * 2000 + '"}]'
    out = c.receive(big, NOW)
    (reply,) = out.replies
    got = json.loads(reply)
    assert got[:2] == [4, "big"] and "too large" in got[3] and len(reply) < 400
    assert [r for r, _ in out.problems] == ["oversized"] and out.events == []
    out = c.receive("x" * 2000, NOW)  # no id to answer with
    assert [r for r, _ in out.problems] == ["oversized"]
    assert len(out.replies) == (0 if protocol == "ocpp1.6" else 1)
    usable(c)


def test_binary_frames_are_read_as_utf8() -> None:
    c = conn()
    assert answer(c, b'[2,"b","Heartbeat",{}]')[:2] == [3, "b"]
    assert c.receive(b"\xff\xfe", NOW).problems[0][0] == "malformed"
    usable(c)


# -- our calls: ids, matching, errors, late answers ---------------------------------------------


def test_calls_are_matched_by_id_in_any_order() -> None:
    c = conn()
    id1, f1 = c.call("Reset", {"type": "Soft"})
    id2, _ = c.call("UnlockConnector", {"connectorId": 1})
    assert json.loads(f1) == [2, id1, "Reset", {"type": "Soft"}] and id1 != id2
    assert c.pending == {id1: "Reset", id2: "UnlockConnector"}
    out = c.receive(json.dumps([3, id2, {"status": "Unlocked"}]), NOW)
    assert out.replies == [] and out.problems == []
    (r2,) = out.responses
    assert (r2.unique_id, r2.action, r2.result) == (id2, "UnlockConnector", {"status": "Unlocked"})
    (r1,) = c.receive(json.dumps([4, id1, "NotSupported", "no", {"a": 1}]), NOW).responses
    assert r1.error is not None and (r1.error.code, r1.error.details) == ("NotSupported", {"a": 1})
    assert c.pending == {}


def test_results_are_snake_case_and_checked_against_the_schema() -> None:
    c = conn("ocpp2.0.1")
    uid, _ = c.call(
        "GetVariables",
        {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}}]},
    )
    result = {
        "getVariableResult": [
            {"attributeStatus": "Accepted", "component": {"name": "C"}, "variable": {"name": "V"}}
        ]
    }
    (r,) = c.receive(json.dumps([3, uid, result]), NOW).responses
    assert r.invalid is None and r.result == {
        "get_variable_result": [
            {"attribute_status": "Accepted", "component": {"name": "C"}, "variable": {"name": "V"}}
        ]
    }
    uid, _ = c.call("Reset", {"type": "Immediate"})
    (bad,) = c.receive(json.dumps([3, uid, {"status": "Maybe"}]), NOW).responses
    assert bad.invalid is not None and "Maybe" in bad.invalid


def test_unexpected_late_and_malformed_responses_are_counted() -> None:
    c = conn()
    uid, _ = c.call("Reset", {"type": "Hard"})
    c.forget(uid)  # the command timed out
    out = c.receive(json.dumps([3, uid, {"status": "Accepted"}]), NOW)
    assert out.responses == [] and out.problems[0][0] == "unexpected_response"
    out = c.receive('[3,"never-sent",{}]', NOW)
    assert out.problems[0][0] == "unexpected_response"
    uid, _ = c.call("Reset", {"type": "Hard"})
    out = c.receive(json.dumps([4, uid, "X"]), NOW)  # a CALLERROR has 5 elements
    assert out.problems[0][0] == "malformed" and out.responses == []
    assert uid in c.pending  # still waiting for a proper answer
    assert out.replies == []  # responses are never answered


def test_a_call_that_breaks_the_schema_is_not_sent() -> None:
    c = conn()
    from drivers.ocpp.schemas import RpcError

    with pytest.raises(RpcError) as refused:
        c.call("RemoteStartTransaction", {"idTag": "X" * 21})
    assert refused.value.code == "TypeConstraintViolation" and c.pending == {}


def test_decimal_schemas_accept_one_decimal_place() -> None:
    c = conn()
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
        },
    }
    c.call("RemoteStartTransaction", {"idTag": "T", "chargingProfile": profile})


# -- anything at all ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
actions = st.sampled_from(
    ["Heartbeat", "BootNotification", "MeterValues", "StatusNotification", "StartTransaction",
     "StopTransaction", "Authorize", "TransactionEvent", "NotifyEvent", "DataTransfer", "Nope"]
)  # fmt: skip
calls = st.builds(
    lambda uid, action, payload: json.dumps([2, uid, action, payload]),
    st.text(min_size=1, max_size=12).filter(lambda s: '"' not in s and "\\" not in s),
    actions,
    st.dictionaries(
        st.sampled_from(["connectorId", "meterValue", "idTag", "status", "errorCode", "seqNo"]),
        json_values,
        max_size=4,
    ),
)
frames = st.one_of(
    st.text(max_size=60),
    json_values.map(json.dumps),
    st.lists(json_values, max_size=5).map(json.dumps),
    calls,
)


@settings(max_examples=300, deadline=None)
@given(protocol=st.sampled_from(["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]), frame=frames)
def test_no_frame_breaks_the_core(protocol: str, frame: str) -> None:
    c = conn(protocol)
    out = c.receive(frame, NOW)
    assert len(out.replies) <= 1
    for reply in out.replies:
        parsed = json.loads(reply)
        assert parsed[0] in (3, 4)
        if parsed[0] == 4:
            assert isinstance(parsed[2], str) and isinstance(parsed[3], str) and parsed[4] == {}
    try:
        sent = json.loads(frame)
    except ValueError:
        sent = None
    is_call = isinstance(sent, list) and len(sent) == 4 and sent[0] == 2
    if is_call and isinstance(sent[1], str) and sent[1]:
        # A CALL with an id always gets exactly one answer, with that id.
        assert len(out.replies) == 1 and json.loads(out.replies[0])[1] == sent[1]
    assert out.failures == []  # a frame may be refused, never crash a handler of ours
    usable(c)


# -- the core is pure (tests/test_layering.py checks who imports whom) ---------------------------


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "module", ["core", "handlers", "handlers16", "handlers201", "values", "ledger", "commands"]
)
def test_core_modules_do_no_io_and_read_no_clock(module: str) -> None:
    path = ROOT / "drivers" / "ocpp" / f"{module}.py"
    tops = {n.split(".")[0] for n in _imports(path)}
    assert not tops & {"asyncio", "websockets", "socket", "ssl", "time", "sqlalchemy"}, tops
    text = path.read_text()
    for clock in ("now_utc", "datetime.now", "utcnow", "time.time", "monotonic"):
        assert clock not in text, (module, clock)


def test_charging_is_pure() -> None:
    for path in (ROOT / "charging").rglob("*.py"):
        tops = {n.split(".")[0] for n in _imports(path)}
        assert not tops & {"asyncio", "websockets", "ssl", "sqlalchemy", "ocpp", "drivers"}, path
        text = path.read_text()
        assert "now_utc()" not in text and "datetime.now(" not in text, path


# -- the compiled schemas agree with the library's validators ----------------------------------

HANDLED = [
    ("1.6", a)
    for a in ("BootNotification", "MeterValues", "StatusNotification", "StartTransaction",
              "StopTransaction", "Authorize", "DataTransfer", "SecurityEventNotification")
] + [
    (v, a)
    for v in ("2.0.1", "2.1")
    for a in ("BootNotification", "MeterValues", "StatusNotification", "TransactionEvent",
              "NotifyEvent", "Authorize", "NotifyReport")
]  # fmt: skip
FIELDS = [
    "connectorId", "meterValue", "sampledValue", "value", "unit", "timestamp", "idTag",
    "status", "errorCode", "chargePointVendor", "chargePointModel", "evseId", "eventType",
    "seqNo", "transactionInfo", "transactionId", "reason", "chargingStation", "vendorName",
    "model", "idToken", "type", "eventData", "meterStart", "meterStop", "connectorStatus",
    "triggerReason", "unitOfMeasure", "multiplier", "requestId", "generatedAt",
]  # fmt: skip
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-3, 2**33)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "Available", "Started", "NoError", "Wh", "2026-12-01T00:00:00Z"])
    | st.text(max_size=25)
)
shaped = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)
    ),
    max_leaves=20,
)


TS = "2026-12-01T00:00:00Z"
MV16 = [{"timestamp": TS, "sampledValue": [{"value": "1.5", "unit": "kWh"}]}]
MV2 = [{"timestamp": TS, "sampledValue": [{"value": 1.5, "unitOfMeasure": {"unit": "Wh"}}]}]
VALID: dict[tuple[str, str], dict[str, Any]] = {
    ("1.6", "MeterValues"): {"connectorId": 1, "meterValue": MV16},
    ("1.6", "StatusNotification"): {"connectorId": 1, "errorCode": "NoError", "status": "Faulted"},
    ("1.6", "StartTransaction"): {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": TS},
    ("2.0.1", "MeterValues"): {"evseId": 1, "meterValue": MV2},
    ("2.0.1", "TransactionEvent"): {
        "eventType": "Updated", "timestamp": TS, "triggerReason": "MeterValuePeriodic",
        "seqNo": 1, "transactionInfo": {"transactionId": "T"}, "meterValue": MV2,
    },
}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    which=st.sampled_from(HANDLED),
    changes=st.dictionaries(st.sampled_from(FIELDS), shaped, max_size=2),
    drop=st.lists(st.sampled_from(FIELDS), max_size=1),
)
def test_compiled_schemas_agree_with_the_library(
    which: tuple[str, str], changes: dict[str, Any], drop: list[str]
) -> None:
    """Near-valid payloads (a valid one with a field changed or dropped) and random ones: the
    compiled schema accepts exactly what the library's validator accepts."""
    from drivers.ocpp.schemas import CALL, _compiled, _validator

    version, action = which
    payload = {**VALID.get(which, {}), **changes}
    for key in drop:
        payload.pop(key, None)
    fast, exact = _compiled(CALL, action, version), _validator(CALL, action, version)
    assert fast is not None and exact is not None
    try:
        fast(payload)
        fast_ok = True
    except Exception:
        fast_ok = False
    assert fast_ok == exact.is_valid(payload), (action, version, payload)
