"""Signatures of reports and callbacks (vectors, tampering, staleness) and the exact bytes of
a report (deterministic, UTF-8, UTC offsets)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.cases.report import report_body, report_dict
from gateway.cases.signing import SignatureError, sign, signature, verify

SECRET = b"citygate-test-secret"
BODY = '{"id":"0b6f1c9e-3f57-4a8e-9d0c-5a1f2e3d4c5b","plate":"粤B12345"}'.encode()
T = 1_790_000_000
# From `printf '1790000000.<BODY>' | openssl dgst -sha256 -hmac citygate-test-secret`.
VECTOR = "21f6e0f87066e79f8accc8d2ce62ffb412965061d6c759e9a982ad4143dee9e5"


def reason(header: str | None, body: bytes = BODY, now: int = T, tol: int = 300) -> str:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, header, body, now, tol)
    return info.value.reason


def test_vector_matches_openssl() -> None:
    assert signature(SECRET, BODY, T) == VECTOR
    assert sign(SECRET, BODY, T) == f"t={T},v1={VECTOR}"
    verify(SECRET, f"t={T},v1={VECTOR}", BODY, T, 300)


def test_tampered_body_wrong_secret_or_moved_timestamp_is_a_mismatch() -> None:
    header = sign(SECRET, BODY, T)
    assert reason(header, BODY.replace("粤".encode(), "京".encode())) == "mismatch"
    assert reason(header, BODY + b" ") == "mismatch"
    assert reason(f"t={T + 1},v1={VECTOR}") == "mismatch"  # the timestamp is signed too
    with pytest.raises(SignatureError, match="mismatch"):
        verify(b"another secret", header, BODY, T, 300)


def test_stale_both_ways_and_the_tolerance_edge() -> None:
    header = sign(SECRET, BODY, T)
    verify(SECRET, header, BODY, T + 300, 300)
    verify(SECRET, header, BODY, T - 300, 300)
    assert reason(header, now=T + 301) == "stale"  # a replay
    assert reason(header, now=T - 301) == "stale"  # the sender's clock runs ahead


def test_a_forgery_is_a_mismatch_even_when_stale() -> None:
    assert reason(f"t={T},v1={'0' * 64}", now=T + 10_000) == "mismatch"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing(header: str | None) -> None:
    assert reason(header) == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={VECTOR}",
        f"t={T}",
        f"t=abc,v1={VECTOR}",
        f"t=-{T},v1={VECTOR}",
        f"t=١٢٣,v1={VECTOR}",  # non-ASCII digits
        f"t={T},t={T},v1={VECTOR}",
        f"t={T},v1={VECTOR[:-1]}",
        f"t={T},v1={VECTOR[:-1]}g",
        f"t={T},v1={VECTOR},{'x' * 2000}=1",
        f"t={T};v1={VECTOR}",
    ],
)
def test_malformed(header: str) -> None:
    assert reason(header) == "malformed"


def test_rotation_extra_keys_case_and_spaces_are_tolerated() -> None:
    verify(SECRET, f"t={T}, v1={'0' * 64}, v1={VECTOR}", BODY, T, 300)  # old and new secret
    verify(SECRET, f"t={T},v0=whatever,v1={VECTOR.upper()}", BODY, T, 300)


def test_empty_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(b"", BODY, T)
    with pytest.raises(ValueError, match="secret"):
        verify(b"", sign(SECRET, BODY, T), BODY, T, 300)


# -- the report body ------------------------------------------------------------------------


@dataclass
class Report:
    id: str = "0b6f1c9e-3f57-4a8e-9d0c-5a1f2e3d4c5b"
    category: str = "0505"
    rule_id: str = "no-parking-fire-lane"
    title: str = "机动车乱停放 消防通道占用"
    observed_at: datetime = datetime(2026, 11, 28, 8, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    site_id: str | None = "sd-wenhua"
    berth_id: str | None = None
    zone_id: str | None = "z1"
    lat: float | None = 38.7812345
    lon: float | None = 101.0823456
    device_id: str = "cam-07"
    plate: str | None = "甘G·A1234"
    prior_offences: int = 2
    evidence: list[str] = field(default_factory=lambda: ["img/1.jpg", "img/2.jpg"])
    details: dict[str, Any] = field(default_factory=lambda: {"b": 1, "a": "消防", "c": None})
    created_at: datetime = datetime(2026, 11, 28, 0, 0, 7, 250000, tzinfo=UTC)


def test_report_body_is_exact_sorted_utf8() -> None:
    body = report_body(Report())
    text = body.decode("utf-8")
    assert "甘G·A1234" in text and "\\u" not in text  # never escaped, never stripped
    assert text.startswith('{"category":"0505","details":{"a":"消防","b":1,"c":null},')
    assert " " not in text.replace("机动车乱停放 消防", "")  # compact separators
    data = json.loads(body)
    assert data == {
        "id": "0b6f1c9e-3f57-4a8e-9d0c-5a1f2e3d4c5b",
        "category": "0505",
        "rule_id": "no-parking-fire-lane",
        "title": "机动车乱停放 消防通道占用",
        "observed_at": "2026-11-28T00:00:05+00:00",  # UTC, with the offset
        "place": {
            "site_id": "sd-wenhua",
            "berth_id": None,
            "zone_id": "z1",
            "lat": 38.7812345,
            "lon": 101.0823456,
        },
        "device_id": "cam-07",
        "plate": "甘G·A1234",
        "prior_offences": 2,
        "evidence": ["img/1.jpg", "img/2.jpg"],
        "details": {"a": "消防", "b": 1, "c": None},
        "reported_at": "2026-11-28T00:00:07.250000+00:00",
    }


def test_report_body_does_not_depend_on_insertion_order() -> None:
    a = Report(details={"x": 1, "y": 2})
    b = Report(details={"y": 2, "x": 1})
    assert report_body(a) == report_body(b)
    assert report_dict(a)["details"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    "bad",
    [
        {"lat": float("nan")},
        {"lon": float("inf")},
        {"details": {"speed": float("nan")}},
        {"observed_at": datetime(2026, 11, 28, 8, 0)},  # naive
    ],
)
def test_report_body_refuses_what_json_cannot_carry(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages
        report_body(replace(Report(), **bad))
