"""Server and client transactions without I/O or a clock (RFC 3261 §17; time is passed in).

Server side: a retransmitted request is recognised (§17.2.3) and answered from the cached
response instead of being processed again; an ACK to a non-2xx INVITE response is absorbed.
Devices older than RFC 3261 (no ``z9hG4bK`` branch) are matched on Call-ID, CSeq, From tag and
top Via (§17.2.3, the RFC 2543 rule). Entries live ``lifetime`` seconds after the final
response (Timer J: 64*T1 = 32 s over UDP, 0 over TCP: use one table per transport) and the
table is bounded (oldest evicted, counted).

Client side: the platform's own non-INVITE requests (SUBSCRIBE, MESSAGE queries). Over UDP
they are retransmitted on Timer E (T1, doubling, capped at T2; T2 once a provisional arrived)
until a final response or Timer F (64*T1). Schedules are pure functions of ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from drivers.sip.errors import SipParseError
from drivers.sip.fields import MAGIC_COOKIE, Via, parse_via
from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest, SipResponse

__all__ = [
    "T1",
    "T2",
    "T4",
    "ClientTransaction",
    "New",
    "Retransmission",
    "ServerTransactions",
    "TransactionKey",
    "new_branch",
    "server_key",
]

T1 = 0.5
T2 = 4.0
T4 = 5.0
TransactionKey = tuple[str, ...]


def server_key(request: SipRequest) -> TransactionKey:
    """The §17.2.3 matching key; ACK maps onto the INVITE it acknowledges."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return ("3261", branch, via.sent_by, method)
    cseq = request.cseq
    return (
        "2543",
        request.call_id,
        str(cseq.number),
        request.from_.tag or "",
        via.to_str().lower(),
        method,
    )


@dataclass(frozen=True, slots=True)
class New:
    """Not seen before: hand the request to the application and ``respond`` later."""

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class Retransmission:
    """Seen before: resend ``response`` if there is one; ``None`` means still being processed
    (or an ACK absorbed by its INVITE transaction, ``ack`` set): send nothing."""

    key: TransactionKey
    response: SipResponse | None
    ack: bool = False
    wire: bytes | None = None  # the response as sent by the quick lane (no object kept)

    def data(self) -> bytes | None:
        """The bytes to resend, if any."""
        if self.wire is not None:
            return self.wire
        return None if self.response is None else self.response.to_bytes()


@dataclass(slots=True)
class _Entry:
    created: float
    response: SipResponse | None = None
    final_at: float | None = None
    wire: bytes | None = None


