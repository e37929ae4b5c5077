"""Transactions: a retransmitted request is answered from the cache, not processed again; the
platform's own requests are retransmitted on the RFC 3261 schedule and given up at Timer F."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from drivers.sip.message import Headers, SipRequest, SipResponse, parse_message
from drivers.sip.responses import response_to
from drivers.sip.transactions import (
    ClientTransaction,
    New,
    Retransmission,
    ServerTransactions,
    new_branch,
    server_key,
)

CAM = "34020000001320000001"


def request(
    method: str = "MESSAGE",
    branch: str = "z9hG4bK776asdhds",
    cseq: int = 20,
    host: str = "192.168.1.64:5060",
    call_id: str = "c1",
    from_tag: str = "f1",
) -> SipRequest:
    via = f"SIP/2.0/UDP {host}" + (f";branch={branch}" if branch else "")
    return SipRequest(
        method,
        "sip:34020000002000000001@3402000000",
        headers=Headers(
            [
                ("Via", via),
                ("From", f"<sip:{CAM}@3402000000>;tag={from_tag}"),
                ("To", "<sip:34020000002000000001@3402000000>"),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {'INVITE' if method == 'ACK' else method}"),
            ]
        ),
    )


def test_retransmission_answered_from_cache() -> None:
    table = ServerTransactions()
    req = request()
    assert isinstance(table.receive(req, 0.0), New)
    # Retransmitted before the application answered: nothing to send yet.
    early = table.receive(req, 0.5)
    assert isinstance(early, Retransmission) and early.response is None
    ok = response_to(req, 200)
    table.respond(req, ok, 0.6)
    same = parse_message(req.to_bytes())  # the same bytes, parsed anew
    assert isinstance(same, SipRequest)
    again = table.receive(same, 1.5)
    assert isinstance(again, Retransmission) and again.response == ok
    assert table.retransmissions == 2


def test_first_final_response_stands() -> None:
    table = ServerTransactions()
    req = request()
    table.receive(req, 0.0)
    table.respond(req, response_to(req, 100), 0.0)
    got = table.receive(req, 0.1)
    assert isinstance(got, Retransmission) and got.response is not None
    assert got.response.status == 100
    table.respond(req, response_to(req, 200), 0.2)
    table.respond(req, response_to(req, 500), 0.3)
    got = table.receive(req, 0.4)
    assert isinstance(got, Retransmission) and got.response is not None
    assert got.response.status == 200


@pytest.mark.parametrize(
    "other",
    [
        request(branch="z9hG4bKother"),
        request(host="192.168.1.65:5060"),
        request(method="SUBSCRIBE"),  # same branch, other method: another transaction
    ],
)
def test_distinct_transactions(other: SipRequest) -> None:
    table = ServerTransactions()
    assert isinstance(table.receive(request(), 0.0), New)
    assert isinstance(table.receive(other, 0.0), New)
    assert len(table) == 2


def test_ack_matches_its_invite_and_is_absorbed() -> None:
    table = ServerTransactions()
    invite = request("INVITE")
    table.receive(invite, 0.0)
    table.respond(invite, response_to(invite, 486), 0.1)
    ack = table.receive(request("ACK"), 0.2)
    assert isinstance(ack, Retransmission) and ack.ack and ack.response is None
    # An ACK with no transaction (a 2xx ACK has its own branch) goes to the application.
    assert isinstance(table.receive(request("ACK", branch="z9hG4bKnew"), 0.3), New)


def test_rfc2543_clients_matched_without_magic_cookie() -> None:
    table = ServerTransactions()
    old = request(branch="")
    assert server_key(old)[0] == "2543"
    assert server_key(request(branch="123abc"))[0] == "2543"  # a branch without the cookie
    assert isinstance(table.receive(old, 0.0), New)
    assert isinstance(table.receive(request(branch=""), 0.1), Retransmission)
    assert isinstance(table.receive(request(branch="", cseq=21), 0.2), New)
    assert isinstance(table.receive(request(branch="", from_tag="f2"), 0.3), New)
    assert isinstance(table.receive(request(branch="", call_id="c2"), 0.4), New)


def test_expiry_after_timer_j_and_pending_bound() -> None:
    table = ServerTransactions()  # UDP: 32 s
    done, stuck = request(), request(branch="z9hG4bKstuck")
    table.receive(done, 0.0)
    table.respond(done, response_to(done, 200), 1.0)
    table.receive(stuck, 0.0)
    assert table.expire(31.9) == 0
    assert table.expire(32.0) == 1  # the unanswered one, 32 s after arrival
    assert table.expire(33.0) == 1  # the answered one, 32 s after its final response
    assert isinstance(table.receive(done, 33.0), New)
    tcp = ServerTransactions(lifetime=0.0)
    tcp.receive(done, 0.0)
    tcp.respond(done, response_to(done, 200), 0.0)
    assert tcp.expire(0.0) == 1


def test_table_bounded_oldest_evicted() -> None:
    table = ServerTransactions(max_entries=3)
    reqs = [request(branch=f"z9hG4bK{i}") for i in range(5)]
    for i, req in enumerate(reqs):
        table.receive(req, float(i))
    assert len(table) == 3 and table.evicted == 2
    assert isinstance(table.receive(reqs[0], 5.0), New)  # forgotten: processed again
    assert isinstance(table.receive(reqs[4], 5.0), Retransmission)


def counter_rnd() -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def test_new_branch_from_injected_source() -> None:
    rnd = counter_rnd()
    assert new_branch(rnd) == "z9hG4bK0000000000000000"
    assert new_branch(rnd) == "z9hG4bK0000000000000001"


def client(now: float = 100.0, *, reliable: bool = False) -> ClientTransaction:
    sub = request("SUBSCRIBE", branch="placeholder")
    return ClientTransaction.start(sub, now, lambda n: b"\xab" * n, reliable=reliable)


def test_client_timer_e_schedule_over_udp() -> None:
    tx = client()
    assert tx.branch == "z9hG4bK" + "ab" * 8
    assert tx.request.top_via.branch == tx.branch
    offsets = [round(t - 100.0, 3) for t in tx.send_times()]
    # T1=0.5 doubling to T2=4, then every 4 s, last one before Timer F = 32 s.
    assert offsets == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.next_send(100.0) == 100.5
    assert tx.next_send(100.5) == 101.5
    assert tx.next_send(131.5) is None
    assert not tx.timed_out(131.9) and tx.timed_out(132.0) and tx.finished(132.0)


def test_client_provisional_moves_to_t2_and_final_stops() -> None:
    tx = client()
    trying = SipResponse(100, "Trying", headers=tx.request.headers)
    assert tx.match(trying)
    assert tx.on_response(trying, 100.6)
    offsets = [round(t - 100.0, 3) for t in tx.send_times()]
    assert offsets[:4] == [0.5, 1.5, 5.5, 9.5]  # after the 1xx, every T2
    ok = response_to(tx.request, 200)
    assert tx.match(ok) and tx.on_response(ok, 101.0)
    assert not tx.on_response(ok, 101.2)  # a retransmitted final is absorbed
    assert tx.next_send(101.0) is None and not tx.timed_out(200.0)
    assert not tx.finished(105.9) and tx.finished(106.0)  # Timer K = T4 over UDP


def test_client_match_needs_branch_and_method() -> None:
    tx = client()
    ok = response_to(tx.request, 200)
    other_branch = response_to(request("SUBSCRIBE", branch="z9hG4bKelse"), 200)
    other_method = SipResponse(200, "OK", headers=ok.headers.set("CSeq", "20 MESSAGE"))
    assert tx.match(ok)
    assert not tx.match(other_branch)
    assert not tx.match(other_method)
    assert not tx.match(SipResponse(200, "OK", headers=ok.headers.set("CSeq", "garbage")))


def test_client_over_tcp_never_retransmits_but_times_out() -> None:
    tx = client(reliable=True)
    assert tx.send_times() == [] and tx.next_send(100.0) is None
    assert tx.timed_out(132.0)


def test_client_refuses_invite() -> None:
    with pytest.raises(ValueError, match="non-INVITE"):
        ClientTransaction.start(request("INVITE"), 0.0, lambda n: b"\0" * n)
