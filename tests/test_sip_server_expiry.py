"""Server transactions are forgotten exactly when Timer J (or the pending lifetime) is up,
answered at once, later or never, with the scan that stops at the first young entry:
compared with the plain rule on random traffic in time order."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest
from drivers.sip.responses import response_to
from drivers.sip.transactions import ServerTransactions


def request(n: int) -> SipRequest:
    return SipRequest(
        "MESSAGE",
        "sip:62072500082000000001@6207250008",
        headers=Headers(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n:08d}"),
                ("From", "<sip:a@b>;tag=1"),
                ("To", "<sip:c@d>"),
                ("Call-ID", f"c{n}"),
                ("CSeq", f"{n + 1} MESSAGE"),
            ]
        ),
    )


# each step: time passes, then a new request arrives or the k-th pending one is answered
STEP = st.tuples(st.floats(0, 6), st.one_of(st.none(), st.integers(0, 10)))


@given(
    steps=st.lists(STEP, min_size=1, max_size=60),
    lifetime=st.sampled_from([0.0, 2.0, 32.0]),
    pending=st.sampled_from([2.0, 32.0]),
)
# Found by hypothesis: a request due exactly at the scan, where ``now - 2.0`` rounded above its
# creation time and the scan stopped there, taking it for a young one.
@example(
    steps=[
        (4.539623294460407, None),
        (5.183456696832852, None),
        (5.2668052784784045, None),
        (2.0, None),
    ],
    lifetime=2.0,
    pending=2.0,
)
def test_expiry_matches_the_rule(
    steps: list[tuple[float, int | None]], lifetime: float, pending: float
) -> None:
    table = ServerTransactions(lifetime=lifetime, pending_lifetime=pending)
    created: dict[int, float] = {}
    final: dict[int, float] = {}
    now = 0.0

    def expired(n: int, t: float) -> bool:
        if n in final:
            return t >= final[n] + lifetime
        return t >= created[n] + pending

    for gap, answer in steps:
        now += gap
        table.expire(now)
        alive = {n for n in created if not expired(n, now)}
        assert len(table) == len(alive)
        if answer is None:
            n = len(created)
            created[n] = now
            table.receive(request(n), now)
        else:
            waiting = sorted(n for n in alive if n not in final)
            if waiting:
                n = waiting[answer % len(waiting)]
                table.respond(request(n), response_to(request(n), 200), now)
                final[n] = now
    table.expire(now + max(lifetime, pending) + 1)
    assert len(table) == 0
