"""Applying the change feed to a running gateway: one change, one re-read, one update (a
batch change of many devices, an import's: a few re-reads of all of them).

Each kind of change re-reads its row by key and updates the in-memory view that serves it: the
device directory and occupancy bindings (devices), the sites and berths the API, sessions and
enforcement share (town), the charging runtime (chargers), the lanes (the lane service), the
body cam platform's credentials and officers (bodycams), the drone service's drones, the
posted tariff and the rule book (documents). Applying is idempotent, so a change this instance
already mirrored (the API's own write) or one applied twice after a restart does nothing new.
Tokens are verified against the database per request: their changes need nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import async_sessionmaker

from events import Event
from gateway.directory import documents
from gateway.directory.devices import DeviceDirectory
from gateway.directory.registry import Registry
from gateway.directory.town import Berth, Counting, Site, SiteKind
from gateway.infra.bus import EventBus
from gateway.infra.changes import Change
from gateway.infra.storage.schema import BerthRow, SiteRow
from parking.occupancy import BerthInfo, OccupancyBook, SiteInfo
from telemetry.mapping import DeviceTags

if TYPE_CHECKING:
    from gateway.services.bodycams import BodycamService
    from gateway.services.charging.backend import ChargingRuntime
    from gateway.services.drones import DroneService
    from gateway.services.lanes.service import LaneService
    from gateway.services.parking.enforcement import Enforcement
    from gateway.services.parking.sessions import SessionStore

log = logging.getLogger(__name__)


def site_from_row(r: SiteRow) -> Site:
    return Site(
        id=r.id,
        name=r.name,
        kind=SiteKind(r.kind),
        lat=r.lat,
        lon=r.lon,
        capacity=r.capacity,
        counting=Counting(r.counting),
        segment_class=r.segment_class,
        zone=r.zone_id,
        address=r.address,
        controller_id=r.controller_id,
    )


def site_info(s: Site) -> SiteInfo:
    return SiteInfo(s.id, s.capacity, s.counting.value, s.controller_id)


def berth_from_row(r: BerthRow) -> Berth:
    return Berth(id=r.id, site=r.site_id, number=r.number, lat=r.lat, lon=r.lon)


@dataclass
class LiveApplier:
    """What the feed updates, by reference: the same objects the API and services read."""

    sessions: async_sessionmaker[Any]
    book: OccupancyBook
    directory: DeviceDirectory
    sites: dict[str, Site]
    berths: dict[str, Berth]
    controllers: dict[str, str]  # site id -> controller id (ingest)
    bus: EventBus
    clock: Callable[[], datetime]
    zone: ZoneInfo  # the town's, for the posted tariff
    session_store: SessionStore  # holds the tariff in force (the API reads it there)
    enforcement: Enforcement
    charging: ChargingRuntime | None = None
    charger_tags: dict[str, DeviceTags] = field(default_factory=dict)
    lanes: LaneService | None = None
    bodycams: BodycamService | None = None
    drones: DroneService | None = None

    async def apply(self, change: Change) -> None:
        handler = getattr(self, f"_{change.kind}", None)
        if handler is None:
            raise ValueError(f"unknown kind of change {change.kind!r}")
        keys = change.keys
        events: list[Event] = []
        if keys is None:
            events = await handler(change.key)
        elif (many := getattr(self, f"_{change.kind}_many", None)) is not None:
            events = await many(keys)  # a batch (an import): a few queries for all its keys
        else:
            for key in keys:
                events.extend(await handler(key))
        for e in events:
            self.bus.publish(e)

    async def _token(self, key: str) -> list[Event]:
        return []  # verified against the database on every request

    async def _device(self, key: str) -> list[Event]:
        return await Registry(self.sessions, self.directory, self.book).refresh(key, self.clock())

    async def _device_many(self, keys: tuple[str, ...]) -> list[Event]:
        registry = Registry(self.sessions, self.directory, self.book)
        return await registry.refresh_many(keys, self.clock())

    async def _charger(self, key: str) -> list[Event]:
        if self.charging is None:
            return []  # the OCPP central system is off on this instance
        info = await self.charging.refresh_charger(key)
        if info is None:
            self.charger_tags.pop(key, None)
        else:
            tags = DeviceTags(site=info.location, kind="charger", model=info.model)
            self.charger_tags[key] = tags
        return []

    async def _bodycam(self, key: str) -> list[Event]:
        if self.bodycams is not None:  # a new cam or password is live for the registrar
            await self.bodycams.refresh_cam(key)
        return []

    async def _officer(self, key: str) -> list[Event]:
        if self.bodycams is not None:
            await self.bodycams.refresh_officer(key)
        return []

    async def _drone(self, key: str) -> list[Event]:
        if self.drones is not None:  # its keys, patrol area and home are live for the service
            await self.drones.refresh(key)
        return []

    async def _lane(self, key: str) -> list[Event]:
        if self.lanes is not None:
            await self.lanes.refresh(key)
        return []

    async def _site(self, key: str) -> list[Event]:
        now = self.clock()
        async with self.sessions() as db:
            row = await db.get(SiteRow, key)
        if row is None:
            for bid in [b.id for b in self.berths.values() if b.site == key]:
                del self.berths[bid]
            self.sites.pop(key, None)
            self.controllers.pop(key, None)
            return list(self.book.remove_site(key, now))
        site = self.sites[key] = site_from_row(row)
        if site.controller_id:
            self.controllers[key] = site.controller_id
        else:
            self.controllers.pop(key, None)
        events = list(self.book.put_site(site_info(site), now))
        if self.charging is not None:  # the site's tariff class prices its chargers
            for c in [c for c in self.charging.chargers.values() if c.site_id == key]:
                await self._charger(c.id)
        return events

    async def _berth(self, key: str) -> list[Event]:
        now = self.clock()
        async with self.sessions() as db:
            row = await db.get(BerthRow, key)
        if row is None:
            self.berths.pop(key, None)
            return list(self.book.remove_berth(key, now))
        if row.site_id not in self.sites:
            await self._site(row.site_id)  # its site's change is yet to come: take it now
        self.berths[key] = berth_from_row(row)
        return list(self.book.put_berth(BerthInfo(row.id, row.site_id), now))

    async def _street(self, key: str) -> list[Event]:
        return []  # the map reads the streets from the database when it is drawn

    async def _zone(self, key: str) -> list[Event]:
        """Zones shape the rules: the rule book in force is rebuilt with the new shapes."""
        async with self.sessions() as db:
            doc = await documents.current(db, "rules")
            zones = await documents.town_zones(db)
        if doc is not None:
            self.enforcement.rules = documents.parse_rules(
                doc.content, doc.source, zones, set(self.sites)
            )
        return []

    async def _tariffs(self, key: str) -> list[Event]:
        async with self.sessions() as db:
            doc = await documents.get(db, int(key))
        if doc is None:
            raise LookupError(f"no tariffs document {key}")
        self.session_store.tariffs = documents.parse_tariffs(doc.content, doc.source, self.zone)
        log.info("posted tariffs now from %s (document %d)", doc.source, doc.id)
        return []

    async def _rules(self, key: str) -> list[Event]:
        async with self.sessions() as db:
            doc = await documents.get(db, int(key))
            zones = await documents.town_zones(db)
        if doc is None:
            raise LookupError(f"no rules document {key}")
        self.enforcement.rules = documents.parse_rules(
            doc.content, doc.source, zones, set(self.sites)
        )
        log.info("enforcement rules now from %s (document %d)", doc.source, doc.id)
        return []
