"""The online rule: keepalive age × count, never past the registration, and a restart that
neither marks every cam offline nor keeps a silent one online forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivers.gb28181.presence import PresenceState, deadline, is_online

T0 = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)


def s(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


@pytest.mark.parametrize(
    ("last", "until", "now", "online"),
    [
        (s(0), s(3600), s(0), True),
        (s(0), s(3600), s(179.9), True),
        (s(0), s(3600), s(180), False),  # 60 s × 3 of silence: offline at the deadline
        (s(0), s(3600), s(500), False),
        (s(3590), s(3600), s(3599), True),
        (s(3590), s(3600), s(3600), False),  # keepalives fresh but registration expired
        (s(4000), s(3600), s(4001), False),  # keepalives after expiry do not revive it
        (None, s(3600), s(0), False),  # never heard from
        (s(0), None, s(1), False),  # not registered (or unregistered)
    ],
)
def test_is_online(
    last: datetime | None, until: datetime | None, now: datetime, online: bool
) -> None:
    assert is_online(last, until, now, 60, 3) is online


def test_deadline_is_the_earlier_of_the_two() -> None:
    assert deadline(s(0), s(3600), 60, 3) == s(180)
    assert deadline(s(3500), s(3600), 60, 3) == s(3600)
    assert deadline(s(0), s(3600), 5, 2) == s(10)


@pytest.mark.parametrize(("interval", "count"), [(0, 3), (-1, 3), (60, 0), (60, True)])
def test_nonsense_parameters_refused(interval: float, count: int) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        is_online(s(0), s(10), s(1), interval, count)


def test_keepalives_keep_it_online_silence_takes_it_offline() -> None:
    p = PresenceState(None, None).registered(s(0), expires_s=3600)
    assert p.online(s(1))  # online between REGISTER and the first keepalive
    for t in range(60, 1200, 60):
        p = p.seen(s(t))
        assert p.online(s(t + 1))
    assert p.online(s(1140 + 179))
    assert not p.online(s(1140 + 180))
    assert p.deadline == s(1320)


def test_seen_never_moves_back() -> None:
    p = PresenceState(s(100), s(3600)).seen(s(50))  # a late-processed older message
    assert p.last_keepalive == s(100)


def test_unregister_is_offline_at_once() -> None:
    p = PresenceState(None, None).registered(s(0), 3600).unregistered()
    assert not p.online(s(1))
    assert p.deadline is None


def test_restart_restores_online_until_the_stored_deadline() -> None:
    # stored before the restart: last keepalive at 100 s, registered until 3600 s
    p = PresenceState.restore(s(100), s(3600), interval_s=60, count=3)
    assert not p.confirmed
    assert p.online(s(150))  # boot at 150 s: still online, not everybody offline
    assert p.deadline == s(280)
    assert not p.online(s(280))  # no keepalive since: offline at the same deadline as before
    confirmed = p.seen(s(200))
    assert confirmed.confirmed and confirmed.online(s(370))


def test_restart_after_a_long_outage_is_offline_at_boot() -> None:
    p = PresenceState.restore(s(100), s(3600), 60, 3)
    assert not p.online(s(900))  # the platform was down for 13 minutes; the cam was silent


def test_restore_respects_the_registration() -> None:
    p = PresenceState.restore(s(3500), s(3600), 60, 3)
    assert p.online(s(3550)) and not p.online(s(3600))


def test_register_expiry_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expires_s"):
        PresenceState(None, None).registered(s(0), 0)
