"""The device's half of MD5 digest (RFC 2617, RFC 7616): read a ``WWW-Authenticate``
challenge, answer it with an ``Authorization`` value.

The platform's half (nonces, verification) is :mod:`drivers.sip.digest`; this one is what a
simulated body cam needs. With ``qop=auth`` offered the answer uses it with a nonce-count the
caller increases per request on the same nonce and a client nonce the caller supplies (no
randomness here); without qop it is the RFC 2069 form. Only MD5: an SM3 challenge is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from drivers.sip.digest import ha1
from drivers.sip.errors import SipParseError

__all__ = ["Challenge", "authorization", "parse_challenge"]

MAX_HEADER = 4096
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop_auth: bool = False  # the server offered qop="auth"
    opaque: str | None = None
    stale: bool = False


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_challenge(header: str) -> Challenge:
    """``Digest realm="...", nonce="...", qop="auth,auth-int", ...`` (quotes optional)."""
    if len(header) > MAX_HEADER:
        raise SipParseError("bad_challenge", "too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError("bad_challenge", "not Digest")
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos or len(params) >= 16:
            raise SipParseError("bad_challenge", rest[pos : pos + 30])
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params.setdefault(m.group(1).lower(), re.sub(r"\\(.)", r"\1", value))
        pos = m.end()
    if "realm" not in params or "nonce" not in params:
        raise SipParseError("bad_challenge", "no realm or nonce")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise SipParseError("bad_challenge", f"algorithm {algorithm[:16]} not supported")
    qops = {q.strip().lower() for q in params.get("qop", "").split(",")}
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm="MD5",
        qop_auth="auth" in qops,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def authorization(
    ch: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str = "",
) -> str:
    """The ``Authorization`` value answering *ch*; with qop, *nc* (1..2**32-1) and a
    non-empty *cnonce* are used."""
    h1 = ha1(username, ch.realm, password)
    h2 = _md5(f"{method}:{uri}")
    parts = [
        f'username="{username}"',
        f'realm="{ch.realm}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
    ]
    if ch.qop_auth:
        if not 1 <= nc < 2**32 or not cnonce:
            raise ValueError("qop=auth needs a nonce-count in 1..2**32-1 and a cnonce")
        count = f"{nc:08x}"
        response = _md5(f"{h1}:{ch.nonce}:{count}:{cnonce}:auth:{h2}")
        parts += [f'response="{response}"', "algorithm=MD5"]
        parts += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{h1}:{ch.nonce}:{h2}")
        parts += [f'response="{response}"', "algorithm=MD5"]
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)
