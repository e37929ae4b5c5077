"""Digest for REGISTER: the RFC 2617 worked example, SIPp's Authorization, the cams' lenient
quoting, and nonces that expire (Stale, not a wrong password) and cannot be replayed."""

from __future__ import annotations

import hashlib

import pytest

from drivers.sip.digest import (
    Fresh,
    Invalid,
    NonceBook,
    Replayed,
    Stale,
    challenge,
    ha1,
    parse_authorization,
    verify,
)
from drivers.sip.message import SipParseError

SECRET = b"0123456789abcdef-test-secret"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the digest under test is MD5


# RFC 2617 §3.5, the worked example (qop=auth).
RFC2617 = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_worked_example() -> None:
    creds = parse_authorization(RFC2617)
    assert (creds.username, creds.qop, creds.nc_value, creds.cnonce) == (
        "Mufasa",
        "auth",
        1,
        "0a4f113b",
    )
    key = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert verify(creds, "GET", key)
    assert not verify(creds, "POST", key)
    assert not verify(creds, "GET", ha1("Mufasa", "testrealm@host.com", "Circle of Life"))


def test_sipp_style_authorization_uri_is_ip_port() -> None:
    # SIPp's [authentication] answers with uri="sip:<remote_ip>:<port>" and no qop.
    user, realm, nonce, uri = "34020000001320000001", "3402000000", "n-1", "sip:127.0.0.1:5060"
    key = ha1(user, realm, "12345678")
    response = md5(f"{key}:{nonce}:{md5(f'REGISTER:{uri}')}")
    header = (
        f'Digest username="{user}",realm="{realm}",uri="{uri}",nonce="{nonce}",'
        f'response="{response}",algorithm=MD5'
    )
    creds = parse_authorization(header)
    assert creds.uri == uri and creds.qop is None
    assert verify(creds, "REGISTER", key)
    assert not verify(creds, "REGISTER", ha1(user, realm, "wrong"))


