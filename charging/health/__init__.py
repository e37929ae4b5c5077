"""Charger health: which of the town's chargers work, which are faulted or offline, and why.

The pure logic behind the inspectors' view (issue 5). No I/O and no clock: every instant is an
argument (an event's ``ts``, a ``received_at``, a ``now``), so replaying the same inputs gives
the same book and the same changes. The gateway feeds ``ChargerBook.apply`` the charger events
of ``events``, persists the ``Change`` records it returns, runs the OCPP TriggerMessage probes
the book asks for (``due_probes``), and files the ``CaseRaised`` of ``maintenance_due``.

The rules, explained for inspectors in docs/charger-health.md:

* **Status.** A connector's status is its newest StatusNotification. Chargers queue messages
  while offline and deliver them late and back-dated: such a report goes into the history but
  never overrides a newer one. The same report twice changes nothing; at the same timestamp the
  later arrival wins (1.6 timestamps often have one-second precision and a charger sends in
  order). ``since`` is the first report of the current run of the same status.
* **Liveness.** Any message is a sign of life. Socket up and heard within ``heartbeat_s *
  factor``: online. Socket up but silent for longer: probing (the gateway sends TriggerMessage
  and reports the answer). Probe unanswered, or socket down for longer than ``grace`` (a
  reconnect is normal): offline. After a gateway restart a charger whose socket the restart
  took is reconnecting for the grace. An outage starts at the last sign of life (probe) or at
  the disconnect (socket) and ends at the next sign of life.
* **Overall state**, worst first: faulted > offline > unavailable > unknown > warning >
  charging > occupied > available. An error code with a non-Faulted status is a warning.
* **Availability** is the share of time a connector (an EVSE) was usable; connector 0 (the
  charger itself) Faulted or Unavailable makes every connector unusable, and an outage counts
  as unusable. A charger's figure is the mean of its connectors' (connector-hours).
* **OCPI** EVSE status for the public app, and the **maintenance** rule that raises a report
  for a charger faulted or offline for longer than the configured time.
* **Energy today** is counted in the town's zone, which the gateway passes to the book.

One module per concern: ``records`` (the vocabulary), ``liveness``, ``history`` (status
history), ``availability``, ``energy``, ``summary`` (health and the fleet), ``ocpi``,
``maintenance``, ``transitions`` and ``book``. This package re-exports what the gateway and
the tests use.
"""

from charging.health.availability import availability, connector_timeline
from charging.health.book import ChargerBook
from charging.health.energy import charger_energy_today_wh, energy_today_wh
from charging.health.history import fault_history
from charging.health.liveness import liveness, outage_start
from charging.health.maintenance import MaintenanceFinding, maintenance_due
from charging.health.ocpi import EvseStatus, evse_statuses, ocpi_status, site_availability
from charging.health.records import (
    DAY,
    OCPP_STATUSES,
    OFFLINE_STATUS,
    UNKNOWN_STATUS,
    WEEK,
    Change,
    ChargerChanged,
    ChargerState,
    ConnectorChanged,
    ConnectorState,
    FaultRecord,
    Liveness,
    Outage,
    OutageEnded,
    OutageStarted,
    ProbeState,
    StatusRecorded,
    StatusReport,
    UnknownCharger,
    canonical_status,
)
from charging.health.summary import (
    SEVERITY_ORDER,
    ChargerHealth,
    FleetSummary,
    HealthState,
    fleet_summary,
    health,
)

__all__ = [
    "DAY",
    "OCPP_STATUSES",
    "OFFLINE_STATUS",
    "SEVERITY_ORDER",
    "UNKNOWN_STATUS",
    "WEEK",
    "Change",
    "ChargerBook",
    "ChargerChanged",
    "ChargerHealth",
    "ChargerState",
    "ConnectorChanged",
    "ConnectorState",
    "EvseStatus",
    "FaultRecord",
    "FleetSummary",
    "HealthState",
    "Liveness",
    "MaintenanceFinding",
    "Outage",
    "OutageEnded",
    "OutageStarted",
    "ProbeState",
    "StatusRecorded",
    "StatusReport",
    "UnknownCharger",
    "availability",
    "canonical_status",
    "charger_energy_today_wh",
    "connector_timeline",
    "energy_today_wh",
    "evse_statuses",
    "fault_history",
    "fleet_summary",
    "health",
    "liveness",
    "maintenance_due",
    "ocpi_status",
    "outage_start",
    "site_availability",
]
