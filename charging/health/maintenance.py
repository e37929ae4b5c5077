"""Maintenance reports: a charger faulted or offline for longer than allowed becomes one case
report per episode for the town's case system."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from charging.health.liveness import offline_text, outage_start
from charging.health.records import (
    DAY,
    DEFAULT_FACTOR,
    DEFAULT_GRACE,
    FAULTED,
    ChargerState,
    MaintenanceKind,
    canonical_status,
)
from charging.health.summary import status_text
from events import CaseRaised, utc


@dataclass(frozen=True, slots=True)
class MaintenanceFinding:
    """A charger faulted or offline for longer than allowed. ``observed_at`` is the instant it
    crossed the threshold (``since + after``): the same on every sweep of the same episode, so
    the case store files one report per episode."""

    charger_id: str
    site_id: str
    kind: MaintenanceKind
    since: datetime
    observed_at: datetime
    now: datetime
    reason: str
    connector_id: int | None = None
    connectors: tuple[int, ...] = ()
    status: str | None = None
    error_code: str | None = None
    vendor_error_code: str | None = None
    info: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None

    @property
    def duration(self) -> timedelta:
        return self.now - self.since

    @property
    def title(self) -> str:
        """``充电桩故障 GroundFailure`` / ``充电桩离线`` (the vendor code when the code is only
        OtherError or absent)."""
        if self.kind == "offline":
            return "充电桩离线"
        code = self.error_code
        if code in (None, "OtherError") and self.vendor_error_code:
            code = self.vendor_error_code
        return f"充电桩故障 {code}" if code else "充电桩故障"

    def to_case(self, *, category: str = "charger", dedup_window: timedelta = DAY) -> CaseRaised:
        """The report for the case outbox; ``category`` is the town's code for charger
        maintenance ([ocpp] configuration of the gateway)."""
        details: dict[str, str | int | float | bool | None] = {
            "charger_id": self.charger_id,
            "kind": self.kind,
            "since": self.since.isoformat(),
            "minutes": int(self.duration.total_seconds() // 60),
            "reason": self.reason,
        }
        if self.kind == "faulted":
            details |= {
                "connector_id": self.connector_id,
                "connectors": ",".join(str(c) for c in self.connectors),
                "status": self.status,
                "error_code": self.error_code,
                "vendor_error_code": self.vendor_error_code,
                "info": self.info,
            }
        details |= {"vendor": self.vendor, "model": self.model, "firmware": self.firmware}
        where = (
            f"{self.charger_id}/{self.connector_id}"
            if self.connector_id is not None
            else (self.charger_id)
        )
        return CaseRaised(
            device_id=self.charger_id,
            ts=self.observed_at,
            category=category,
            rule_id=f"charger-{self.kind}",
            title=self.title,
            dedup_key=f"charger|{self.charger_id}|{self.kind}",
            dedup_window_s=int(dedup_window.total_seconds()),
            site_id=self.site_id,
            evidence=(
                f"{'status' if self.kind == 'faulted' else 'outage'}:{where}@"
                f"{self.since.isoformat()}",
            ),
            details=details,
        )


def maintenance_due(
    state: ChargerState,
    now: datetime,
    faulted_after: timedelta,
    offline_after: timedelta,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> MaintenanceFinding | None:
    """A finding when a connector has been Faulted for longer than ``faulted_after`` (the
    longest-faulted one; faults come first), else when the charger has been offline for longer
    than ``offline_after``. A charger never heard of raises nothing: commissioning is not a
    fault."""
    now = utc(now)
    faulted = sorted(
        (c.since, cid, c)
        for cid, c in state.connectors.items()
        if canonical_status(c.status) == FAULTED and c.since is not None
    )
    if faulted and now - faulted[0][0] > faulted_after:
        since, cid, c = faulted[0]
        return MaintenanceFinding(
            charger_id=state.charger_id,
            site_id=state.site_id,
            kind="faulted",
            since=since,
            observed_at=since + faulted_after,
            now=now,
            reason=status_text(replace(c, status=FAULTED)),
            connector_id=cid,
            connectors=tuple(sorted(f[1] for f in faulted)),
            status=FAULTED,
            error_code=c.error_code,
            vendor_error_code=c.vendor_error_code,
            info=c.info,
            vendor=state.vendor,
            model=state.model,
            firmware=state.firmware,
        )
    start = outage_start(state, now, factor, grace)
    if start is not None and now - start > offline_after:
        return MaintenanceFinding(
            charger_id=state.charger_id,
            site_id=state.site_id,
            kind="offline",
            since=start,
            observed_at=start + offline_after,
            now=now,
            reason=offline_text(state, now),
            vendor=state.vendor,
            model=state.model,
            firmware=state.firmware,
        )
    return None
