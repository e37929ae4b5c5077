"""SIP (the signalling under GB/T 28181): ``parse_message`` per datagram with the answer the
server builds, ``SipStreamParser`` over a TCP stream cut anywhere, and the quick lane
``read_quick`` + ``quick_response`` (``None`` means "take the general way", counted as the
rejection ``general_way``)."""

from __future__ import annotations

from hypothesis import strategies as st

from drivers.sip.errors import SipParseError
from drivers.sip.message import SipRequest, SipStreamParser, parse_message, stamp_received
from drivers.sip.quick import quick_response, read_quick
from drivers.sip.responses import response_to
from fuzz.core import Reasons, Target
from fuzz.mutate import BYTE_TOKENS, hostile_bytes, mutated_lines
from fuzz.targets.gb28181 import CAM, KEEPALIVE, POSITION

PLATFORM = "34020000002000000001"
MAX_SIZE = 8192
PEER = ("192.168.1.64", 5060)


def _wire(*lines: str, body: bytes = b"") -> bytes:
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def _message(method: str, call_id: str, body: bytes, cseq: int = 20) -> bytes:
    return _wire(
        f"{method} sip:{PLATFORM}@3402000000 SIP/2.0",
        "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK326591410",
        f"From: <sip:{CAM}@3402000000>;tag=2112416544",
        f"To: <sip:{PLATFORM}@3402000000>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Content-Type: Application/MANSCDP+xml",
        "Max-Forwards: 70",
        "User-Agent: IP Camera",
        f"Content-Length: {len(body)}",
        body=body,
    )


SAMPLES = [
    _wire(
        f"REGISTER sip:{PLATFORM}@3402000000 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-524287-1---6a4b;rport",
        f'From: "DH-BodyCam" <sip:{CAM}@3402000000>;tag=8a1bc2',
        f"To: <sip:{CAM}@3402000000>",
        "Call-ID: 9d2c4f0e@10.0.0.7",
        "CSeq: 2 REGISTER",
        f"Contact: <sip:{CAM}@10.0.0.7:5060>;expires=3600",
        f'Authorization: Digest username="{CAM}", realm="3402000000", nonce="1a2b3c", '
        f'uri="sip:{PLATFORM}@3402000000", response="0123456789abcdef0123456789abcdef", '
        "algorithm=MD5",
        "X-GB-Ver: 3.0",
        "Expires: 3600",
        "Content-Length: 0",
    ),
    _message("MESSAGE", "1530063906", KEEPALIVE),
    _message("NOTIFY", "sub-88@192.168.1.10", POSITION, 3),
    _wire(
        f"MESSAGE sip:{PLATFORM}@3402000000 SIP/2.0",
        "v: SIP/2.0/UDP 192.168.1.64:5060;branch=z9hG4bKcompact",
        f"f: <sip:{CAM}@3402000000>;tag=c1",
        f"t: <sip:{PLATFORM}@3402000000>",
        "i: compact-1",
        "CSeq: 4",
        "\tMESSAGE",
        "Via: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKlow;received=10.3.3.3",
        "c: Application/MANSCDP+xml",
        f"l: {len(POSITION)}",
        body=POSITION,
    ),
    _wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;branch=z9hG4bK5f1a;received=192.168.1.10",
        f"From: <sip:{PLATFORM}@3402000000>;tag=p1",
        f"To: <sip:{CAM}@3402000000>;tag=cam77",
        "Call-ID: sub-88@192.168.1.10",
        "CSeq: 1 SUBSCRIBE",
        "Content-Length: 0",
    ),
]
_TOKENS = (*BYTE_TOKENS, b"Content-Length: 99999\r\n", b"Via: SIP/2.0/UDP x\r\n", b"\r\n\r\n",
           b"CSeq: 1 MESSAGE\r\n", b"Call-ID: a\r\n", b"l: -1\r\n", b";branch=z9hG4bK")  # fmt: skip
_messages = hostile_bytes(SAMPLES, _TOKENS) | mutated_lines(SAMPLES, (b": ",))


def check_message(data: bytes) -> Reasons:
    """As the endpoint and the server use it: parse, then answer a request."""
    try:
        msg = parse_message(data, max_size=MAX_SIZE)
        if isinstance(msg, SipRequest):
            response_to(stamp_received(msg, PEER), 200).to_bytes()
        else:
            _ = (msg.call_id, msg.cseq, msg.top_via)  # the fields the server reads
    except SipParseError as exc:
        return (exc.reason.split(":")[0],)  # "missing_header:Call-ID" counted as the endpoint does
    return ()


def check_stream(case: tuple[list[bytes], int]) -> Reasons:
    messages, step = case
    stream = b"".join(messages)
    parser = SipStreamParser(max_size=MAX_SIZE)
    try:
        for i in range(0, len(stream), step):
            parser.feed(stream[i : i + step])
    except SipParseError as exc:
        return (exc.reason.split(":")[0],)
    return ()


def check_quick(data: bytes) -> Reasons:
    q = read_quick(data, MAX_SIZE)
    if q is None:
        return ("general_way",)
    quick_response(q, PEER)
    return ()


TARGETS = (
    Target("sip.message", "drivers.sip.message.parse_message", _messages, check_message),
    Target(
        "sip.stream",
        "drivers.sip.message.SipStreamParser.feed",
        st.tuples(
            st.lists(_messages | st.sampled_from([b"\r\n\r\n", *SAMPLES]), max_size=4),
            st.integers(1, 512),
        ),
        check_stream,
    ),
    Target("sip.quick", "drivers.sip.quick.read_quick", _messages, check_quick),
)
