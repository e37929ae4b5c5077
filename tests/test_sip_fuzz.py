"""Fuzzed SIP bytes: nothing but a typed SipParseError ever comes out of the parsers, and
generated messages survive to_bytes -> parse unchanged."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.sip.digest import NonceBook, parse_authorization
from drivers.sip.fields import parse_name_addr, parse_via
from drivers.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    SipStreamParser,
    canonical_name,
    parse_message,
)
from drivers.sip.responses import response_to
from tests.test_sip_message import SAMPLES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = [s.data for s in SAMPLES]


def parse_or_reject(data: bytes) -> None:
    try:
        msg = parse_message(data, max_size=8192)
    except SipParseError as err:
        reason = err.reason
        assert reason, "a rejection always says why"
        return
    # Whatever parsed must also rebuild, answer and re-parse without surprises.
    again = parse_message(msg.to_bytes(), max_size=16384)
    assert again.body == msg.body
    if isinstance(msg, SipRequest):
        # An unreadable To is a typed refusal, never anything else.
        with contextlib.suppress(SipParseError):
            response_to(msg, 200).to_bytes()


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_reject(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            chunk = draw(
                st.sampled_from(
                    [b"\r\n", b"\n", b" ", b":", b";", b",", b"<", b'"', b"\r\n ", b"\x00", b"\xff"]
                )
                | st.binary(max_size=8)
            )
            data[pos:pos] = chunk
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "dup" and data:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 80))]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    parse_or_reject(data)


@FUZZ
@given(st.lists(mutated() | st.sampled_from(VALID), max_size=4), st.integers(1, 64))
def test_stream_parser_only_typed_errors(messages: list[bytes], step: int) -> None:
    stream = b"".join(messages)
    parser = SipStreamParser(max_size=8192)
    try:
        for i in range(0, len(stream), step):
            for msg in parser.feed(stream[i : i + step]):
                assert len(msg.body) <= 8192
    except SipParseError as err:
        reason = err.reason
        assert reason, "a rejection always says why"


@FUZZ
@given(st.text(max_size=300))
def test_header_readers_only_typed_errors(text: str) -> None:
    for reader in (parse_name_addr, parse_via, parse_authorization):
        with contextlib.suppress(SipParseError):
            reader(text)
    NonceBook(b"0123456789abcdef").check(text, None, 0.0)


TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_!%*+~'"
TOKEN = st.text(TOKEN_CHARS, min_size=1, max_size=12)
VALUE = (
    st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
EXTRA = st.tuples(TOKEN, VALUE).filter(
    lambda h: canonical_name(h[0]) not in ("Via", "Content-Length")
)


@st.composite
def messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    branch = "z9hG4bK" + draw(TOKEN)
    via = f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP']))} 10.0.0.{draw(st.integers(0, 255))}"
    via += f":{draw(st.integers(1, 65535))};branch={branch}"
    lower = [f"SIP/2.0/UDP h{i}.example;branch=z9hG4bK{i}" for i in range(draw(st.integers(0, 2)))]
    vias = [("Via", v) for v in (via, *lower)]
    method = draw(st.sampled_from(["REGISTER", "MESSAGE", "SUBSCRIBE", "NOTIFY"]) | TOKEN)
    items = [
        *vias,
        ("From", f"<sip:{draw(TOKEN)}@3402000000>;tag={draw(TOKEN)}"),
        ("To", f"<sip:{draw(TOKEN)}@3402000000>"),
        ("Call-ID", draw(TOKEN)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method.upper()}"),
        *draw(st.lists(EXTRA, max_size=6)),
    ]
    headers = Headers(items)
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        uri = f"sip:{draw(TOKEN)}@3402000000"
        return SipRequest(method.upper(), uri, headers=headers, body=body)
    reason = draw(st.text("abcdefghij OK", max_size=20).map(str.strip))
    return SipResponse(draw(st.integers(100, 699)), reason, headers=headers, body=body)


@FUZZ
@given(messages())
def test_generated_messages_round_trip(msg: SipRequest | SipResponse) -> None:
    data = msg.to_bytes()
    for parsed in (parse_message(data), *SipStreamParser().feed(data)):
        assert parsed.headers.remove("Content-Length") == msg.headers
        assert parsed.body == msg.body
        assert type(parsed) is type(msg)
        if isinstance(msg, SipRequest):
            assert isinstance(parsed, SipRequest)
            assert (parsed.method, parsed.uri) == (msg.method, msg.uri)
        else:
            assert isinstance(parsed, SipResponse)
            assert (parsed.status, parsed.reason) == (msg.status, msg.reason)
