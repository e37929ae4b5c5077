"""REGISTER with MD5 digest, as GB/T 28181 devices do it: pure (times and randomness passed in).

No Authorization: 401 with a fresh nonce. A good digest against the stored HA1 (verified
against the ``uri`` inside Authorization, which SIPp and many cams set to ``sip:<ip>:<port>``):
200 with ``Date: yyyy-MM-ddTHH:mm:ss.SSS`` (the town's local time; cams set their clocks from
it) and Contact/Expires echoed. Missing Expires: 400. ``Expires: 0``: unregister. A stale
nonce: 401 ``stale=TRUE``; a replayed or forged one: a new challenge. A wrong password: 403;
after ``auth_failures_before_slowdown`` failures in a row the cam gets 403 without a challenge
for ``slowdown_s`` (a guesser gets no nonces). An unknown, retired or password-less cam: 404.
Every outcome carries a short ``reason`` for the counters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from drivers.gb28181.ids import is_device_id
from drivers.sip.digest import (
    Fresh,
    NonceBook,
    Stale,
    challenge,
    parse_authorization,
    verify,
)
from drivers.sip.errors import SipParseError
from drivers.sip.fields import parse_name_addr
from drivers.sip.message import SipRequest, SipResponse
from drivers.sip.responses import response_to
from gateway.directory.bodycams import Credential

__all__ = ["RegisterOutcome", "Registrar", "RegistrarPolicy", "contact_uri", "device_of", "gb_date"]

Kind = Literal["challenge", "registered", "unregistered", "refused"]


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    realm: str
    expires_min_s: int = 60
    expires_max_s: int = 3600
    failures_before_slowdown: int = 5
    slowdown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    response: SipResponse
    kind: Kind
    reason: str  # metric label: challenge, stale, ok, unregister, bad_password, unknown_device...
    device_id: str | None = None
    expires_s: int = 0
    contact: str | None = None


def device_of(request: SipRequest) -> str | None:
    """The 20-digit id in the From URI's user part (``sip:<id>@<realm>``), else None."""
    try:
        return device_in(request.from_.uri)
    except SipParseError:
        return None


def device_in(uri: str) -> str | None:
    """The 20-digit id in *uri*'s user part (``sip:<id>@<realm>``), else None."""
    user = uri.split(":", 1)[-1].split("@", 1)[0]
    return user if is_device_id(user) else None


def gb_date(now: datetime, zone: ZoneInfo) -> str:
    """``yyyy-MM-ddTHH:mm:ss.SSS`` in the town's zone (what GB/T 28181 cams parse)."""
    local = now.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def _expires(request: SipRequest) -> int | None:
    value = request.headers.get("Expires")
    if value is None:
        contact = request.headers.get("Contact")
        if contact:
            try:
                value = parse_name_addr(contact).params.get("expires")
            except SipParseError:
                return None
    if value is None or not value.strip().isdigit() or len(value.strip()) > 10:
        return None
    return int(value.strip())


@dataclass(slots=True)
class _Failures:
    count: int = 0
    slowed_until: float = 0.0