class ServerTransactions:
    """Table of server transactions. ``receive`` before processing, ``respond`` when answering,
    ``expire`` now and then (e.g. once a second)."""

    def __init__(
        self,
        *,
        lifetime: float = 64 * T1,
        pending_lifetime: float = 64 * T1,
        max_entries: int = 10000,
    ) -> None:
        self.lifetime = lifetime
        self.pending_lifetime = pending_lifetime
        self.max_entries = max_entries
        self.evicted = 0
        self.retransmissions = 0
        self._entries: OrderedDict[TransactionKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def receive(self, request: SipRequest, now: float) -> New | Retransmission:
        key = server_key(request)
        entry = self._entries.get(key)
        if request.method == "ACK":
            if entry is not None:
                return Retransmission(key, None, ack=True)
            return New(key)  # an ACK to a 2xx is its own request (end to end), not ours
        if entry is not None:
            self.retransmissions += 1
            return Retransmission(key, entry.response, wire=entry.wire)
        self._insert(key, _Entry(created=now))
        return New(key)

    def receive_key(self, key: TransactionKey, now: float) -> New | Retransmission:
        """``receive`` for a request known only by its key (the quick lane; never an ACK)."""
        entry = self._entries.get(key)
        if entry is not None:
            self.retransmissions += 1
            return Retransmission(key, entry.response, wire=entry.wire)
        self._insert(key, _Entry(created=now))
        return New(key)

    def respond_wire(self, key: TransactionKey, wire: bytes, now: float) -> None:
        """Remember the final response *wire* (bytes) for the transaction *key*."""
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(created=now)
            self._insert(key, entry)
        if entry.final_at is None:
            entry.wire, entry.final_at = wire, now

    def respond(self, request: SipRequest, response: SipResponse, now: float) -> None:
        """Remember ``response`` as the one to resend; a final response starts the expiry."""
        key = server_key(request)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(created=now)
            self._insert(key, entry)
        if entry.final_at is not None:
            return  # the first final response stands (§17.2.2)
        entry.response = response
        if response.status >= 200:
            entry.final_at = now

    def expire(self, now: float) -> int:
        """Forget transactions whose time is up; returns how many (*now* never goes back:
        a monotonic clock, as every caller passes).

        Entries are in creation order and none can expire before ``created`` plus the
        shorter lifetime, so the scan stops at the first entry that young: the cost is the
        expired ones (and the few older ones still waiting), not the whole table, which
        matters when it is called ten times a second over thousands of entries."""
        shortest = min(self.lifetime, self.pending_lifetime)
        gone = []
        for key, e in self._entries.items():
            # The same sum as the rule below (not ``now - shortest``, which rounds apart from
            # it): an entry due exactly now is not taken for a young one.
            if e.created + shortest > now:
                break
            if (e.final_at is not None and now >= e.final_at + self.lifetime) or (
                e.final_at is None and now >= e.created + self.pending_lifetime
            ):
                gone.append(key)
        for key in gone:
            del self._entries[key]
        return len(gone)

    def _insert(self, key: TransactionKey, entry: _Entry) -> None:
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
            self.evicted += 1
        self._entries[key] = entry


def new_branch(rnd: Callable[[int], bytes]) -> str:
    """A fresh RFC 3261 branch from an injected random source (``os.urandom`` in production)."""
    return MAGIC_COOKIE + rnd(8).hex()


def _with_branch(request: SipRequest, branch: str) -> SipRequest:
    vias = request.headers.get_all("Via")
    if not vias:
        raise SipParseError("missing_header:Via")
    top = parse_via(vias[0])
    stamped = Via(top.transport, top.host, top.port, {**top.params, "branch": branch}, top.protocol)
    items: list[tuple[str, str]] = []
    done = False
    for name, value in request.headers:
        if name == "Via" and not done:
            items.append((name, stamped.to_str()))
            done = True
        else:
            items.append((name, value))
    return replace(request, headers=Headers(items))


@dataclass(slots=True)
class ClientTransaction:
    """One non-INVITE request the platform sends. Build with :meth:`start`, send
    ``request`` at once, then again at each ``next_send``; stop at ``timed_out``."""

    request: SipRequest
    started: float
    reliable: bool = False
    t1: float = T1
    t2: float = T2
    t4: float = T4
    proceeding_at: float | None = None
    completed_at: float | None = None
    final: SipResponse | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        request: SipRequest,
        now: float,
        rnd: Callable[[int], bytes],
        *,
        reliable: bool = False,
        t1: float = T1,
        t2: float = T2,
    ) -> ClientTransaction:
        if request.method in ("INVITE", "ACK"):
            raise ValueError("only non-INVITE client transactions are supported")
        return cls(_with_branch(request, new_branch(rnd)), now, reliable, t1, t2)

    @property
    def branch(self) -> str:
        return self.request.top_via.branch or ""

    @property
    def method(self) -> str:
        return self.request.method

    def match(self, response: SipResponse) -> bool:
        """§17.1.3: the response's top Via branch and CSeq method are ours."""
        try:
            return response.top_via.branch == self.branch and response.cseq.method == self.method
        except SipParseError:
            return False

    def on_response(self, response: SipResponse, now: float) -> bool:
        """Record a matched response; True when the application should see it (a provisional,
        or the first final response; retransmitted finals are absorbed)."""
        if self.completed_at is not None:
            return False
        if response.status < 200:
            if self.proceeding_at is None:
                self.proceeding_at = now
            return True
        self.completed_at = now
        self.final = response
        return True

    def deadline(self) -> float:
        """Timer F: the moment the transaction gives up without a final response."""
        return self.started + 64 * self.t1

    def send_times(self) -> list[float]:
        """Every retransmission time from the start (the initial send is ``started``)."""
        if self.reliable:
            return []
        out: list[float] = []
        at, interval = self.started, self.t1
        while True:
            if self.proceeding_at is not None and at >= self.proceeding_at:
                interval = self.t2
            at += interval
            if at >= self.deadline():
                return out
            out.append(at)
            interval = min(interval * 2, self.t2)

    def next_send(self, now: float) -> float | None:
        """The first retransmission time after ``now``; None when there is none to come."""
        if self.completed_at is not None:
            return None
        return next((at for at in self.send_times() if at > now), None)

    def timed_out(self, now: float) -> bool:
        return self.completed_at is None and now >= self.deadline()

    def finished(self, now: float) -> bool:
        """Done and forgettable: timed out, or completed and past Timer K (T4 over UDP)."""
        if self.completed_at is None:
            return self.timed_out(now)
        return self.reliable or now >= self.completed_at + self.t4
