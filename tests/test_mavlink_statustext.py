"""STATUSTEXT lines in chunks (MAVLink 2 ``id``/``chunk_seq``), joined: whole lines, lines with
a chunk lost or never ended (given out as far as they got, marked), and the joiner's bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dronelink.mavlink.statustext import CHUNK, GAP, StatusTextJoiner


def chunks(text: str) -> list[str]:
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    return parts if len(text) % CHUNK else [*parts, ""]  # a full last chunk: an empty end


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=400))
def test_a_line_in_chunks_comes_out_whole_once(text: str) -> None:
    j, out = StatusTextJoiner(), []
    for seq, part in enumerate(chunks(text)):
        out += j.add("v", 7, seq, part, 0.0)
    assert out == [text]
    assert j.expire(100.0) == []


def test_id_zero_is_a_line_of_its_own() -> None:
    assert StatusTextJoiner().add("v", 0, 0, "Mode RTL", 0.0) == ["Mode RTL"]


def test_a_lost_chunk_gives_out_what_came_marked_and_goes_on() -> None:
    j = StatusTextJoiner()
    a, b, c = "A" * CHUNK, "B" * CHUNK, "end"
    assert j.add("v", 3, 0, a, 0.0) == []
    assert j.add("v", 3, 2, c, 0.1) == [a + GAP, GAP + c]  # chunk 1 lost
    assert j.add("v", 4, 1, b, 0.2) == []  # its start lost: begun from here
    assert j.add("v", 4, 2, c, 0.3) == [GAP + b + c]


def test_a_line_whose_end_never_comes_expires_marked() -> None:
    j = StatusTextJoiner(timeout_s=2.0)
    j.add(("sys", 1), 9, 0, "x" * CHUNK, 0.0)
    assert j.expire(1.9) == []
    assert j.expire(2.0) == [(("sys", 1), "x" * CHUNK + GAP)]
    assert j.expire(10.0) == []


def test_two_senders_with_the_same_id_do_not_mix() -> None:
    j = StatusTextJoiner()
    j.add("a", 1, 0, "a" * CHUNK, 0.0)
    j.add("b", 1, 0, "b" * CHUNK, 0.0)
    assert j.add("a", 1, 1, "!", 0.0) == ["a" * CHUNK + "!"]
    assert j.add("b", 1, 1, "?", 0.0) == ["b" * CHUNK + "?"]


def test_bounds_hold_whatever_a_sender_does() -> None:
    j = StatusTextJoiner(max_chunks=3, max_open=2)
    out = [line for seq in range(3) for line in j.add("v", 5, seq, "z" * CHUNK, 0.0)]
    assert out == ["z" * CHUNK * 3 + GAP]  # cut at max_chunks
    j.add("v", 10, 0, "p" * CHUNK, 0.0)
    j.add("v", 11, 0, "q" * CHUNK, 1.0)
    assert j.add("v", 12, 0, "r" * CHUNK, 2.0) == ["p" * CHUNK + GAP]  # the oldest gives way
    assert len(j._open) == 2


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.text(max_size=60)), max_size=60))
def test_any_chunk_sequence_never_raises_and_stays_bounded(
    seq: list[tuple[int, int, str]],
) -> None:
    j = StatusTextJoiner(max_open=4, max_chunks=5)
    for i, (text_id, chunk, text) in enumerate(seq):
        j.add("v", text_id, chunk, text, float(i))
        assert len(j._open) <= 4
    j.expire(1e9)
    assert not j._open
