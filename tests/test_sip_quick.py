"""The quick lane means what the general way means: over generated routine requests (and
mutations of them), whatever ``read_quick`` / ``quick_manscdp`` accept parses the same by
``parse_message`` / ``parse_manscdp``, keys the same transaction, and is answered with the
very bytes ``response_to(stamp_received(...))`` builds; and the shapes the cams send do take
the lane (else it would be dead code that only looked fast)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.gb28181.device import (
    Fix,
    keepalive_body,
    mobile_position_body,
    mobile_position_list_body,
)
from drivers.gb28181.manscdp import parse_manscdp
from drivers.gb28181.quick import quick_manscdp
from drivers.gb28181.xmlsafe import ManscdpError
from drivers.sip.errors import SipParseError
from drivers.sip.message import parse_message, stamp_received
from drivers.sip.quick import _CANONICAL, quick_response, read_lines, read_quick
from drivers.sip.responses import response_to
from drivers.sip.transactions import server_key
from gateway.demo.bodycam_requests import CamAddress, Dialog, message, notify

TZ = ZoneInfo("Asia/Shanghai")
CAM = "62072500081380000001"
OTHER = "62072500081380000002"
PLATFORM = "62072500082000000001"
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _request(
    method: str,
    order: list[int],
    extra: list[tuple[str, str]],
    to_tag: str | None,
    via_params: str,
    body: bytes,
    length_delta: int = 0,
) -> bytes:
    core = [
        ("Via", f"SIP/2.0/UDP 10.1.2.3:5060{via_params}"),
        ("From", f"<sip:{CAM}@6207250008>;tag=f1"),
        ("To", f"<sip:{PLATFORM}@6207250008>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", "c0ffee-1"),
        ("CSeq", f"7 {method}"),
        ("Content-Type", "Application/MANSCDP+xml"),
        ("Content-Length", str(len(body) + length_delta)),
    ]
    fields = [core[i % len(core)] for i in order] if order else core
    fields = list(dict.fromkeys(fields)) + [f for f in core if f not in fields] + extra
    head = f"{method} sip:{PLATFORM}@6207250008 SIP/2.0\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in fields)
    return head.encode() + b"\r\n" + body


def _same_meaning(data: bytes, source: tuple[str, int]) -> bool:
    """Whether the lane took *data*; when it did, the general way agrees on everything."""
    q = read_quick(data, 65536)
    if q is None:
        return False
    req = parse_message(data)  # the lane took it: the general way must too
    assert req.method == q.method and req.uri == q.uri and req.body == q.body
    assert server_key(req) == q.key
    assert req.from_.uri == q.from_uri and req.from_.tag == q.from_tag
    assert req.content_type == q.content_type
    general = response_to(stamp_received(req, source), 200).to_bytes()
    assert quick_response(q, source) == general
    return True


def _fix(i: int, lon: float = 101.07, lat: float = 38.77) -> Fix:
    return Fix(T0 + timedelta(seconds=i), lon, lat, 12.5, 90.0)


BODIES = [
    keepalive_body(1, CAM),
    mobile_position_body(2, CAM, _fix(1), TZ),
    mobile_position_list_body(3, CAM, [(CAM, _fix(2))], TZ),
    mobile_position_list_body(4, CAM, [(CAM, _fix(3)), (OTHER, _fix(4))], TZ),
]


@given(
    method=st.sampled_from(["MESSAGE", "NOTIFY"]),
    order=st.lists(st.integers(0, 6), max_size=7),
    extra=st.lists(
        st.sampled_from(
            [
                ("Max-Forwards", "70"),
                ("User-Agent", "IPC V5.5"),
                ("X-GB-Ver", "3.0"),
                ("Event", "presence"),
                ("Subscription-State", "active;expires=60"),
                ("Contact", f"<sip:{CAM}@10.1.2.3:5060>"),
                ("Via", "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKproxy"),
                ("i", "compact-call-id"),
                ("X-Unknown", "1"),
                ("CSeq", "8 MESSAGE"),
            ]
        ),
        max_size=3,
        unique=True,
    ),
    to_tag=st.sampled_from([None, "p1", "abc.def"]),
    via_params=st.sampled_from(
        [
            ";rport;branch=z9hG4bK1a2b",
            ";branch=z9hG4bK1a2b;rport",
            ";branch=z9hG4bK1a2b",
            ";branch=1a2b",
            ";branch=z9hG4bK1a2b;received=10.1.2.3",
            "",
            # the lane reads the parameters itself: names in any case, repeats, flags,
            # values with "=", and shapes the general way refuses
            ";BRANCH=z9hG4bK1a2b;Rport",
            ";branch=z9hG4bK1a2b;branch=z9hG4bKother;rport=",
            ";branch=z9hG4bK1a2b;x=a=b;ttl=1",
            ";branch=z9hG4bK1a2b;=x",
            ";branch=z9hG4bK1a2b" + ";p" * 40,
        ]
    ),
    body=st.sampled_from(BODIES),
    length_delta=st.sampled_from([0, 0, 0, -1, 1]),
    source=st.sampled_from([("10.1.2.3", 5060), ("192.0.2.7", 40001)]),
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_whatever_the_lane_takes_the_general_way_reads_and_answers_the_same(
    method: str,
    order: list[int],
    extra: list[tuple[str, str]],
    to_tag: str | None,
    via_params: str,
    body: bytes,
    length_delta: int,
    source: tuple[str, int],
) -> None:
    data = _request(method, order, extra, to_tag, via_params, body, length_delta)
    took = _same_meaning(data, source)
    if (
        length_delta
        or via_params in ("", ";branch=1a2b", ";branch=z9hG4bK1a2b;=x")
        or via_params.count(";") > 32  # more parameters than the general way takes
        or any(n in ("Via", "i", "X-Unknown", "CSeq") for n, _ in extra)
    ):
        assert not took  # not the routine shape: the general way decides
    else:
        assert took


@given(data=st.binary(max_size=600), cut=st.integers(0, 700), junk=st.binary(max_size=8))
@settings(max_examples=300, deadline=None)
def test_mutated_requests_never_raise_and_still_agree(data: bytes, cut: int, junk: bytes) -> None:
    base = _request("MESSAGE", [], [], None, ";rport;branch=z9hG4bKx1", BODIES[1])
    for sample in (data, base[:cut] + junk + base[cut + len(junk) :]):
        try:
            _same_meaning(sample, ("10.1.2.3", 5060))
        except SipParseError:
            pytest.fail("the lane took a request the general way refuses")


def _values(draw: st.DrawFn) -> dict[str, str]:
    num = st.one_of(
        st.sampled_from(
            ["101.07", "38.77", "38.77", "0", "-1", "12.5", "400", "1e3", "nan", "", " 7 "]
        ),
        st.floats(0, 89, allow_nan=False).map(lambda f: f"{f:.6f}"),
        st.floats(-200, 200, allow_nan=False).map(lambda f: f"{f:.6f}"),
    )
    times = st.sampled_from(
        ["2026-12-02T16:00:05", "2026-12-02T16:00:05", "2026-12-02T16:00:05",
         "2026-12-02 16:00:05", "2026-12-02T16:00:05.123", "1999-01-01T00:00:00",
         "2026-13-40T00:00:00", "", "2026-12-02T16:00:05+08:00", "2026-12-02T08:00:05Z"]
    )  # fmt: skip
    return {
        "Time": draw(times),
        "CaptureTime": draw(times),
        "Longitude": draw(num),
        "Latitude": draw(num),
        "Speed": draw(num),
        "Direction": draw(num),
        "Altitude": draw(num),
    }


@st.composite
def manscdp_bodies(draw: st.DrawFn) -> bytes:
    cmd = draw(
        st.sampled_from(["Keepalive", "MobilePosition", "MobilePosition", "keepalive", "Alarm", ""])
    )
    dev = draw(st.sampled_from([CAM, CAM, CAM, OTHER, "123", ""]))
    fields = [("CmdType", cmd), ("SN", draw(st.sampled_from(["17", "17", "0", "x", "", "9" * 20]))),
              ("DeviceID", dev)]  # fmt: skip
    if draw(st.booleans()):
        fields.append(("Status", draw(st.sampled_from(["OK", "ok", "", "ERROR"]))))
    vals = _values(draw)
    items = ""
    if cmd == "MobilePosition" and draw(st.booleans()):
        n = draw(st.integers(0, 3))
        for _ in range(n):
            names = draw(st.lists(st.sampled_from([*sorted(vals), "DeviceID", "TargetID"]),
                                  unique=True, min_size=3, max_size=9))  # fmt: skip
            ids = {"DeviceID": CAM, "TargetID": draw(st.sampled_from([CAM, OTHER, ""]))}
            inner = "".join(f"<{k}>{ids.get(k, vals.get(k, ''))}</{k}>" for k in names)
            items += f"<Item>{inner}</Item>"
        fields.append(("SumNum", draw(st.sampled_from(["1", "1", "2", "-1", "x"]))))
        items = f'<DeviceList Num="{n}">{items}</DeviceList>'
    else:
        flat = [k for k in sorted(vals) if k != "CaptureTime" or draw(st.booleans())]
        for k in draw(st.lists(st.sampled_from(flat), unique=True, min_size=2, max_size=7)):
            fields.append((k, vals[k]))
    fields = draw(st.permutations(fields))
    inner = "".join(f"<{k}>{v}</{k}>\r\n" for k, v in fields)
    decl = draw(st.sampled_from(['<?xml version="1.0" encoding="GB2312"?>\r\n', "",
                                 '<?xml version="1.0" encoding="UTF-8"?>']))  # fmt: skip
    return f"{decl}<Notify>\r\n{inner}{items}</Notify>\r\n".encode()


@given(body=manscdp_bodies(), charset=st.sampled_from([None, "GB2312", "utf-8", "x-unknown"]))
@settings(max_examples=600, deadline=None)
def test_whatever_the_lane_reads_parse_manscdp_reads_the_same(
    body: bytes, charset: str | None
) -> None:
    quick = quick_manscdp(body, TZ)
    try:
        general = parse_manscdp(body, charset, tz=TZ)
    except ManscdpError:
        assert quick is None, "the lane took a body the general way refuses"
        return
    if quick is not None:
        assert quick == general


@given(body=st.binary(max_size=400), cut=st.integers(0, 420), junk=st.binary(max_size=6))
@settings(max_examples=300, deadline=None)
def test_mutated_bodies_never_raise_and_still_agree(body: bytes, cut: int, junk: bytes) -> None:
    base = BODIES[cut % len(BODIES)]
    for sample in (body, base[:cut] + junk + base[cut + len(junk) :]):
        quick = quick_manscdp(sample, TZ)
        if quick is not None:
            assert parse_manscdp(sample, tz=TZ) == quick


def test_the_shapes_the_cams_send_take_the_lane() -> None:
    cam = CamAddress(CAM, PLATFORM, "6207250008", ("10.1.2.3", 5060), ("10.0.0.1", 5060))
    for body in BODIES:
        assert quick_manscdp(body, TZ) == parse_manscdp(body, tz=TZ)
        out = message(cam, body, call_id="k1", from_tag="f9", cseq=3)
        assert _same_meaning(out.to_bytes(), ("10.1.2.3", 5060))
    dialog = Dialog("d1", "l1", "r1", f"sip:{PLATFORM}@6207250008", ("10.0.0.1", 5060), 100.0, 5)
    out = notify(cam, dialog, BODIES[1], 40.0)
    assert _same_meaning(out.to_bytes(), ("10.1.2.3", 5060))
    assert quick_manscdp(b"<Notify><CmdType>Alarm</CmdType></Notify>", TZ) is None  # not routine


def test_a_via_with_too_many_parameters_takes_the_general_way() -> None:
    """Found by ``make fuzz`` (sip.quick): ``parse_via`` raised ``too_many_params`` out of
    ``read_quick`` (the endpoint then logged a traceback and dropped the datagram as a
    handler error); the lane now gives None and the general way refuses it with its reason."""
    params = ";branch=port" * 50 + ";branch=z9hG4bK326591410"
    data = _request("MESSAGE", [], [], None, params, b"<Notify/>")
    assert read_quick(data, 8192) is None
    with pytest.raises(SipParseError, match="too_many_params"):
        parse_message(data).top_via  # noqa: B018


def test_repeated_other_headers_take_the_lane_and_bare_line_breaks_do_not() -> None:
    """The header map is built in one pass, the line-by-line rule only for a repeated name:
    a repeated User-Agent still takes the lane (and agrees), a repeated To or a CR or LF
    inside a line does not."""
    ua = [("User-Agent", "IPC V5.5"), ("User-Agent", "IPC V5.6")]
    data = _request("MESSAGE", [], ua, None, ";rport;branch=z9hG4bK1a2b", BODIES[0])
    assert _same_meaning(data, ("10.1.2.3", 5060))
    to = [("To", f"<sip:{PLATFORM}@6207250008>")]
    assert (
        read_quick(_request("MESSAGE", [], to, None, ";branch=z9hG4bK1", BODIES[0]), 8192) is None
    )
    for junk in (b"\n", b"\r", b"\n\r"):
        good = _request("MESSAGE", [], [], None, ";rport;branch=z9hG4bK1a2b", BODIES[0])
        bad = good.replace(b"Call-ID: c0ffee-1", b"Call-ID: c0ffee" + junk + b"-1")
        assert read_quick(good, 8192) is not None and read_quick(bad, 8192) is None
    no_colon = good.replace(b"Content-Type: ", b"Content-Type:")
    assert read_quick(no_colon, 8192) is None


@given(
    method=st.sampled_from(["MESSAGE", "NOTIFY"]),
    order=st.lists(st.integers(0, 6), max_size=7),
    extra=st.lists(
        st.sampled_from(
            [
                ("Max-Forwards", "70"),
                ("User-Agent", "IPC V5.5"),
                ("X-GB-Ver", "3.0"),
                ("Event", "presence"),
                ("Subscription-State", "active;expires=60"),
                ("Contact", f"<sip:{CAM}@10.1.2.3:5060>"),
                ("Via", "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKproxy"),
                ("i", "compact-call-id"),
                ("X-Unknown", "1"),
                ("CSeq", "8 MESSAGE"),
            ]
        ),
        max_size=3,
        unique=True,
    ),
    to_tag=st.sampled_from([None, "p1", "abc.def"]),
    via_params=st.sampled_from(
        [
            ";rport;branch=z9hG4bK1a2b",
            ";branch=z9hG4bK1a2b;rport",
            ";branch=z9hG4bK1a2b",
            ";branch=1a2b",
            ";branch=z9hG4bK1a2b;received=10.1.2.3",
            "",
            # the lane reads the parameters itself: names in any case, repeats, flags,
            # values with "=", and shapes the general way refuses
            ";BRANCH=z9hG4bK1a2b;Rport",
            ";branch=z9hG4bK1a2b;branch=z9hG4bKother;rport=",
            ";branch=z9hG4bK1a2b;x=a=b;ttl=1",
            ";branch=z9hG4bK1a2b;=x",
            ";branch=z9hG4bK1a2b" + ";p" * 40,
        ]
    ),
    body=st.sampled_from(BODIES),
    length_delta=st.sampled_from([0, 0, 0, -1, 1]),
    source=st.sampled_from([("10.1.2.3", 5060), ("192.0.2.7", 40001)]),
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_the_canonical_pattern_reads_what_the_line_by_line_reading_reads(
    method: str,
    order: list[int],
    extra: list[tuple[str, str]],
    to_tag: str | None,
    via_params: str,
    body: bytes,
    length_delta: int,
    source: tuple[str, int],
) -> None:
    """``read_quick`` tries one pattern over the datagram first: whatever it reads, the line
    by line reading (``read_lines``) reads to the very same request."""
    data = _request(method, order, extra, to_tag, via_params, body, length_delta)
    for sample in (
        data,
        data.replace(b": ", b":  ", 1),
        data.replace(b"\r\nTo", b"\r\nX: 1\r\nTo"),
    ):
        assert read_quick(sample, 65536) == read_lines(sample, 65536)


@given(data=st.binary(max_size=600), cut=st.integers(0, 700), junk=st.binary(max_size=8))
@settings(max_examples=500, deadline=None)
def test_the_canonical_pattern_agrees_on_mutated_requests(
    data: bytes, cut: int, junk: bytes
) -> None:
    base = _request("NOTIFY", [], [], "p1", ";rport;branch=z9hG4bKx1", BODIES[1])
    assert _CANONICAL.fullmatch(base) is not None
    for sample in (data, base[:cut] + junk + base[cut + len(junk) :], base[:cut] + base[cut + 1 :]):
        assert read_quick(sample, 65536) == read_lines(sample, 65536)


def test_what_the_simulated_cams_send_takes_the_canonical_pattern() -> None:
    cam = CamAddress(CAM, PLATFORM, "6207250008", ("10.1.2.3", 5060), ("10.0.0.1", 5060))
    dialog = Dialog("d1", "l1", "r1", f"sip:{PLATFORM}@6207250008", ("10.0.0.1", 5060), 100.0, 5)
    for out in (
        message(cam, BODIES[0], call_id="k1", from_tag="f9", cseq=3),
        notify(cam, dialog, BODIES[1], 40.0),
    ):
        data = out.to_bytes()
        assert _CANONICAL.fullmatch(data) is not None, data
        assert read_quick(data, 8192) == read_lines(data, 8192) is not None
        assert read_quick(data, len(data) - 1) is None  # the size bound first
        for port in (b"0", b"65536", b"99999"):
            bad = data.replace(b"10.1.2.3:5060;", b"10.1.2.3:" + port + b";", 1)
            assert bad != data and read_quick(bad, 8192) is None
        method = data.split(b" ", 1)[0]
        swapped = b"NOTIFY" if method == b"MESSAGE" else b"MESSAGE"
        other = data.replace(b" " + method + b"\r\n", b" " + swapped + b"\r\n", 1)
        assert other != data and read_quick(other, 8192) is None  # CSeq's method: the request's
