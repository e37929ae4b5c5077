"""The JSON body of a case report, as the exact bytes that are signed and sent.

The body depends only on the stored report, never on the attempt: every retry of a report
sends byte-identical JSON under the same ``Idempotency-Key``, so a receiver that compares the
payload of a repeated key (as the IETF Idempotency-Key draft suggests) sees the same request.
``reported_at`` is therefore when citygate filed the report (巡查上报), not when it was sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["ReportSource", "encode", "iso_utc", "report_body", "report_dict"]


class ReportSource(Protocol):
    """What a report is built from (a ``CaseReportRow`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def observed_at(self) -> datetime: ...
    @property
    def site_id(self) -> str | None: ...
    @property
    def berth_id(self) -> str | None: ...
    @property
    def zone_id(self) -> str | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lon(self) -> float | None: ...
    @property
    def device_id(self) -> str: ...
    @property
    def plate(self) -> str | None: ...
    @property
    def prior_offences(self) -> int: ...
    @property
    def evidence(self) -> Sequence[str]: ...
    @property
    def details(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...


def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with an explicit ``+00:00`` offset; naive input is refused."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("naive datetime: a report carries UTC offsets only")
    return ts.astimezone(UTC).isoformat()


def _coordinate(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"coordinate {value!r} is not a finite number")
    return value


def report_dict(report: ReportSource) -> dict[str, Any]:
    """The report as plain JSON-able data (keys in no particular order)."""
    return {
        "id": report.id,
        "category": report.category,
        "rule_id": report.rule_id,
        "title": report.title,
        "observed_at": iso_utc(report.observed_at),
        "place": {
            "site_id": report.site_id,
            "berth_id": report.berth_id,
            "zone_id": report.zone_id,
            "lat": _coordinate(report.lat),
            "lon": _coordinate(report.lon),
        },
        "device_id": report.device_id,
        "plate": report.plate,
        "prior_offences": report.prior_offences,
        "evidence": list(report.evidence),
        "details": dict(report.details),
        "reported_at": iso_utc(report.created_at),
    }


def encode(data: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 (粤B12345 stays 粤B12345), no NaN."""
    return json.dumps(
        data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def report_body(report: ReportSource) -> bytes:
    """The bytes to sign and POST. Raises ``ValueError`` for data JSON cannot carry."""
    return encode(report_dict(report))
