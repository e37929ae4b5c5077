"""SIP core: the messages GB/T 28181 body cams really send, parsed, rebuilt, and refused.

Samples follow captures published for Hikvision/Dahua-style cams and the GB/T 28181-2016/2022
annex examples (ids, realm = first 10 digits of the platform id, GB2312 XML bodies).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    SipStreamParser,
    fill_received,
    parse_cseq,
    parse_message,
    parse_name_addr,
    parse_params,
    parse_via,
    stamp_received,
)
from drivers.sip.responses import response_to

CRLF = b"\r\n"
CAM = "34020000001320000001"
PLATFORM = "34020000002000000001"


def wire(*lines: str, body: bytes = b"") -> bytes:
    return CRLF.join(line.encode() for line in lines) + CRLF + CRLF + body


REGISTER_2016 = wire(
    f"REGISTER sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1371463273",
    f"From: <sip:{CAM}@3402000000>;tag=2043466181",
    f"To: <sip:{CAM}@3402000000>",
    "Call-ID: 1011047669",
    "CSeq: 1 REGISTER",
    f"Contact: <sip:{CAM}@192.168.1.64:5060>",
    "Max-Forwards: 70",
    "User-Agent: IP Camera",
    "Expires: 3600",
    "Content-Length: 0",
)
REGISTER_2022_AUTH = wire(
    f"REGISTER sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-524287-1---6a4b;rport",
    "Max-Forwards: 70",
    f'From: "DH-BodyCam" <sip:{CAM}@3402000000>;tag=8a1bc2',
    f"To: <sip:{CAM}@3402000000>",
    "Call-ID: 9d2c4f0e@10.0.0.7",
    "CSeq: 2 REGISTER",
    f"Contact: <sip:{CAM}@10.0.0.7:5060>;expires=3600",
    f'Authorization: Digest username="{CAM}", realm="3402000000", '
    f'nonce="1a2b3c", uri="sip:{PLATFORM}@3402000000", '
    'response="0123456789abcdef0123456789abcdef", algorithm=MD5',
    "X-GB-Ver: 3.0",
    "Expires: 3600",
    "Content-Length: 0",
)
KEEPALIVE_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
    f"<SN>43</SN>\r\n<DeviceID>{CAM}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
).encode("gb2312")
KEEPALIVE = wire(
    f"MESSAGE sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK326591410",
    f"From: <sip:{CAM}@3402000000>;tag=2112416544",
    f"To: <sip:{PLATFORM}@3402000000>",
    "Call-ID: 1530063906",
    "CSeq: 20 MESSAGE",
    "Content-Type: Application/MANSCDP+xml",
    "Max-Forwards: 70",
    "User-Agent: IP Camera",
    "X-GB-Ver: 2.0",
    f"Content-Length: {len(KEEPALIVE_BODY)}",
    body=KEEPALIVE_BODY,
)
CATALOG_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\n<Response>\n<CmdType>Catalog</CmdType>\n'
    f'<SN>7</SN>\n<DeviceID>{CAM}</DeviceID>\n<SumNum>2</SumNum>\n<DeviceList Num="1">\n'
    f"<Item><DeviceID>{CAM[:-1]}2</DeviceID><Name>执法记录仪-城管一中队</Name>"
    "<Manufacturer>海康威视</Manufacturer><Status>ON</Status></Item>\n</DeviceList>\n</Response>\n"
).encode("gb2312")
CATALOG = wire(
    f"MESSAGE sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/TCP 10.0.0.7:5060;branch=z9hG4bKcat1",
    f"From: <sip:{CAM}@3402000000>;tag=cat",
    f"To: <sip:{PLATFORM}@3402000000>",
    "Call-ID: cat-1@10.0.0.7",
    "CSeq: 3 MESSAGE",
    "Content-Type: Application/MANSCDP+xml;charset=GB2312",
    f"Content-Length: {len(CATALOG_BODY)}",
    body=CATALOG_BODY,
)
SUBSCRIBE_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>MobilePosition</CmdType>\r\n'
    f"<SN>17430</SN>\r\n<DeviceID>{CAM}</DeviceID>\r\n<Interval>5</Interval>\r\n</Query>\r\n"
).encode()
SUBSCRIBE = wire(
    f"SUBSCRIBE sip:{CAM}@192.168.1.64:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 192.168.1.10:5060;rport;branch=z9hG4bK5f1a",
    f"From: <sip:{PLATFORM}@3402000000>;tag=p1",
    f"To: <sip:{CAM}@3402000000>",
    "Call-ID: sub-88@192.168.1.10",
    "CSeq: 1 SUBSCRIBE",
    f"Contact: <sip:{PLATFORM}@192.168.1.10:5060>",
    "Event: presence",
    "Expires: 3600",
    "Content-Type: Application/MANSCDP+xml",
    f"Content-Length: {len(SUBSCRIBE_BODY)}",
    body=SUBSCRIBE_BODY,
)
POSITION_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\n<Notify>\n<CmdType>MobilePosition</CmdType>\n'
    f"<SN>5</SN>\n<DeviceID>{CAM}</DeviceID>\n<Time>2026-12-02T14:00:05</Time>\n"
    "<Longitude>101.0812</Longitude>\n<Latitude>38.7810</Latitude>\n<Speed>3.2</Speed>\n"
    "</Notify>\n"
).encode()
COMPACT = wire(
    f"MESSAGE sip:{PLATFORM}@3402000000 SIP/2.0",
    "v: SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bKcompact",
    f"f: <sip:{CAM}@3402000000>;tag=c1",
    f"t: <sip:{PLATFORM}@3402000000>",
    "i: compact-1",
    "CSeq: 4 MESSAGE",
    "c: Application/MANSCDP+xml",
    f"l: {len(POSITION_BODY)}",
    body=POSITION_BODY,
)
FOLDED = wire(
    f"REGISTER sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bKfold",
    f"From: <sip:{CAM}@3402000000>",
    "   ;tag=fold1",
    f"To: <sip:{CAM}@3402000000>",
    "Call-ID: fold-1",
    "CSeq: 1",
    "\tREGISTER",
    "User-Agent: Cam",
    " Firmware 5.5",
    "Expires: 3600",
    "Content-Length: 0",
)
MULTI_VIA = wire(
    f"MESSAGE sip:{PLATFORM}@3402000000 SIP/2.0",
    "Via: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKtop, SIP/2.0/UDP 10.2.2.2:5070;branch=z9hG4bKmid",
    "Via: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKlow;received=10.3.3.3",
    f"From: <sip:{CAM}@3402000000>;tag=mv",
    f"To: <sip:{PLATFORM}@3402000000>",
    "Call-ID: mv-1",
    "CSeq: 9 MESSAGE",
    "Content-Length: 0",
)
OK_2022 = wire(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;branch=z9hG4bK5f1a;received=192.168.1.10",
    f"From: <sip:{PLATFORM}@3402000000>;tag=p1",
    f"To: <sip:{CAM}@3402000000>;tag=cam77",
    "Call-ID: sub-88@192.168.1.10",
    "CSeq: 1 SUBSCRIBE",
    "Expires: 3600",
    "X-GB-Ver: 3.0",
    "Content-Length: 0",
)


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    method: str | None  # None: a response
    call_id: str
    cseq: tuple[int, str]
    via_count: int
    body: bytes
    gb_ver: str | None = None


SAMPLES = [
    Sample("register_2016", REGISTER_2016, "REGISTER", "1011047669", (1, "REGISTER"), 1, b""),
    Sample(
        "register_2022_auth",
        REGISTER_2022_AUTH,
        "REGISTER",
        "9d2c4f0e@10.0.0.7",
        (2, "REGISTER"),
        1,
        b"",
        "3.0",
    ),
    Sample(
        "keepalive_gb2312",
        KEEPALIVE,
        "MESSAGE",
        "1530063906",
        (20, "MESSAGE"),
        1,
        KEEPALIVE_BODY,
        "2.0",
    ),
    Sample("catalog_gb2312", CATALOG, "MESSAGE", "cat-1@10.0.0.7", (3, "MESSAGE"), 1, CATALOG_BODY),
    Sample(
        "subscribe",
        SUBSCRIBE,
        "SUBSCRIBE",
        "sub-88@192.168.1.10",
        (1, "SUBSCRIBE"),
        1,
        SUBSCRIBE_BODY,
    ),
    Sample("compact", COMPACT, "MESSAGE", "compact-1", (4, "MESSAGE"), 1, POSITION_BODY),
    Sample("folded", FOLDED, "REGISTER", "fold-1", (1, "REGISTER"), 1, b""),
    Sample("multi_via", MULTI_VIA, "MESSAGE", "mv-1", (9, "MESSAGE"), 3, b""),
    Sample("ok_2022", OK_2022, None, "sub-88@192.168.1.10", (1, "SUBSCRIBE"), 1, b"", "3.0"),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_samples_parse_and_round_trip(sample: Sample) -> None:
    msg = parse_message(sample.data)
    if sample.method is None:
        assert isinstance(msg, SipResponse)
    else:
        assert isinstance(msg, SipRequest)
        assert msg.method == sample.method
    assert msg.call_id == sample.call_id
    assert (msg.cseq.number, msg.cseq.method) == sample.cseq
    assert len(msg.headers.get_all("Via")) == sample.via_count
    assert msg.body == sample.body
    assert msg.headers.get("x-gb-ver") == sample.gb_ver
    again = parse_message(msg.to_bytes())
    assert again == msg


def test_gb2312_body_stays_bytes_and_decodes_as_gb18030() -> None:
    msg = parse_message(CATALOG)
    assert msg.body == CATALOG_BODY
    assert "执法记录仪-城管一中队" in msg.body.decode("gb18030")
    assert msg.content_type == "Application/MANSCDP+xml;charset=GB2312"


def test_compact_forms_are_full_names() -> None:
    msg = parse_message(COMPACT)
    names = [name for name, _ in msg.headers]
    assert names[:4] == ["Via", "From", "To", "Call-ID"]
    assert "Content-Type" in names and "Content-Length" in names
    assert msg.headers.get("i") == msg.headers.get("CALL-ID") == "compact-1"
    assert b"\r\nCall-ID: compact-1\r\n" in msg.to_bytes()


def test_folded_lines_are_unfolded() -> None:
    msg = parse_message(FOLDED)
    assert msg.from_.tag == "fold1"
    assert msg.headers.get("CSeq") == "1 REGISTER"
    assert msg.headers.get("User-Agent") == "Cam Firmware 5.5"


def test_multiple_via_split_in_order() -> None:
    msg = parse_message(MULTI_VIA)
    vias = [parse_via(v) for v in msg.headers.get_all("Via")]
    assert [v.branch for v in vias] == ["z9hG4bKtop", "z9hG4bKmid", "z9hG4bKlow"]
    assert (vias[1].host, vias[1].port) == ("10.2.2.2", 5070)
    assert (vias[2].transport, vias[2].host, vias[2].port) == ("TCP", "[2001:db8::9]", 5061)
    assert vias[2].received == "10.3.3.3"


def test_lf_only_and_leading_crlf_keepalive_accepted() -> None:
    data = b"\r\n\r\n" + REGISTER_2016.replace(b"\r\n", b"\n")
    msg = parse_message(data)
    assert isinstance(msg, SipRequest) and msg.call_id == "1011047669"


def test_udp_without_content_length_takes_the_datagram() -> None:
    data = KEEPALIVE.replace(f"Content-Length: {len(KEEPALIVE_BODY)}\r\n".encode(), b"")
    assert parse_message(data).body == KEEPALIVE_BODY


def test_udp_extra_bytes_after_content_length_dropped() -> None:
    assert parse_message(KEEPALIVE + b"garbage").body == KEEPALIVE_BODY


def test_to_bytes_rewrites_content_length() -> None:
    msg = parse_message(KEEPALIVE)
    assert isinstance(msg, SipRequest)
    bigger = SipRequest(msg.method, msg.uri, headers=msg.headers, body=msg.body + b"<!-- -->")
    out = bigger.to_bytes()
    assert f"Content-Length: {len(bigger.body)}\r\n".encode() in out
    assert out.count(b"Content-Length") == 1
    assert parse_message(out).body == bigger.body


def _drop(data: bytes, header: str) -> bytes:
    lines = data.split(CRLF)
    return CRLF.join(line for line in lines if not line.startswith(header.encode() + b":"))


REJECTS = [
    ("empty", b"", "empty"),
    ("only_crlf", b"\r\n\r\n", "empty"),
    ("garbage", b"hello world\r\n\r\n", "bad_start_line"),
    ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_start_line"),
    ("bad_status", b"SIP/2.0 2000 OK\r\n\r\n", "bad_status"),
    ("no_call_id", _drop(REGISTER_2016, "Call-ID"), "missing_header:Call-ID"),
    ("no_via", _drop(REGISTER_2016, "Via"), "missing_header:Via"),
    ("no_from", _drop(KEEPALIVE, "From"), "missing_header:From"),
    ("no_cseq", _drop(KEEPALIVE, "CSeq"), "missing_header:CSeq"),
    ("bad_cseq", REGISTER_2016.replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER"), "bad_cseq"),
    (
        "huge_cseq",
        REGISTER_2016.replace(b"CSeq: 1 REGISTER", b"CSeq: 99999999999 REGISTER"),
        "bad_cseq",
    ),
    ("bad_via", REGISTER_2016.replace(b"Via: SIP/2.0/UDP", b"Via: XYZ"), "bad_via"),
    (
        "absurd_content_length",
        REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: 99999999999999"),
        "bad_content_length",
    ),
    (
        "negative_content_length",
        REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: -1"),
        "bad_content_length",
    ),
    (
        "conflicting_content_length",
        REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 5"),
        "bad_content_length",
    ),
    (
        "content_length_beyond_datagram",
        KEEPALIVE.replace(b"Content-Length: ", b"Content-Length: 9"),
        "body_truncated",
    ),
    ("over_size", REGISTER_2016 + b"x" * 70000, "too_large"),
    (
        "too_many_headers",
        REGISTER_2016.replace(b"Expires: 3600", b"\r\n".join([b"X-A: 1"] * 200)),
        "too_many_headers",
    ),
    ("fold_first", REGISTER_2016.replace(b"\r\nVia", b"\r\n Via", 1), "bad_header"),
    ("no_colon", REGISTER_2016.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "bad_header"),
]


@pytest.mark.parametrize(("data", "reason"), [r[1:] for r in REJECTS], ids=[r[0] for r in REJECTS])
def test_rejects_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.reason == reason


def test_headers_multimap() -> None:
    h = Headers([("v", "a"), ("call-id", "x"), ("X-Odd", "1"), ("Via", "b")])
    assert h.get_all("VIA") == ["a", "b"]
    assert h.get("Call-ID") == "x" and "x-odd" in h and "nope" not in h
    assert h.set("Via", "c").get_all("Via") == ["c"]
    assert h.remove("via").get_all("v") == []
    assert h.add("i", "y").get_all("Call-ID") == ["x", "y"]
    assert [n for n, _ in h] == ["Via", "Call-ID", "X-Odd", "Via"]


NAME_ADDRS = [
    (f"<sip:{CAM}@3402000000>;tag=1", "", f"sip:{CAM}@3402000000", {"tag": "1"}),
    (
        '"Officer 张" <sip:a@b:5060;transport=udp>;tag=x;expires=60',
        "Officer 张",
        "sip:a@b:5060;transport=udp",
        {"tag": "x", "expires": "60"},
    ),
    ("Cam <sip:a@b>", "Cam", "sip:a@b", {}),
    ("sip:a@b;tag=bare", "", "sip:a@b", {"tag": "bare"}),
    ("*", "", "*", {}),
]


@pytest.mark.parametrize(("value", "display", "uri", "params"), NAME_ADDRS)
def test_name_addr(value: str, display: str, uri: str, params: dict[str, str]) -> None:
    addr = parse_name_addr(value)
    assert (addr.display, addr.uri, addr.params) == (display, uri, params)
    assert parse_name_addr(addr.to_str()) == addr


@pytest.mark.parametrize("value", ["<sip:a@b", '"unclosed <sip:a@b>', "", "<>"])
def test_name_addr_rejects(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(value)


def test_params_cseq_via() -> None:
    assert parse_params(';tag=1;Branch="z9hG4bKq";rport') == {
        "tag": "1",
        "branch": "z9hG4bKq",
        "rport": "",
    }
    assert parse_cseq("  7   message ") == parse_cseq("7 MESSAGE")
    via = parse_via("SIP/2.0/udp 192.168.1.64:5060;rport;branch=z9hG4bK1")
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "UDP",
        "192.168.1.64",
        5060,
        "z9hG4bK1",
        "",
    )
    with pytest.raises(SipParseError):
        parse_params(";".join(["a=1"] * 40))
    with pytest.raises(SipParseError):
        parse_via("SIP/2.0/UDP host:99999")


def test_rport_and_received_fill_in() -> None:
    # RFC 3581 §4: rport asked -> filled with the source port, received always added.
    asked = "SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1"
    out = parse_via(fill_received(asked, ("203.0.113.5", 40123)))
    assert (out.rport, out.received) == ("40123", "203.0.113.5")
    assert out.response_target(("203.0.113.5", 40123)) == ("203.0.113.5", 40123)
    # RFC 3261 §18.2.1: no rport, host differs -> received only; response to received:sent-by port
    out = parse_via(fill_received("SIP/2.0/UDP cam.local:5070;branch=z9hG4bK2", ("10.0.0.9", 5070)))
    assert (out.rport, out.received) == (None, "10.0.0.9")
    assert out.response_target(("10.0.0.9", 1)) == ("10.0.0.9", 5070)
    # Same host, no rport: untouched.
    same = "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK3"
    assert fill_received(same, ("10.0.0.9", 5060)) == same


def test_response_to_copies_per_rfc3261_8_2_6() -> None:
    req = parse_message(MULTI_VIA)
    assert isinstance(req, SipRequest)
    req = stamp_received(req, ("198.51.100.1", 5999))
    resp = response_to(req, 200, headers=[("Expires", "3600")])
    assert resp.reason == "OK"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert "received=198.51.100.1" in resp.headers.get_all("Via")[0]
    assert resp.headers.get("From") == req.headers.get("From")
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    tag = resp.to.tag
    assert tag and response_to(req, 200).to.tag == tag  # same request, same tag
    assert response_to(req, 100).to.tag is None  # 100 Trying gets no tag
    assert response_to(req, 403, to_tag="t9").to.tag == "t9"
    body = response_to(req, 200, body=b"<x/>", content_type="Application/MANSCDP+xml")
    again = parse_message(body.to_bytes())
    assert again.headers.remove("Content-Length") == body.headers and again.body == b"<x/>"
    with_tag = parse_message(OK_2022.replace(b"SIP/2.0 200 OK", b"MESSAGE sip:x SIP/2.0"))
    assert isinstance(with_tag, SipRequest)
    tagged = response_to(with_tag, 200)
    assert tagged.to.tag == "cam77"  # an existing tag is kept


def test_stream_parser_frames_tcp() -> None:
    parser = SipStreamParser()
    stream = b"\r\n\r\n" + CATALOG + b"\r\n" + KEEPALIVE + REGISTER_2016
    out: list[SipRequest | SipResponse] = []
    for i in range(0, len(stream), 7):  # dribbled in small pieces
        out.extend(parser.feed(stream[i : i + 7]))
    assert [m.call_id for m in out] == ["cat-1@10.0.0.7", "1530063906", "1011047669"]
    assert out[0].body == CATALOG_BODY
    assert parser.keepalives == 2
    assert parser.feed(CATALOG + CATALOG)[1].body == CATALOG_BODY


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"garbage garbage\r\n\r\n", "bad_start_line"),
        (KEEPALIVE.replace(b"Content-Length", b"X-Nothing"), "missing_header:Content-Length"),
        (
            REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: 60000"),
            "bad_content_length",
        ),
        (REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: 16300"), "too_large"),
        (b"MESSAGE sip:x SIP/2.0\r\n" + b"X-Pad: " + b"a" * 70000, "too_large"),
    ],
)
def test_stream_parser_refuses(data: bytes, reason: str) -> None:
    parser = SipStreamParser(max_size=16384)
    with pytest.raises(SipParseError) as err:
        parser.feed(data)
    assert err.value.reason == reason
    with pytest.raises(SipParseError):
        parser.feed(REGISTER_2016)  # out of step: the caller closes the connection


def test_stream_parser_waits_for_body_and_bounds_the_buffer() -> None:
    parser = SipStreamParser(max_size=8192)
    head = REGISTER_2016.replace(b"Content-Length: 0", b"Content-Length: 4000")
    assert parser.feed(head) == []
    assert parser.feed(b"a" * 3000) == []
    (msg,) = parser.feed(b"a" * 1000)
    assert msg.body == b"a" * 4000
    with pytest.raises(SipParseError) as err:
        parser.feed(b"x" * 9000)  # no end of head within the bound
    assert err.value.reason == "too_large"
