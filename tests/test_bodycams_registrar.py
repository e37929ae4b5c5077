"""The registrar without sockets: digest REGISTER as GB/T 28181 cams (and SIPp) do it."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from drivers.gb28181.manscdp import CHINA
from drivers.sip.digest import NonceBook, ha1
from drivers.sip.message import SipRequest, parse_message
from gateway.directory.bodycams import Credential
from gateway.services.bodycams.registrar import Registrar, RegistrarPolicy, gb_date

CAM = "62072500081380000001"
REALM = "6207250008"
PASSWORD = "correct-horse"
NOW = datetime(2026, 12, 2, 6, 30, 0, 123456, tzinfo=UTC)


def md5(s: str) -> str:
    return hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


def registrar(**policy: object) -> Registrar:
    creds = {CAM: Credential(CAM, "of-001", ha1(CAM, REALM, PASSWORD), REALM, True)}
    creds["62072500081380000002"] = Credential("62072500081380000002", None, None, None, True)
    rnd = iter(range(10**6))
    return Registrar(
        RegistrarPolicy(REALM, **policy),  # type: ignore[arg-type]
        NonceBook(b"k" * 32, lifetime=300),
        creds,
        lambda n: next(rnd).to_bytes(n, "big"),
        CHINA,
    )


def register(
    cam: str = CAM, expires: str | None = "3600", auth: str | None = None, cseq: int = 1
) -> bytes:
    lines = [
        f"REGISTER sip:62072500082000000001@{REALM} SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK" + f"{cseq:08d}",
        f"From: <sip:{cam}@{REALM}>;tag=abc",
        f"To: <sip:{cam}@{REALM}>",
        "Call-ID: reg-1@10.0.0.5",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{cam}@10.0.0.5:5060>",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def nonce_of(www: str) -> str:
    m = re.search(r'nonce="([^"]+)"', www)
    assert m
    return m.group(1)


def authorization(nonce: str, password: str = PASSWORD, uri: str = "sip:127.0.0.1:5060") -> str:
    h1 = ha1(CAM, REALM, password)
    response = md5(f"{h1}:{nonce}:{md5(f'REGISTER:{uri}')}")
    return (
        f'Digest username="{CAM}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5'
    )


def req(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def test_challenge_then_200_with_date_and_contact_expires() -> None:
    r = registrar()
    out = r.register(req(register()), 1.0, NOW)
    assert out.kind == "challenge" and out.response.status == 401
    www = out.response.headers.get("WWW-Authenticate") or ""
    assert f'realm="{REALM}"' in www and "algorithm=MD5" in www
    # SIPp's digest uri is sip:<ip>:<port>, not the Request-URI: verified against its own
    auth = authorization(nonce_of(www))
    out = r.register(req(register(auth=auth, cseq=2)), 2.0, NOW)
    assert out.kind == "registered" and out.response.status == 200, out.reason
    assert out.expires_s == 3600
    date = out.response.headers.get("Date") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", date)
    assert date == "2026-12-02T14:30:00.123" == gb_date(NOW, CHINA)  # the town's local time
    assert out.response.headers.get("Expires") == "3600"
    assert "expires=3600" in (out.response.headers.get("Contact") or "")


def test_expires_is_required_clamped_and_bounded_below() -> None:
    r = registrar(expires_min_s=60, expires_max_s=600)
    assert r.register(req(register(expires=None)), 1.0, NOW).response.status == 400
    www = r.register(req(register()), 1.0, NOW).response.headers.get("WWW-Authenticate") or ""
    out = r.register(req(register(expires="86400", auth=authorization(nonce_of(www)))), 2, NOW)
    assert out.expires_s == 600 and out.response.headers.get("Expires") == "600"
    www = r.register(req(register()), 3.0, NOW).response.headers.get("WWW-Authenticate") or ""
    out = r.register(req(register(expires="10", auth=authorization(nonce_of(www)))), 4, NOW)
    assert out.response.status == 423 and out.response.headers.get("Min-Expires") == "60"


def test_expires_zero_unregisters() -> None:
    r = registrar()
    www = r.register(req(register()), 1.0, NOW).response.headers.get("WWW-Authenticate") or ""
    out = r.register(req(register(expires="0", auth=authorization(nonce_of(www)))), 2.0, NOW)
    assert out.kind == "unregistered" and out.response.status == 200


def test_wrong_password_403_and_a_repeated_failure_is_slowed_down() -> None:
    r = registrar(failures_before_slowdown=3, slowdown_s=60)
    for i in range(3):
        www = r.register(req(register()), float(i), NOW).response.headers.get("WWW-Authenticate")
        assert www is not None
        bad = authorization(nonce_of(www), password="guess")
        out = r.register(req(register(auth=bad)), float(i), NOW)
        assert out.response.status == 403 and out.reason == "bad_password"
    # slowed down: no challenge, not even the right password, until the slowdown is over
    out = r.register(req(register()), 10.0, NOW)
    assert out.response.status == 403 and out.reason == "slowed_down"
    out = r.register(req(register()), 70.0, NOW)
    assert out.response.status == 401
    good = authorization(nonce_of(out.response.headers.get("WWW-Authenticate") or ""))
    assert r.register(req(register(auth=good)), 71.0, NOW).response.status == 200


def test_unknown_or_passwordless_cams_are_404() -> None:
    r = registrar()
    assert r.register(req(register(cam="62072500081380009999")), 1, NOW).response.status == 404
    out = r.register(req(register(cam="62072500081380000002")), 1, NOW)
    assert out.response.status == 404 and out.reason == "unknown_device"
    out = r.register(req(register(cam="not-a-20-digit-id")), 1, NOW)
    assert out.response.status == 400 and out.reason == "bad_device_id"


def test_a_used_nonce_cannot_be_replayed_and_an_old_one_is_stale() -> None:
    r = registrar()
    www = r.register(req(register()), 1.0, NOW).response.headers.get("WWW-Authenticate") or ""
    auth = authorization(nonce_of(www))
    assert r.register(req(register(auth=auth, cseq=2)), 2.0, NOW).response.status == 200
    replay = r.register(req(register(auth=auth, cseq=3)), 3.0, NOW)
    assert replay.response.status == 401 and replay.reason == "bad_nonce"
    www = r.register(req(register()), 4.0, NOW).response.headers.get("WWW-Authenticate") or ""
    late = r.register(req(register(auth=authorization(nonce_of(www)))), 400.0, NOW)
    assert late.response.status == 401 and late.reason == "stale"
    assert "stale=TRUE" in (late.response.headers.get("WWW-Authenticate") or "")


def test_a_rotated_password_takes_over_at_once() -> None:
    r = registrar()
    creds = r.credentials
    assert isinstance(creds, dict)
    creds[CAM] = Credential(CAM, "of-001", ha1(CAM, REALM, "new-password"), REALM, True)
    www = r.register(req(register()), 1.0, NOW).response.headers.get("WWW-Authenticate") or ""
    assert (
        r.register(req(register(auth=authorization(nonce_of(www)))), 2, NOW).response.status == 403
    )
    www = r.register(req(register()), 3.0, NOW).response.headers.get("WWW-Authenticate") or ""
    good = authorization(nonce_of(www), password="new-password")
    assert r.register(req(register(auth=good)), 4, NOW).response.status == 200
