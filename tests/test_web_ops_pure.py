"""The lanes and field pages' pure parts: the reason and the loudspeaker form checked as the API
checks them, which read's picture goes with a decision, a lane camera's state, and the live
markers' coalescing (at most one update per marker per second, the newest wins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.web.live import Coalescer, Mark, field_event
from gateway.web.ops import (
    ReadRef,
    Refused,
    camera_state,
    clean_reason,
    local,
    read_for,
    speaker_args,
    storage,
    thumbnail_index,
)

T = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


def test_reasons_fold_whitespace_and_are_bounded() -> None:
    assert clean_reason("  救护车\t通行 \n ") == "救护车 通行"
    for bad in ("", "  ", "ab", "x" * 201, "a\x07bc", "y" * 5000):
        with pytest.raises(Refused):
            clean_reason(bad)
    assert clean_reason("x" * 200) == "x" * 200


def test_speaker_form_as_the_api_takes_it() -> None:
    a = speaker_args({"text": " 请勿  停车 ", "volume": "", "loop": ""}, 10, 80)
    assert a.as_args() == {"text": "请勿 停车", "volume": 80, "loop": False}
    assert speaker_args({"text": "hi", "volume": "0", "loop": "on"}, 10, 80).as_args() == {
        "text": "hi", "volume": 0, "loop": True,
    }  # fmt: skip
    for form in (
        {"text": ""},
        {"text": "x" * 11},
        {"text": "a\x1bb"},
        {"text": "ok", "volume": "101"},
        {"text": "ok", "volume": "1e2"},
        {"text": "ok", "volume": "٣"},  # an Arabic-Indic digit: isdigit, not ASCII
        {"text": "ok", "volume": " -5"},
        {"text": "ok", "loop": "true"},
    ):
        with pytest.raises(Refused):
            speaker_args(form, 10, 80)


def test_a_decisions_read_is_the_same_plate_closest_in_time() -> None:
    reads = [
        ReadRef(1, "cam-a", "甘G1", T - timedelta(seconds=30), ("x-0-imageFile.jpg",)),
        ReadRef(2, "cam-a", "甘G1", T + timedelta(milliseconds=20), ("a.jpg",)),
        ReadRef(3, "cam-a", "甘G2", T, ("b.jpg",)),
        ReadRef(4, "cam-b", "甘G1", T, ("c.jpg",)),
        ReadRef(5, "cam-a", None, T + timedelta(seconds=1), ()),
    ]
    assert read_for("cam-a", "甘G1", T, reads) == reads[1]
    assert read_for("cam-a", None, T, reads) == reads[4]  # an unreadable plate's read
    assert read_for("cam-a", "甘G9", T, reads) is None
    assert read_for("cam-a", "甘G1", T + timedelta(minutes=5), reads) is None  # too far


def test_the_thumbnail_is_the_plate_crop_when_there_is_one() -> None:
    assert thumbnail_index([]) is None
    assert thumbnail_index(["c/d/1-k-0-imageFile.jpg"]) == 0
    assert thumbnail_index(["c/d/1-k-0-imageFile.jpg", "c/d/1-k-1-imageFragmentFile.jpg"]) == 1
    assert thumbnail_index(["c/d/1-k-0-NormalPic.jpg", "c/d/1-k-1-CutoutPic.jpg"]) == 1
    assert thumbnail_index(["a/licensePlatePicture.jpg", "a/detectionPicture.jpg"]) == 0


def test_camera_states_and_wording() -> None:
    assert camera_state(False, None, None, T) == "unregistered"
    assert camera_state(True, "retired", T, T) == "retired"
    assert camera_state(True, "active", None, T) == "never_seen"
    assert camera_state(True, "active", T - timedelta(minutes=9), T) == "online"
    assert camera_state(True, "active", T - timedelta(minutes=11), T) == "quiet"
    zone = ZoneInfo("Asia/Shanghai")
    assert local(T, zone) == "12-04 09:00:00" and local(T.isoformat(), zone) == "12-04 09:00:00"
    assert local(None, zone) == local("garbage", zone) == local("2026-12-04T01:00", zone) == "—"
    assert storage(None, None) == "—" and storage(512, None) == "512 MB"
    assert storage(2048, 65536) == "2.0 GB / 64.0 GB"


def mark(key: str, x: float = 1.0, online: bool = True) -> Mark:
    return Mark(key, "officer", x, 2.0, online, True, "执法记录仪 <王> & co")


def test_one_update_per_marker_per_second_the_newest_wins() -> None:
    c = Coalescer(1.0)
    assert c.offer(mark("o-1", 1), 0.0) == mark("o-1", 1)  # the first goes at once
    assert c.offer(mark("o-2", 1), 0.1) == mark("o-2", 1)  # another marker is not held
    assert c.offer(mark("o-1", 2), 0.2) is None
    assert c.offer(mark("o-1", 3), 0.5) is None
    assert c.wait_s(0.5) == pytest.approx(0.5)
    assert c.due(0.9) == []
    assert c.due(1.0) == [mark("o-1", 3)]  # only the newest of the two held back
    assert c.due(5.0) == [] and c.wait_s(5.0) is None
    assert c.offer(mark("o-1", 4), 1.5) is None  # 0.5 s after the last one sent
    assert c.due(2.0) == [mark("o-1", 4)]


@given(st.lists(st.tuples(st.sampled_from(["o-1", "o-2", "dr-1"]), st.floats(0, 0.5)), max_size=60))
def test_coalescing_never_sends_a_marker_twice_within_a_second(
    steps: list[tuple[str, float]],
) -> None:
    c = Coalescer(1.0)
    now, sent, last_offered = 0.0, [], {}
    for i, (key, dt) in enumerate(steps):
        now += dt
        sent += [(now, m.key, m.x) for m in c.due(now)]
        m = mark(key, float(i))
        last_offered[key] = m.x
        out = c.offer(m, now)
        if out is not None:
            sent.append((now, out.key, out.x))
    now += 2.0
    sent += [(now, m.key, m.x) for m in c.due(now)]
    for key in last_offered:
        times = [t for t, k, _ in sent if k == key]
        assert all(b - a >= 1.0 - 1e-9 for a, b in pairwise(times)), times
        assert [x for _, k, x in sent if k == key][-1] == last_offered[key]  # the newest lands


def test_a_field_event_is_one_escaped_line() -> None:
    ev = field_event(Mark("o-1\n", "officer", 10.5, 20.0, False, True, '<b>"王" & co'))
    text = ev.decode()
    assert text.startswith("event: field\ndata: <i ") and text.endswith("></i>\n\n")
    assert text.count("\n") == 3 and "<b>" not in text and "&lt;b&gt;" in text
    assert 'data-on="0"' in text and 'data-x="10.5"' in text
