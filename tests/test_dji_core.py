"""The DJI Cloud API's sans-I/O cores, table-driven: envelope bounds, topics, the dock's
partial-osd merge, topology, events and their replies, the service request book, presence.
No broker: these run in well under a second."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.mqtt.transport import MqttParams
from dronelink.dji import envelope
from dronelink.dji.envelope import Envelope, Rejection
from dronelink.dji.events import events_reply, progress_of
from dronelink.dji.link import DjiLink
from dronelink.dji.osd import DockMerge, aircraft_report
from dronelink.dji.presence import Presence
from dronelink.dji.services import (
    Finished,
    Ignored,
    Outgoing,
    ServiceBook,
    return_home_steps,
    speaker_steps,
    tts_md5,
)
from dronelink.dji.topics import TopicKind, parse_topic, reply_kind, subscriptions, topic
from dronelink.dji.topology import Topology, status_reply
from dronelink.model import CommandKind, CommandOutcome, CommandStatus, LinkState

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def env(**kw: Any) -> bytes:
    base: dict[str, Any] = {"tid": "t1", "bid": "b1", "timestamp": 1_700_000_000_000, "data": {}}
    base.update(kw)
    return json.dumps(base).encode()


# -- envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * (envelope.MAX_BYTES + 1), "too_large"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1,2]", "not_object"),
        (b'"str"', "not_object"),
        (env(tid=5), "bad_field"),
        (env(bid="x" * 500), "bad_field"),
        (env(method=["update_topo"]), "bad_field"),
        (env(timestamp="soon"), "bad_field"),
        (env(timestamp=True), "bad_field"),
        (env(timestamp=-1), "bad_field"),
        (env(data=[1]), "bad_field"),
        (env(data="x"), "bad_field"),
        (env(need_reply=2), "bad_field"),
        (env(need_reply="1"), "bad_field"),
        (b"[" * 100_00 + b"]" * 100_00, "not_json"),  # deep nesting: RecursionError caught
    ],
)
def test_envelope_rejections(raw: bytes, reason: str) -> None:
    got = envelope.parse(raw)
    assert isinstance(got, Rejection) and got.reason == reason, got


def test_envelope_reads_the_fields() -> None:
    got = envelope.parse(env(method="hms", gateway="DOCK1", need_reply=1, data={"a": 1}))
    assert got == Envelope("t1", "b1", 1_700_000_000_000, "hms", {"a": 1}, "DOCK1", True)
    osd = envelope.parse(b'{"tid":"t","bid":"b","timestamp":1,"data":{}}')
    assert isinstance(osd, Envelope) and osd.method == "" and not osd.need_reply


def test_envelope_reply_keeps_tid_bid_method() -> None:
    e = envelope.parse(env(method="hms", need_reply=1))
    assert isinstance(e, Envelope)
    out = json.loads(events_reply(e, 42))
    assert out == {
        "tid": "t1",
        "bid": "b1",
        "timestamp": 42,
        "method": "hms",
        "data": {"result": 0},
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_envelope_fuzz_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(envelope.parse(raw), Envelope | Rejection)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5)
    ),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        k: JSONISH
        for k in ("tid", "bid", "timestamp", "gateway", "method", "need_reply")
    }
    | {"data": st.dictionaries(st.sampled_from(
        ["latitude", "longitude", "height", "mode_code", "battery", "sub_devices",
         "drone_charge_state", "cover_state", "sub_device", "output", "result", "elevation",
         "attitude_head", "horizontal_speed", "drone_in_dock"]), JSONISH, max_size=8)},
)  # fmt: skip
TOPICS = st.sampled_from(
    ["thing/product/DOCK1/osd", "thing/product/AIR1/osd", "thing/product/DOCK1/state",
     "thing/product/DOCK1/events", "sys/product/DOCK1/status", "thing/product/DOCK1/services_reply",
     "thing/product/DOCK1/requests", "thing/product/+/osd", "nonsense"]
)  # fmt: skip


def quiet_link() -> tuple[DjiLink, list[Any]]:
    seen: list[Any] = []
    link = DjiLink(
        MqttParams("127.0.0.1", 1, "fuzz"),
        None,
        seen.append,
        seen.append,
        seen.append,
        lambda: T0,
    )
    return link, seen


@settings(max_examples=250, deadline=None)
@given(TOPICS, FIELDS)
def test_link_fuzz_structured_messages_never_raise(name: str, obj: dict[str, Any]) -> None:
    """Any JSON shape on any topic: the link either reports or counts a rejection."""
    link, seen = quiet_link()
    link._on_message(name, json.dumps(obj).encode())
    assert seen or link.counts or link.stats, (name, obj)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_link_fuzz_bytes_are_counted(raw: bytes) -> None:
    link, seen = quiet_link()
    link._on_message("thing/product/DOCK1/osd", raw)
    got = envelope.parse(raw)
    if isinstance(got, Rejection):
        assert link.counts == {got.reason: 1} and not seen


# -- topics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("thing/product/1581F5BKD/osd", (TopicKind.OSD, "1581F5BKD")),
        ("thing/product/D1/state", (TopicKind.STATE, "D1")),
        ("thing/product/D1/events", (TopicKind.EVENTS, "D1")),
        ("thing/product/D1/requests", (TopicKind.REQUESTS, "D1")),
        ("thing/product/D1/services_reply", (TopicKind.SERVICES_REPLY, "D1")),
        ("sys/product/D1/status", (TopicKind.STATUS, "D1")),
        ("sys/product/D1/osd", None),
        ("thing/product/D1/status", None),
        ("thing/product/D1/unknown", None),
        ("thing/product/+/osd", None),
        ("thing/product//osd", None),
        ("thing/product/D1/osd/extra", None),
        ("thing/device/D1/osd", None),
        ("$share/g/thing/product/D1/osd", None),
    ],
)
def test_topics_parse(name: str, want: Any) -> None:
    assert parse_topic(name) == want


def test_topics_round_trip_and_replies() -> None:
    for kind in TopicKind:
        assert parse_topic(topic(kind, "SN9")) == (kind, "SN9")
    assert reply_kind(TopicKind.EVENTS) is TopicKind.EVENTS_REPLY
    assert reply_kind(TopicKind.STATUS) is TopicKind.STATUS_REPLY
    assert reply_kind(TopicKind.OSD) is None
    with pytest.raises(ValueError, match="serial number"):
        topic(TopicKind.SERVICES, "a/#")


def test_subscriptions_share_uplinks_but_not_service_replies() -> None:
    subs = subscriptions("gw")
    assert "$share/gw/thing/product/+/osd" in subs and "$share/gw/sys/product/+/status" in subs
    assert "thing/product/+/services_reply" in subs
    assert not any(s.startswith("$share") and "services_reply" in s for s in subs)
    assert "thing/product/+/events" in subscriptions(None)


# -- osd --------------------------------------------------------------------------------


def test_dock_partial_osd_is_merged() -> None:
    m = DockMerge()
    r1 = m.merge(
        "D1", {"latitude": 38.78, "longitude": 101.08, "height": 30, "mode_code": 0}, T0, "A1"
    )
    assert not isinstance(r1, Rejection) and r1.mode == "idle" and r1.drone_in_dock is None
    r2 = m.merge(
        "D1",
        {"drone_in_dock": 1, "drone_charge_state": {"state": 1, "capacity_percent": 77}},
        T0,
        "A1",
    )
    assert not isinstance(r2, Rejection)
    assert r2.fix is not None and r2.fix.lat == 38.78  # kept from the first part
    assert (r2.drone_in_dock, r2.drone_charging, r2.drone_battery_percent) == (True, True, 77.0)
    r3 = m.merge("D1", {"cover_state": 1, "mode_code": 4}, T0, "A1")
    assert not isinstance(r3, Rejection)
    assert (r3.mode, r3.cover_state, r3.drone_battery_percent, r3.aircraft_key) == (
        "working",
        1,
        77.0,
        "A1",
    )
    bad = m.merge("D1", {"latitude": 95.0}, T0, "A1")
    assert isinstance(bad, Rejection) and bad.reason == "bad_coordinates"
    assert m.fields("D1")["latitude"] == 38.78  # a bad part changes nothing


@pytest.mark.parametrize(
    ("data", "want"),
    [
        ({"latitude": 38.7, "longitude": 101.1, "height": 150.2, "elevation": 120.0,
          "horizontal_speed": 9.5, "attitude_head": -90, "battery": {"capacity_percent": 80},
          "mode_code": 9}, ("returning_home", True, 80.0, 270.0)),
        ({"latitude": 0, "longitude": 0, "mode_code": 0}, ("standby", False, None, None)),
        ({"mode_code": 14}, ("disconnected", False, None, None)),
        ({"mode_code": 10}, ("landing", True, None, None)),
        ({"mode_code": 5, "battery": None}, ("wayline", True, None, None)),
    ],
)  # fmt: skip
def test_aircraft_osd(data: dict[str, Any], want: tuple[Any, ...]) -> None:
    r = aircraft_report("A1", data, T0, "D1")
    assert not isinstance(r, Rejection)
    assert (r.mode, r.flying, r.battery_percent, r.fix.heading_deg if r.fix else None) == want
    assert r.source == "dji" and r.dock_key == "D1" and r.link is LinkState.ONLINE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"latitude": 91, "longitude": 1}, "bad_coordinates"),
        ({"latitude": 10, "longitude": -181}, "bad_coordinates"),
        ({"latitude": 10, "longitude": 10, "height": 1e7}, "bad_coordinates"),
        ({"latitude": "north", "longitude": 10}, "bad_field"),
        ({"latitude": float("nan"), "longitude": 10}, "bad_field"),
        ({"latitude": 10, "longitude": 10, "horizontal_speed": 900}, "bad_field"),
        ({"battery": {"capacity_percent": 250}}, "bad_field"),
        ({"battery": [1]}, "bad_field"),
        ({"mode_code": "9"}, "bad_field"),
        ({"mode_code": True}, "bad_field"),
    ],
)
def test_aircraft_osd_rejections(data: dict[str, Any], reason: str) -> None:
    r = aircraft_report("A1", data, T0, None)
    assert isinstance(r, Rejection) and r.reason == reason


# -- topology ---------------------------------------------------------------------------


def test_update_topo_pairs_and_empty_means_offline() -> None:
    t = Topology()
    c = t.update_topo("D1", {"sub_devices": [{"sn": "A1", "type": 67, "index": "A"}]})
    assert not isinstance(c, Rejection) and (c.aircraft_sn, c.gone) == ("A1", ())
    assert t.dock_of("A1") == "D1" and t.aircraft_of("D1") == "A1"
    c = t.update_topo("D1", {"sub_devices": []})
    assert not isinstance(c, Rejection) and (c.aircraft_sn, c.gone) == (None, ("A1",))
    assert t.dock_of("A1") is None
    assert t.learn("D1", "A1") is not None and t.learn("D1", "A1") is None  # news only once
    for bad in (
        {"sub_devices": "A1"},
        {"sub_devices": [{"type": 1}]},
        {"sub_devices": [{"sn": "a/#"}]},
    ):
        got = t.update_topo("D1", bad)
        assert isinstance(got, Rejection) and got.reason == "bad_field"
    assert t.dock_of("A1") == "D1"  # a bad update changes nothing


def test_status_reply_echoes_tid_and_bid() -> None:
    e = envelope.parse(env(method="update_topo", tid="T9", bid="B9"))
    assert isinstance(e, Envelope)
    out = json.loads(status_reply(e, 7))
    assert (out["tid"], out["bid"], out["method"], out["data"]) == (
        "T9",
        "B9",
        "update_topo",
        {"result": 0},
    )


# -- events -----------------------------------------------------------------------------


TTS = "speaker_tts_play_start_progress"
IP, OK, FAILED = CommandStatus.IN_PROGRESS, CommandStatus.OK, CommandStatus.FAILED


@pytest.mark.parametrize(
    ("method", "data", "status", "percent"),
    [
        (TTS, {"output": {"status": "in_progress", "progress": {"percent": 40}}}, IP, 40),
        (TTS, {"result": 0, "output": {"status": "ok"}}, OK, None),
        (TTS, {"result": 0, "output": {"status": "success"}}, OK, None),
        (TTS, {"result": 0, "output": {"status": "failed"}}, FAILED, None),
        (TTS, {"result": 316001, "output": {"status": "in_progress"}}, FAILED, None),
        (TTS, {"output": {"status": "weird", "progress": {"percent": 900}}}, IP, None),
        (TTS, {"output": "x"}, IP, None),
        ("return_home_info", {"planned_path_points": []}, IP, None),
    ],
)  # fmt: skip
def test_progress_events(
    method: str, data: dict[str, Any], status: CommandStatus, percent: int | None
) -> None:
    e = envelope.parse(env(method=method, bid="CMD1", data=data))
    assert isinstance(e, Envelope)
    p = progress_of(e, T0)
    assert p is not None and (p.command_id, p.status, p.percent) == ("CMD1", status, percent)


def test_other_events_are_not_progress() -> None:
    for kw in ({"method": "hms"}, {"method": "return_home_info", "bid": ""}):
        e = envelope.parse(env(**kw))
        assert isinstance(e, Envelope) and progress_of(e, T0) is None


# -- the service book -------------------------------------------------------------------


def tids() -> Any:
    n = iter(range(1, 1000))
    return lambda: f"tid{next(n)}"


def reply(
    tid: str, bid: str, result: Any = 0, status: str | None = None, method: str = "m"
) -> Envelope:
    data: dict[str, Any] = {"result": result}
    if status is not None:
        data["output"] = {"status": status}
    return Envelope(tid, bid, 0, method, data)


def test_book_request_shape_and_match_on_tid_and_bid() -> None:
    book = ServiceBook(5, 2, new_tid=tids())
    out = book.start("CMD", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    assert out.topic == "thing/product/D1/services"
    sent = json.loads(out.payload)
    assert (sent["tid"], sent["bid"], sent["method"], sent["data"]) == (
        "tid1",
        "CMD",
        "return_home",
        {},
    )
    assert book.on_reply(reply("tid1", "OTHER"), T0) == Ignored("reply_bid_mismatch")
    assert book.on_reply(reply("tidX", "CMD"), T0) == Ignored("reply_unknown")
    done = book.on_reply(reply("tid1", "CMD", 0, "in_progress"), T0)
    assert isinstance(done, Finished) and done.outcome.status is CommandStatus.IN_PROGRESS
    assert book.on_reply(reply("tid1", "CMD"), T0) == Ignored("reply_duplicate")
    assert len(book) == 0


@pytest.mark.parametrize(
    ("result", "status", "want"),
    [
        (0, None, CommandStatus.OK), (0, "ok", CommandStatus.OK), (0, "sent", CommandStatus.OK),
        (0, "in_progress", CommandStatus.IN_PROGRESS), (0, "canceled", CommandStatus.CANCELED),
        (0, "rejected", CommandStatus.REJECTED), (0, "timeout", CommandStatus.TIMEOUT),
        (0, "failed", CommandStatus.FAILED), (314001, None, CommandStatus.FAILED),
        (314001, "rejected", CommandStatus.REJECTED), ("0", None, CommandStatus.FAILED),
        (None, None, CommandStatus.FAILED),
    ],
)  # fmt: skip
def test_book_reply_status(result: Any, status: str | None, want: CommandStatus) -> None:
    book = ServiceBook(5, 2, new_tid=tids())
    book.start("C", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    done = book.on_reply(reply("tid1", "C", result, status), T0)
    assert isinstance(done, Finished) and done.outcome.status is want
    if isinstance(result, int) and result:
        assert done.outcome.result_code == result


def test_book_retries_with_same_bid_then_times_out_and_late_reply_is_ignored() -> None:
    book = ServiceBook(2, 2, new_tid=tids())
    book.start("C", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    assert book.due(T0 + timedelta(seconds=1.9)) == []
    sent = []
    for k in (1, 2):
        (out,) = book.due(T0 + timedelta(seconds=2.0 * k))
        assert isinstance(out, Outgoing) and out.attempt == k + 1
        sent.append(json.loads(out.payload))
    assert [s["bid"] for s in sent] == ["C", "C"] and [s["tid"] for s in sent] == ["tid2", "tid3"]
    (end,) = book.due(T0 + timedelta(seconds=6.0))
    assert isinstance(end, Finished) and end.outcome == CommandOutcome(
        CommandStatus.TIMEOUT, 3, None, "return_home: no reply after 3 tries"
    )
    assert book.on_reply(reply("tid2", "C"), T0 + timedelta(seconds=7)) == Ignored("reply_late")


def test_book_accepts_the_reply_to_an_earlier_try() -> None:
    book = ServiceBook(1, 3, new_tid=tids())
    book.start("C", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    book.due(T0 + timedelta(seconds=1))  # tid2 on the wire
    done = book.on_reply(reply("tid1", "C"), T0 + timedelta(seconds=1.1))
    assert isinstance(done, Finished) and done.outcome.attempts == 2
    assert book.on_reply(reply("tid2", "C"), T0) == Ignored("reply_duplicate")


def test_book_speaker_plan_and_settings_memory() -> None:
    steps = speaker_steps("请勿停车", 80, True, 2)
    assert [s.method for s in steps] == [
        "speaker_play_volume_set", "speaker_play_mode_set", "speaker_tts_play_start",
    ]  # fmt: skip
    assert steps[0].data == {"psdk_index": 2, "play_volume": 80}
    assert steps[1].data == {"psdk_index": 2, "play_mode": 1}
    tts = steps[2].data["tts"]
    assert tts["text"] == "请勿停车" and tts["md5"] == tts_md5("请勿停车") and len(tts["md5"]) == 32
    book = ServiceBook(5, 0, new_tid=tids())
    out = book.start("S", CommandKind.SPEAKER, "D1", steps, T0)
    for i in (1, 2):
        nxt = book.on_reply(reply(f"tid{i}", "S"), T0)
        assert isinstance(nxt, Outgoing) and json.loads(nxt.payload)["bid"] == "S"
    assert isinstance(book.on_reply(reply("tid3", "S"), T0), Finished)
    assert book.speaker_settings["D1"] == (80, 1)
    again = speaker_steps("x", 80, True, 2, book.speaker_settings["D1"])
    assert [s.method for s in again] == ["speaker_tts_play_start"]
    first = speaker_steps("x", 80, False, 2, (80, 1))[0]
    assert first.method == "speaker_play_mode_set"
    assert out.method == "speaker_play_volume_set"


def test_book_failure_midway_ends_the_command() -> None:
    book = ServiceBook(5, 0, new_tid=tids())
    book.start("S", CommandKind.SPEAKER, "D1", speaker_steps("x", 50, False, 0), T0)
    done = book.on_reply(reply("tid1", "S", 316002), T0)
    assert isinstance(done, Finished) and done.outcome.status is CommandStatus.FAILED
    assert "speaker_play_volume_set" in done.outcome.detail and len(book) == 0


def test_book_resolve_and_guards() -> None:
    book = ServiceBook(5, 0, new_tid=tids())
    book.start("C", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    with pytest.raises(ValueError, match="in flight"):
        book.start("C", CommandKind.RETURN_HOME, "D1", return_home_steps(), T0)
    done = book.resolve("C", CommandOutcome(CommandStatus.OK))
    assert done is not None and book.resolve("C", CommandOutcome(CommandStatus.OK)) is None
    assert book.on_reply(reply("tid1", "C"), T0) == Ignored("reply_late")
    with pytest.raises(ValueError, match="reply_timeout_s"):
        ServiceBook(0, 1)


# -- presence ---------------------------------------------------------------------------


def test_presence_times_out_once_and_comes_back_with_the_next_message() -> None:
    p = Presence(10)
    assert p.state("D1") is LinkState.UNKNOWN
    assert p.seen("D1", T0) is True and p.seen("D1", T0 + timedelta(seconds=5)) is False
    assert p.expire(T0 + timedelta(seconds=14)) == []
    assert p.expire(T0 + timedelta(seconds=15.1)) == ["D1"]
    assert p.expire(T0 + timedelta(seconds=30)) == []  # reported once
    assert p.state("D1") is LinkState.LOST
    assert p.seen("D1", T0 + timedelta(seconds=31)) is True
    assert p.state("D1") is LinkState.ONLINE
    assert Presence(10).state("D1") is LinkState.UNKNOWN  # a restart remembers nothing


def test_requests_config_answered_and_others_unsupported_with_the_same_tid_and_bid() -> None:
    import json

    from dronelink.dji.requests import UNSUPPORTED, RequestAnswers, answer

    answers = RequestAnswers("10.0.0.5", "app", "k", "l")
    for method, label, data in (
        ("config", "config",
         {"ntp_server_host": "10.0.0.5", "app_id": "app", "app_key": "k", "app_license": "l"}),
        ("flighttask_resource_get", "unsupported:flighttask_resource_get",
         {"result": UNSUPPORTED}),
        ("x" * 40, "unsupported:other", {"result": UNSUPPORTED}),
    ):  # fmt: skip
        got = envelope.parse(env(method=method, gateway="DOCK1"))
        assert isinstance(got, Envelope)
        payload, counted = answer(got, answers, 5)
        out = json.loads(payload)
        assert (out["tid"], out["bid"], out["method"], out["data"]) == (
            got.tid, got.bid, method, data,
        )  # fmt: skip
        assert counted == label


def test_an_id_with_a_lone_surrogate_is_rejected_not_a_crash_of_the_reply() -> None:
    """Found by ``make fuzz`` (dji.messages): json.loads lets a UTF-8-encoded surrogate
    through, and the status reply echoing that tid raised UnicodeEncodeError out of the
    link's message handler; the envelope now refuses such an id."""
    raw = b'{"tid":"\xed\xa0\x80","bid":"b","method":"update_topo","data":{"sub_devices":[]}}'
    got = envelope.parse(raw)
    assert isinstance(got, Rejection) and got.reason == "bad_field" and "tid" in got.detail
    link, _ = quiet_link()
    link._on_message("sys/product/DOCK1/status", raw)
    assert link.counts == {"bad_field": 1}
