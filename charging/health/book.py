"""The charger book: every charger's state, fed by the gateway's charger events, with the
probes and sweeps that decide liveness, and the reads (health, fleet, availability, faults,
energy) the API and the CLI show. The rules themselves live in the sibling modules; the book
keeps the state and the recent history they run on.

Just over 400 lines: the book is the state the sibling modules' rules run on; it holds no rule
of its own.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from charging.health.availability import Availability, connector_timeline, mean, window
from charging.health.energy import ENDED_KEPT, charger_energy_today_wh, meter
from charging.health.history import fault_history, from_history, prune, record, seed
from charging.health.liveness import (
    alive,
    liveness,
    offline_text,
    outage_start,
    restarted,
    socket_down,
)
from charging.health.maintenance import MaintenanceFinding, maintenance_due
from charging.health.ocpi import SiteAvailability, site_availability
from charging.health.records import (
    DAY,
    DEFAULT_FACTOR,
    DEFAULT_GRACE,
    DEFAULT_KEEP,
    MAX_CLOCK_SKEW,
    PROBE_RETRY,
    WEEK,
    Change,
    ChargerState,
    ConnectorState,
    FaultRecord,
    Outage,
    OutageEnded,
    OutageStarted,
    StatusPoint,
    StatusRecorded,
    StatusReport,
    UnknownCharger,
    canonical_status,
    clean_code,
    clean_text,
)
from charging.health.summary import ChargerHealth, FleetSummary, fleet_summary, health
from charging.health.transitions import CHARGER_EVENTS, changes, charger_event
from events import (
    ChargerDisconnected,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    Event,
    MeterSample,
    utc,
)


class ChargerBook:
    """Every charger's health, fed by events. Not thread-safe; one instance per gateway process
    (chargers are sticky to an instance). ``apply`` does O(connectors) work, plus a bisect into
    the connector's history for a StatusNotification.

    Keeps in memory ``keep`` of status history per connector (and of outages), enough for the
    7-day availability; the gateway stores the ``StatusRecorded``/``OutageEnded`` changes for
    longer history and hands the recent part back to ``restore`` after a restart.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        *,
        factor: float = DEFAULT_FACTOR,
        grace: timedelta = DEFAULT_GRACE,
        keep: timedelta = DEFAULT_KEEP,
        probe_retry: timedelta = PROBE_RETRY,
    ) -> None:
        if factor <= 0 or grace < timedelta(0) or keep < WEEK or probe_retry <= timedelta(0):
            raise ValueError("factor and probe_retry must be > 0, grace >= 0, keep >= 7 days")
        self.zone = zone
        self.factor = factor
        self.grace = grace
        self.keep = keep
        self.probe_retry = probe_retry
        self._states: dict[str, ChargerState] = {}
        self._history: dict[tuple[str, int], list[StatusReport]] = {}
        self._outages: dict[str, list[Outage]] = {}
        self._announced: dict[str, datetime] = {}
        self._ended: dict[tuple[str, int], deque[str]] = {}

    # -- setting up

    def register(
        self,
        charger_id: str,
        site_id: str,
        *,
        heartbeat_s: int = 300,
        connector_ids: Iterable[int] = (),
    ) -> ChargerState:
        """Add a charger from the registry, or update its site, heartbeat interval (the one the
        gateway gives it at boot) and connectors; live state is kept."""
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0")
        old = self._states.get(charger_id) or ChargerState(charger_id, site_id)
        conns = dict(old.connectors)
        for cid in connector_ids:
            if cid < 0:
                raise ValueError(f"connector id must be >= 0, got {cid}")
            conns.setdefault(cid, ConnectorState(cid))
        new = replace(old, site_id=site_id, heartbeat_s=heartbeat_s, connectors=conns)
        self._states[charger_id] = new
        return new

    def forget(self, charger_id: str) -> None:
        """Drop a charger (retired or gone from the registry): it leaves the fleet, sweeps and
        maintenance findings. Unknown ids are ignored."""
        self._states.pop(charger_id, None)
        self._outages.pop(charger_id, None)
        self._announced.pop(charger_id, None)
        for key in [k for k in self._history if k[0] == charger_id]:
            del self._history[key]
            self._ended.pop(key, None)

    def restore(
        self,
        state: ChargerState,
        *,
        now: datetime,
        history: Mapping[int, Iterable[StatusReport]] | None = None,
        outages: Iterable[Outage] = (),
        restart: bool = True,
    ) -> ChargerState:
        """Load a persisted charger at ``now``. After a gateway restart (``restart``) no socket
        survives: see ``liveness.restarted`` (a charger that was connected has the grace from
        ``now`` to reconnect). Without ``restart`` the state is taken as it was persisted: a
        reader (the CLI) sees the running gateway's book. ``history`` (recent reports per
        connector) and closed ``outages`` feed availability; without history a connector's
        snapshot seeds it. Energy today, the last meter reading and the transaction each
        connector carries are kept as given."""
        now = utc(now)
        s = restarted(state, now, self.grace) if restart else state
        given = {cid: sorted(rs, key=lambda r: r.ts) for cid, rs in (history or {}).items()}
        conns = dict(s.connectors)
        for cid in sorted(set(conns) | set(given)):
            conn = conns.get(cid) or ConnectorState(cid)
            reports = given.get(cid) or []
            if not reports and conn.status is not None and conn.since is not None:
                reports = seed(conn, conn.since)
            if reports:
                prune(reports, self.keep)
                conns[cid] = from_history(conn, reports)
            self._history[(s.charger_id, cid)] = reports
            self._ended.pop((s.charger_id, cid), None)
        self._announced.pop(s.charger_id, None)
        s = replace(s, connectors=conns)
        self._outages[s.charger_id] = sorted(
            (o for o in outages if o.end is not None), key=lambda o: o.start
        )
        self._states[s.charger_id] = s
        return s

    # -- reading

    def __contains__(self, charger_id: object) -> bool:
        return charger_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def state(self, charger_id: str) -> ChargerState:
        try:
            return self._states[charger_id]
        except KeyError:
            raise UnknownCharger(charger_id) from None

    def states(self) -> tuple[ChargerState, ...]:
        return tuple(self._states[k] for k in sorted(self._states))

    def charger_ids(self) -> tuple[str, ...]:
        """Every charger in the book, in the order they were registered."""
        return tuple(self._states)

    def _among(self, among: Iterable[str] | None) -> Iterable[ChargerState]:
        if among is None:
            return self.states()
        return (s for c in among if (s := self._states.get(c)) is not None)

    def history(self, charger_id: str, connector_id: int) -> tuple[StatusReport, ...]:
        """The connector's recent reports (oldest first), back-dated ones in their place."""
        self.state(charger_id)
        return tuple(self._history.get((charger_id, connector_id), ()))

    def outages(self, charger_id: str, now: datetime) -> tuple[Outage, ...]:
        """Recent closed outages and, if the charger is offline at ``now``, the open one."""
        s = self.state(charger_id)
        closed = tuple(self._outages.get(charger_id, ()))
        start = outage_start(s, now, self.factor, self.grace)
        return (*closed, Outage(start)) if start is not None else closed

    def timeline(
        self, charger_id: str, connector_id: int, now: datetime
    ) -> tuple[StatusPoint, ...]:
        """The connector's effective status over time (see ``connector_timeline``)."""
        own = [(r.ts, r.status) for r in self.history(charger_id, connector_id)]
        whole = (
            [(r.ts, r.status) for r in self._history.get((charger_id, 0), ())]
            if connector_id != 0
            else []
        )
        return connector_timeline(own, whole, self.outages(charger_id, now))

    def availability(self, charger_id: str, now: datetime) -> Availability:
        """24 h and 7-day availability per connector (1..n; connector 0 only if there is no
        other) and for the charger: the mean over its connectors."""
        now = utc(now)
        s = self.state(charger_id)
        ids = sorted(cid for cid in s.connectors if cid >= 1) or sorted(s.connectors)
        per: dict[int, tuple[float | None, float | None]] = {}
        for cid in ids:
            line = self.timeline(charger_id, cid, now)
            per[cid] = (window(line, now, DAY), window(line, now, WEEK))
        return Availability(
            day=mean(v[0] for v in per.values()),
            week=mean(v[1] for v in per.values()),
            connectors=per,
        )

    def faults(self, charger_id: str) -> tuple[FaultRecord, ...]:
        """Recent fault and warning episodes of all connectors, newest first."""
        s = self.state(charger_id)
        out = [
            f
            for cid in s.connectors
            for f in fault_history(cid, self._history.get((charger_id, cid), ()))
        ]
        out.sort(key=lambda f: (f.start, f.connector_id), reverse=True)
        return tuple(out)

    def health(self, charger_id: str, now: datetime) -> ChargerHealth:
        return health(self.state(charger_id), now, factor=self.factor, grace=self.grace)

    def fleet(self, now: datetime) -> FleetSummary:
        return fleet_summary(self.states(), now, factor=self.factor, grace=self.grace)

    def sites(self, now: datetime) -> dict[str, SiteAvailability]:
        return site_availability(self.states(), now, factor=self.factor, grace=self.grace)

    def energy_today_wh(self, charger_id: str, now: datetime) -> float:
        return charger_energy_today_wh(self.state(charger_id), now, self.zone)

    def maintenance(
        self, now: datetime, faulted_after: timedelta, offline_after: timedelta
    ) -> tuple[MaintenanceFinding, ...]:
        """``maintenance_due`` for every charger (by id)."""
        found = (
            maintenance_due(
                s, now, faulted_after, offline_after, factor=self.factor, grace=self.grace
            )
            for s in self.states()
        )
        return tuple(f for f in found if f is not None)

    # -- liveness: probes and sweeps

    def due_probes(self, now: datetime, among: Iterable[str] | None = None) -> tuple[str, ...]:
        """Chargers to probe now (TriggerMessage): socket up, silent past ``heartbeat_s *
        factor``, and no probe in flight (or one unanswered for ``probe_retry``). ``among``
        limits the look to some chargers, so a caller can walk a big fleet in slices."""
        now = utc(now)
        return tuple(
            s.charger_id
            for s in self._among(among)
            if s.connected
            and liveness(s, now, self.factor, self.grace) == "probing"
            and (
                s.probe_state != "pending"
                or s.probe_at is None
                or now - s.probe_at >= self.probe_retry
            )
        )

    def probe_sent(self, charger_id: str, now: datetime) -> tuple[Change, ...]:
        """The gateway sent the probe at ``now``."""
        old = self.state(charger_id)
        return self._commit(old, replace(old, probe_state="pending", probe_at=utc(now)), [])

    def probe_result(self, charger_id: str, ok: bool, now: datetime) -> tuple[Change, ...]:
        """The probe's outcome at ``now``: answered (a sign of life) or not (offline, the outage
        starting at the last sign of life). A charger heard recently enough to be online
        at ``now`` outweighs a timed-out probe."""
        now = utc(now)
        old = self.state(charger_id)
        if ok:
            out: list[Change] = []
            new = alive(replace(old, probe_state="idle", probe_at=None), now)
            self._close_outage(old, new, now, out)
            return self._commit(old, new, out)
        if liveness(old, now, self.factor, self.grace) == "online":
            # it spoke after the probe went out (answering it, or otherwise): not a failure
            return self._commit(old, replace(old, probe_state="idle", probe_at=None), [])
        sent = old.probe_at or now
        new = replace(old, probe_state="failed", probe_at=sent)
        out = []
        self._announce(new, now, out)
        return self._commit(old, new, out)

    def sweep(self, now: datetime, among: Iterable[str] | None = None) -> tuple[Change, ...]:
        """Declare the outages that have begun by ``now`` (sockets down past the grace), once
        each. Run it every few seconds; liveness itself never waits for it. ``among``: as for
        ``due_probes``."""
        now = utc(now)
        out: list[Change] = []
        for s in self._among(among):
            self._announce(s, now, out)
        return tuple(out)

    def _announce(self, state: ChargerState, now: datetime, out: list[Change]) -> None:
        start = outage_start(state, now, self.factor, self.grace)
        if start is not None and self._announced.get(state.charger_id) != start:
            self._announced[state.charger_id] = start
            out.append(OutageStarted(state.charger_id, start, offline_text(state, now)))

    def _close_outage(
        self, old: ChargerState, new: ChargerState, at: datetime, out: list[Change]
    ) -> None:
        was = liveness(old, at, self.factor, self.grace) == "offline"
        if not was or liveness(new, at, self.factor, self.grace) == "offline":
            return
        self._announced.pop(old.charger_id, None)
        start = outage_start(old, at, self.factor, self.grace)
        if start is None or start >= at:
            return
        outage = Outage(start, at)
        kept = self._outages.setdefault(old.charger_id, [])
        bisect.insort(kept, outage, key=lambda o: o.start)
        horizon = at - self.keep
        kept[:] = [o for o in kept if o.end is not None and o.end > horizon]
        out.append(OutageEnded(old.charger_id, outage))

    # -- events

    def apply(self, event: Event, received_at: datetime | None = None) -> tuple[Change, ...]:
        """Apply one charger event; return what changed (empty for a duplicate, a stale report
        that changes nothing, or an event that is not about chargers).

        ``received_at`` is when the gateway received the message: the sign of life counts then,
        not at the charger's own (possibly queued, back-dated) timestamp, and a timestamp more
        than ``MAX_CLOCK_SKEW`` ahead of it is a wrong clock and is read as ``received_at``.
        Raises ``UnknownCharger`` for a charger that was never registered.
        """
        if not isinstance(event, CHARGER_EVENTS):
            return ()
        old = self.state(event.device_id)
        ts = utc(event.ts)
        life = ts if received_at is None else utc(received_at)
        if received_at is not None and ts > life + MAX_CLOCK_SKEW:
            ts = life
        out: list[Change] = []
        if isinstance(event, ChargerDisconnected):
            return self._commit(old, socket_down(old, ts, event.reason), out)
        new = self._event(old, event, ts, out)
        new = alive(new, life)
        self._close_outage(old, new, life, out)
        return self._commit(old, new, out)

    def _event(
        self, s: ChargerState, event: Event, ts: datetime, out: list[Change]
    ) -> ChargerState:
        if isinstance(event, ConnectorStatusChanged):
            return self._status(s, event, ts, out)
        if isinstance(event, MeterSample | ChargingStarted | ChargingEnded):
            return self._meter(s, event, ts)
        return charger_event(s, event, ts)

    def _status(
        self, s: ChargerState, event: ConnectorStatusChanged, ts: datetime, out: list[Change]
    ) -> ChargerState:
        cid = event.connector_id
        status = canonical_status(event.status)
        if status is None or cid < 0:
            return s
        report = StatusReport(
            ts,
            status,
            clean_code(event.error_code),
            clean_text(event.vendor_error_code),
            clean_text(event.info),
        )
        history = self._history.setdefault((s.charger_id, cid), [])
        current = record(history, report, self.keep)
        if current is None:
            return s  # the same report again
        out.append(StatusRecorded(s.charger_id, cid, report, current))
        conn = from_history(s.connectors.get(cid) or ConnectorState(cid), history)
        return replace(s, connectors={**s.connectors, cid: conn})

    def _meter(
        self, s: ChargerState, event: MeterSample | ChargingStarted | ChargingEnded, ts: datetime
    ) -> ChargerState:
        cid = self._carrier(s, event)
        if cid < 0:
            return s
        conn = s.connectors.get(cid) or ConnectorState(cid)
        ended = self._ended.setdefault((s.charger_id, cid), deque(maxlen=ENDED_KEPT))
        conn = meter(conn, event, ts, self.zone, ended)
        if conn == s.connectors.get(cid):
            return s
        return replace(s, connectors={**s.connectors, cid: conn})

    def _carrier(
        self, s: ChargerState, event: MeterSample | ChargingStarted | ChargingEnded
    ) -> int:
        """The connector an event counts on. A 2.0.1 message without ``evse`` (or a 1.6 stop
        after a restart) comes as connector 0 with a transaction id: it belongs to the connector
        that carries (or last carried) that transaction, which the book knows, across a restart
        too (``transaction_id`` is persisted)."""
        tx = event.transaction_id
        if event.connector_id != 0 or tx is None:
            return event.connector_id
        for cid, conn in s.connectors.items():
            if cid != 0 and conn.transaction_id == tx:
                return cid
        for (charger_id, cid), ended in self._ended.items():
            if charger_id == s.charger_id and cid != 0 and tx in ended:
                return cid
        return 0

    def _commit(
        self, old: ChargerState, new: ChargerState, extra: list[Change]
    ) -> tuple[Change, ...]:
        """Store ``new`` and list the changes (see ``transitions.changes``)."""
        self._states[new.charger_id] = new
        return changes(old, new, extra)