class Registrar:
    """Answers REGISTER. ``credentials`` is the live map id -> Credential (the change feed
    updates it in place); ``rnd`` gives random bytes (``os.urandom``)."""

    def __init__(
        self,
        policy: RegistrarPolicy,
        nonces: NonceBook,
        credentials: Mapping[str, Credential],
        rnd: Callable[[int], bytes],
        zone: ZoneInfo,
        *,
        max_tracked: int = 10000,
    ) -> None:
        self.policy = policy
        self.nonces = nonces
        self.credentials = credentials
        self.rnd = rnd
        self.zone = zone
        self.max_tracked = max_tracked
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def _challenge(
        self, request: SipRequest, mono: float, reason: str, stale: bool = False
    ) -> RegisterOutcome:
        nonce = self.nonces.issue(mono, self.rnd(8))
        header = challenge(self.policy.realm, nonce, qop=False, stale=stale)
        response = response_to(request, 401, headers=[("WWW-Authenticate", header)])
        return RegisterOutcome(response, "challenge", reason, device_of(request))

    def _refuse(
        self, request: SipRequest, status: int, reason: str, **extra: str
    ) -> RegisterOutcome:
        headers = list(extra.items())
        return RegisterOutcome(response_to(request, status, headers=headers), "refused", reason,
                               device_of(request))  # fmt: skip

    def _failed(self, device_id: str, mono: float) -> None:
        f = self._failures.pop(device_id, None) or _Failures()
        f.count += 1
        if f.count >= self.policy.failures_before_slowdown:
            f.slowed_until = mono + self.policy.slowdown_s
        self._failures[device_id] = f
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)

    def slowed(self, device_id: str, mono: float) -> bool:
        f = self._failures.get(device_id)
        return f is not None and mono < f.slowed_until

    def register(self, request: SipRequest, mono: float, now: datetime) -> RegisterOutcome:
        """The answer to one REGISTER (``mono``: monotonic seconds, ``now``: aware UTC)."""
        device_id = device_of(request)
        if device_id is None:
            return self._refuse(request, 400, "bad_device_id")
        expires = _expires(request)
        if expires is None:
            return self._refuse(request, 400, "missing_expires")
        cred = self.credentials.get(device_id)
        if cred is None or not cred.active or cred.ha1 is None:
            return self._refuse(request, 404, "unknown_device")
        if self.slowed(device_id, mono):
            return self._refuse(request, 403, "slowed_down")
        header = request.headers.get("Authorization")
        if header is None:
            return self._challenge(request, mono, "challenge")
        try:
            creds = parse_authorization(header)
        except SipParseError:
            return self._refuse(request, 400, "bad_authorization")
        if creds.username != device_id:
            return self._refuse(request, 403, "wrong_username")
        state = self.nonces.check(creds.nonce, creds.nc_value, mono)
        if isinstance(state, Stale):
            return self._challenge(request, mono, "stale", stale=True)
        if not isinstance(state, Fresh):
            return self._challenge(request, mono, "bad_nonce")
        if creds.realm != (cred.realm or self.policy.realm) or not verify(
            creds, request.method, cred.ha1
        ):
            self._failed(device_id, mono)
            return self._refuse(request, 403, "bad_password")
        self.nonces.commit(creds.nonce, creds.nc_value, mono)
        self._failures.pop(device_id, None)
        if 0 < expires < self.policy.expires_min_s:
            return self._refuse(
                request, 423, "too_brief", **{"Min-Expires": str(self.policy.expires_min_s)}
            )
        granted = min(expires, self.policy.expires_max_s)
        contact = request.headers.get("Contact")
        headers = [("Date", gb_date(now, self.zone)), ("Expires", str(granted))]
        if contact:
            headers.insert(0, ("Contact", _with_expires(contact, granted)))
        response = response_to(request, 200, headers=headers)
        kind: Kind = "registered" if granted else "unregistered"
        reason = "ok" if granted else "unregister"
        return RegisterOutcome(response, kind, reason, device_id, granted, contact)


def _with_expires(contact: str, expires: int) -> str:
    """The Contact echoed with the granted ``expires`` (RFC 3261 §10.3 step 8)."""
    try:
        addr = parse_name_addr(contact)
    except SipParseError:
        return contact
    if addr.uri == "*":
        return contact
    params = {**addr.params, "expires": str(expires)}
    display = f'"{addr.display}" ' if addr.display else ""
    tail = "".join(f";{k}={v}" if v != "" else f";{k}" for k, v in params.items())
    return f"{display}<{addr.uri}>{tail}"


def contact_uri(contact: str | None) -> str | None:
    """The URI in a Contact value (``<sip:...>;expires=...`` or bare), else None."""
    if not contact:
        return None
    start, end = contact.find("<"), contact.find(">")
    uri = contact[start + 1 : end] if 0 <= start < end else contact.split(";")[0]
    return uri.strip() or None
