"""The platform's client transactions in flight: send, retransmit over UDP (Timer E), match
the response by branch, give up at Timer F. ``tick`` is driven by the service's timer; the
transaction logic itself is ``drivers.sip.transactions.ClientTransaction`` (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.sip.message import SipRequest, SipResponse
from drivers.sip.transactions import ClientTransaction
from drivers.sip.transport import Peer

__all__ = ["Outgoing"]

Done = Callable[[SipResponse | None], None]  # the final response, or None on timeout


@dataclass(slots=True)
class _Flight:
    tx: ClientTransaction
    peer: Peer
    done: Done
    next_at: float | None


class Outgoing:
    def __init__(
        self,
        send: Callable[[Peer, bytes], bool],
        rnd: Callable[[int], bytes],
        *,
        max_in_flight: int = 20000,
    ) -> None:
        self._send = send
        self._rnd = rnd
        self.max_in_flight = max_in_flight
        self._flights: dict[str, _Flight] = {}
        self.timeouts = 0
        self.refused = 0  # not sent: too many in flight, or no way to the peer

    def __len__(self) -> int:
        return len(self._flights)

    def start(self, request: SipRequest, peer: Peer, now: float, done: Done) -> bool:
        """Send *request* to *peer* in a new client transaction; False when it could not go."""
        if len(self._flights) >= self.max_in_flight:
            self.refused += 1
            return False
        reliable = peer.transport == "TCP"
        tx = ClientTransaction.start(request, now, self._rnd, reliable=reliable)
        if not self._send(peer, tx.request.to_bytes()):
            self.refused += 1
            return False
        self._flights[tx.branch] = _Flight(tx, peer, done, tx.next_send(now))
        return True

    def on_response(self, response: SipResponse, now: float) -> bool:
        """Hand a response to its transaction; False when it matches none of ours."""
        try:
            branch = response.top_via.branch or ""
        except ValueError:
            return False
        flight = self._flights.get(branch)
        if flight is None or not flight.tx.match(response):
            return False
        if flight.tx.on_response(response, now) and response.status >= 200:
            del self._flights[branch]
            flight.done(response)
        elif response.status < 200:
            flight.next_at = flight.tx.next_send(now)
        return True

    def tick(self, now: float) -> None:
        """Retransmit what is due and end what timed out."""
        for branch, flight in list(self._flights.items()):
            if flight.tx.timed_out(now):
                del self._flights[branch]
                self.timeouts += 1
                flight.done(None)
            elif flight.next_at is not None and now >= flight.next_at:
                self._send(flight.peer, flight.tx.request.to_bytes())
                flight.next_at = flight.tx.next_send(now)