def test_qop_auth_sipp_with_cnonce() -> None:
    user, realm, nonce, uri = "34020000001320000001", "3402000000", "n-2", "sip:10.0.0.1:15060"
    key = ha1(user, realm, "pw")
    ha2 = md5(f"REGISTER:{uri}")
    response = md5(f"{key}:{nonce}:00000002:6b8b4567:auth:{ha2}")
    header = (
        f'Digest   username = "{user}" , realm="{realm}", cnonce="6b8b4567", nc=00000002, '
        f'qop="auth", uri="{uri}", nonce="{nonce}", response="{response.upper()}", algorithm=md5'
    )
    creds = parse_authorization(header)
    assert creds.nc_value == 2 and creds.qop == "auth"
    assert verify(creds, "REGISTER", key)


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", nonce="n", uri="u", response="x"',  # no username
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=zz',
        'Digest username="u", realm="r", nonce="n", uri="u", response="x", nc=123456789',
        'Digest username="' + "u" * 2000 + '", realm="r", nonce="n", uri="u", response="x"',
        "Digest " + ", ".join(f'p{i}="v"' for i in range(20)),
        "Digest " + "x" * 5000,
        'Digest username="u" realm=="r"',
    ],
)
def test_bad_authorization_refused(header: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_authorization(header)
    assert err.value.reason == "bad_authorization"


def test_unsupported_qop_or_algorithm_fails_verify() -> None:
    creds = parse_authorization(RFC2617.replace("qop=auth", "qop=auth-int"))
    assert not verify(creds, "GET", ha1("Mufasa", "testrealm@host.com", "Circle Of Life"))
    sm3 = parse_authorization(RFC2617 + ", algorithm=SM3")
    assert not verify(sm3, "GET", ha1("Mufasa", "testrealm@host.com", "Circle Of Life"))
    no_cnonce = parse_authorization(RFC2617.replace('cnonce="0a4f113b", ', ""))
    assert not verify(no_cnonce, "GET", ha1("Mufasa", "testrealm@host.com", "Circle Of Life"))


def test_challenge_text() -> None:
    assert challenge("3402000000", "abc", qop=False) == (
        'Digest realm="3402000000", nonce="abc", algorithm=MD5'
    )
    assert challenge("3402000000", "abc", stale=True) == (
        'Digest realm="3402000000", nonce="abc", algorithm=MD5, qop="auth", stale=TRUE'
    )


def test_nonce_fresh_then_stale_after_lifetime() -> None:
    book = NonceBook(SECRET)
    nonce = book.issue(1000.0, b"\x01" * 8)
    assert book.check(nonce, None, 1000.0) == Fresh()
    assert book.check(nonce, None, 1299.0) == Fresh()
    assert book.check(nonce, None, 1301.0) == Stale()  # default 300 s
    short = NonceBook(SECRET, lifetime=30.0)
    assert short.check(short.issue(0.0, b"\x02" * 8), 1, 31.0) == Stale()


def test_nonce_forged_or_altered_or_foreign_is_invalid() -> None:
    book = NonceBook(SECRET)
    nonce = book.issue(1000.0, b"\x01" * 8)
    stamp, rnd, mac = nonce.split(".")
    later = f"{int(stamp, 16) + 100000:x}"
    assert book.check(f"{later}.{rnd}.{mac}", None, 1000.0) == Invalid("bad_signature")
    assert book.check("dcd98b7102dd2f0e8b11d0f600bfb0c093", None, 1000.0) == Invalid(
        "bad_signature"
    )
    other = NonceBook(b"another-secret-of-16+")
    assert other.check(nonce, None, 1000.0) == Invalid("bad_signature")
    assert book.check("x" * 5000, None, 1000.0) == Invalid("bad_signature")
    assert book.check(book.issue(2000.0, b"\0" * 8), None, 1000.0) == Invalid("from_future")


def test_nonce_count_must_grow_and_no_qop_is_single_use() -> None:
    book = NonceBook(SECRET)
    nonce = book.issue(0.0, b"\x01" * 8)
    assert book.check(nonce, 1, 1.0) == Fresh()
    book.commit(nonce, 1, 1.0)
    assert book.check(nonce, 1, 2.0) == Replayed()
    assert book.check(nonce, None, 2.0) == Replayed()
    assert book.check(nonce, 2, 2.0) == Fresh()
    book.commit(nonce, 2, 2.0)
    assert book.check(nonce, 2, 3.0) == Replayed()
    single = book.issue(0.0, b"\x02" * 8)
    book.commit(single, None, 1.0)
    assert book.check(single, None, 2.0) == Replayed()
    assert book.check(single, 5, 2.0) == Replayed()


def test_check_alone_does_not_burn_the_nonce() -> None:
    book = NonceBook(SECRET)
    nonce = book.issue(0.0, b"\x01" * 8)
    for _ in range(3):  # wrong passwords: the service checks but does not commit
        assert book.check(nonce, 1, 1.0) == Fresh()


def test_memory_bounded_and_forgetting_never_reopens_a_replay() -> None:
    book = NonceBook(SECRET, max_tracked=100)
    nonces = [book.issue(float(i), i.to_bytes(8, "big")) for i in range(150)]
    for i, nonce in enumerate(nonces):
        book.commit(nonce, None, 150.0 + i / 1000)
    assert len(book._used) <= 100 and book.forgotten == 50
    assert book.check(nonces[0], None, 151.0) == Stale()  # forgotten -> Stale, not Fresh
    assert book.check(nonces[149], None, 151.0) == Replayed()
    assert book.check(book.issue(151.0, b"\xff" * 8), None, 151.0) == Fresh()


def test_expired_entries_pruned() -> None:
    book = NonceBook(SECRET, lifetime=10.0)
    for i in range(50):
        book.commit(book.issue(float(i), i.to_bytes(8, "big")), None, float(i))
    assert len(book._used) <= 11 and book.forgotten == 0


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        NonceBook(b"short")
