"""MD5 digest authentication of REGISTER (RFC 2617, RFC 7616 §3.4), and nonces that expire.

The platform stores HA1 = MD5(username:realm:password), never the password. Nonces are
stateless until used: each carries its issue time and an HMAC-SHA256 of it under the
platform's secret, so a forged or altered nonce is ``Invalid`` and an old one ``Stale`` (answer
with a fresh challenge, ``stale=TRUE``: not a wrong password). A used nonce is remembered with
its last nonce-count; with qop the count must grow, without qop the nonce is single-use, so a
captured REGISTER cannot be replayed. Memory is bounded: when the oldest used nonce is
forgotten, every nonce issued up to it becomes Stale, so forgetting never reopens a replay.
SM3 digests (2022 edition) are not supported: a device offering ``algorithm=SM3`` fails
:func:`verify` and should be challenged again with MD5.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import dataclass

from drivers.sip.errors import SipParseError

__all__ = [
    "DigestCredentials",
    "Fresh",
    "Invalid",
    "NonceBook",
    "NonceState",
    "Replayed",
    "Stale",
    "challenge",
    "ha1",
    "parse_authorization",
    "verify",
]

MAX_HEADER = 4096
MAX_VALUE = 1024
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')
_FIELDS = ("username", "realm", "nonce", "uri", "response")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str) -> str:
    return _md5(f"{username}:{realm}:{password}")


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nc_value(self) -> int | None:
        return int(self.nc, 16) if self.nc is not None else None


def parse_authorization(header: str) -> DigestCredentials:
    """``Digest username="...", realm="...", ...``: quoting optional where devices omit it
    (``qop=auth`` or ``qop="auth"``), any spacing, commas optional between pairs."""
    if len(header) > MAX_HEADER:
        raise SipParseError("bad_authorization", "too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError("bad_authorization", "not Digest")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise SipParseError("bad_authorization", rest[pos : pos + 30])
        value = m.group(2) if m.group(2) is not None else m.group(3)
        value = re.sub(r"\\(.)", r"\1", value)
        if len(value) > MAX_VALUE or len(params) >= 16:
            raise SipParseError("bad_authorization", "too large")
        params.setdefault(m.group(1).lower(), value)
        pos = m.end()
    for name in _FIELDS:
        if name not in params:
            raise SipParseError("bad_authorization", f"no {name}")
    nc = params.get("nc")
    if nc is not None and not re.fullmatch(r"[0-9A-Fa-f]{1,8}", nc):
        raise SipParseError("bad_authorization", "bad nc")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"].lower(),
        algorithm=params.get("algorithm", "MD5"),
        qop=params.get("qop"),
        nc=nc,
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
    )


def challenge(realm: str, nonce: str, *, qop: bool = True, stale: bool = False) -> str:
    """A ``WWW-Authenticate`` value."""
    out = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5'
    if qop:
        out += ', qop="auth"'
    if stale:
        out += ", stale=TRUE"
    return out


def verify(creds: DigestCredentials, method: str, ha1_hex: str) -> bool:
    """The response matches ``ha1_hex`` for ``method`` and the credentials' own ``uri`` (SIPp
    and many cams put ``sip:<ip>:<port>`` there, not the Request-URI). Constant-time compare."""
    if creds.algorithm.upper() != "MD5":
        return False
    ha2 = _md5(f"{method}:{creds.uri}")
    if creds.qop is None:
        expected = _md5(f"{ha1_hex.lower()}:{creds.nonce}:{ha2}")
    elif creds.qop.lower() == "auth" and creds.nc is not None and creds.cnonce is not None:
        expected = _md5(f"{ha1_hex.lower()}:{creds.nonce}:{creds.nc}:{creds.cnonce}:auth:{ha2}")
    else:
        return False
    return hmac.compare_digest(expected.encode(), creds.response.lower().encode())


@dataclass(frozen=True, slots=True)
class Fresh:
    """Issued by us, in date, not used with this count before: verify the digest, then
    :meth:`NonceBook.commit`."""


@dataclass(frozen=True, slots=True)
class Stale:
    """Issued by us but expired (or forgotten): challenge again with ``stale=True``."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Not a nonce of ours (forged, altered, garbled, from the future): challenge again."""

    reason: str


@dataclass(frozen=True, slots=True)
class Replayed:
    """Used before with this nonce-count (or without qop at all): challenge again."""


NonceState = Fresh | Stale | Invalid | Replayed


class NonceBook:
    """Issues and checks nonces. ``check`` only reads; ``commit`` records a use once the
    digest verified (so a wrong guess cannot burn a device's nonce)."""

    def __init__(
        self,
        secret: bytes,
        *,
        lifetime: float = 300.0,
        max_tracked: int = 10000,
        skew: float = 5.0,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        self._secret = secret
        self.lifetime = lifetime
        self.max_tracked = max_tracked
        self.skew = skew
        self._used: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._forgotten_up_to = -1
        self.forgotten = 0

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, now: float, rnd: bytes) -> str:
        """A nonce issued at ``now``; ``rnd`` is fresh random bytes (``os.urandom(8)``)."""
        body = f"{int(now * 1000):x}.{rnd.hex()}"
        return f"{body}.{self._sign(body)}"

    def _issued_ms(self, nonce: str) -> int | None:
        if len(nonce) > 200:
            return None
        body, sep, mac = nonce.rpartition(".")
        stamp, dot, _ = body.partition(".")
        if not sep or not dot or not re.fullmatch(r"[0-9a-f]{1,16}", stamp):
            return None
        if not hmac.compare_digest(self._sign(body).encode(), mac.encode()):
            return None
        return int(stamp, 16)

    def check(self, nonce: str, nc: int | None, now: float) -> NonceState:
        issued = self._issued_ms(nonce)
        if issued is None:
            return Invalid("bad_signature")
        age = now - issued / 1000
        if age < -self.skew:
            return Invalid("from_future")
        if age > self.lifetime or issued <= self._forgotten_up_to:
            return Stale()
        used = self._used.get(nonce)
        if used is not None and (nc is None or nc <= used[1]):
            return Replayed()
        return Fresh()

    def commit(self, nonce: str, nc: int | None, now: float) -> None:
        """Record that ``nonce`` was accepted with count ``nc`` (None without qop)."""
        issued = self._issued_ms(nonce)
        if issued is None:
            return
        self._used[nonce] = (issued, nc if nc is not None else 2**32)
        horizon = int((now - self.lifetime) * 1000)
        while self._used:
            oldest, (stamp, _) = next(iter(self._used.items()))
            if stamp >= horizon and len(self._used) <= self.max_tracked:
                break
            del self._used[oldest]
            if stamp >= horizon:  # forgotten while still in date: make it, and older, Stale
                self.forgotten += 1
                self._forgotten_up_to = max(self._forgotten_up_to, stamp)
