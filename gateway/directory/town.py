"""The town file: sites (car parks, on-street segments), zones, berths, sensors, EV chargers,
the car parks' lanes (camera + barrier gate controller), the officers with their body cams,
and the patrol drones (``gateway.directory.drones``).

A town file is TOML. It is validated here, at the edge, before anything touches the database;
every error names the offending entry.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.cameras.framing import display_model_names
from drivers.gates.bus import BusUrlError, canonical_bus_url
from drivers.gates.models import model_names
from gateway.config import TownConfig
from gateway.directory.drones import Drone, drone_problems
from tariffcore.zones import zone_named

SAMPLE_TOWN = "sample_town.toml"

# strict: a number, never true/false or "1.5" coerced into one
Lat = Annotated[float, Field(ge=-90, le=90, strict=True)]
Lon = Annotated[float, Field(ge=-180, le=180, strict=True)]
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
DevEui = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")]


class SiteKind(StrEnum):
    CAR_PARK = "car_park"
    ON_STREET = "on_street"


class Counting(StrEnum):
    """How a site's occupancy is known."""

    BERTH_SENSORS = "berth_sensors"  # every berth has a sensor (on-street, guidance systems)
    ENTRY_EXIT = "entry_exit"  # a lane controller counts vehicles in and out


class ZoneKind(StrEnum):
    PAID = "paid"
    NO_PARKING = "no_parking"
    AMBULANCE_LANE = "ambulance_lane"
    MARKET = "market"
    FIRE_LANE = "fire_lane"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TownInfo(_Model):
    name: str
    timezone: str | None = None  # None: the gateway's [town] timezone
    sample: bool = False
    note: str = ""


class Zone(_Model):
    id: Ident
    name: str
    kind: ZoneKind
    polygon: list[tuple[Lon, Lat]] = Field(min_length=3, description="[lon, lat] ring")


class StreetKind(StrEnum):
    MAIN = "main"  # the town's main streets (大街)
    MINOR = "minor"  # side streets and lanes (街, 路, 巷)


class Street(_Model):
    """A street's centre line, drawn on the one map: the town's outline without tiles."""

    id: Ident
    name: str = Field(min_length=1, max_length=200)
    kind: StreetKind = StreetKind.MINOR
    line: list[tuple[Lon, Lat]] = Field(min_length=2, max_length=500, description="[lon, lat]")


class Site(_Model):
    id: Ident
    name: str
    kind: SiteKind
    lat: Lat
    lon: Lon
    capacity: int = Field(ge=0, le=100_000)
    counting: Counting
    segment_class: str = Field(min_length=1, max_length=16, description="tariff class")
    zone: Ident | None = None
    address: str = ""
    controller_id: Ident | None = Field(
        default=None, description="entry/exit controller publishing counts for this car park"
    )


class Berth(_Model):
    id: Ident
    site: Ident
    number: str = Field(min_length=1, max_length=16, description="number painted on the kerb")
    lat: Lat
    lon: Lon


class Sensor(_Model):
    dev_eui: DevEui
    model: str = Field(min_length=1, max_length=64)
    berth: Ident
    heartbeat_s: int | None = Field(default=None, gt=0, le=7 * 86400)


ChargePointId = Annotated[
    str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


class Charger(_Model):
    """A public EV charger: its OCPP charge point id, where it stands, what it can do."""

    id: ChargePointId
    site: Ident | None = Field(default=None, description="the car park it stands in, if any")
    place: str = Field(min_length=1, max_length=200, description="where drivers find it")
    lat: Lat
    lon: Lon
    vendor: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    current: Literal["AC", "DC"]
    power_kw: float = Field(gt=0, le=1000)
    connectors: int = Field(ge=1, le=8)


SQUADS = (
    "执法一中队",
    "执法二中队",
    "执法三中队",
    "执法四中队",
    "执法五中队",
    "执法六中队",
    "督查中队",
)
BodycamId = Annotated[str, Field(pattern=r"^[0-9]{20}$", description="GB/T 28181 20-digit id")]


class Officer(_Model):
    """An officer or assistant of the bureau and the body cam they carry (its password is
    not in the town file: technicians set it)."""

    id: Ident
    name: str = Field(min_length=1, max_length=64)
    squad: Literal[SQUADS]  # type: ignore[valid-type]
    role: Literal["officer", "assistant"] = "officer"
    bodycam: BodycamId | None = None


def check_bus_url(url: str) -> str:
    """A gate bus as the gates driver reads it (``tcp://host:port`` or
    ``serial:///dev/ttyX?baudrate=9600&parity=N&stopbits=1``): checked here so a typo fails
    the import, not the first car at the gate. Kept in its one spelling
    (``canonical_bus_url``), so lanes on one bus name it alike."""
    try:
        return canonical_bus_url(url)
    except BusUrlError as exc:
        raise ValueError(f"bus {exc}") from None


class GateRef(_Model):
    """The barrier gate controller of a lane: which bus, which Modbus unit, which register map."""

    bus: str = Field(
        min_length=6, max_length=200, description="tcp://host:port or serial:///dev/.."
    )
    unit: int = Field(ge=1, le=247, description="Modbus unit (slave) id on the bus")
    model: str = Field(
        min_length=1, max_length=64, description="controller model (its register map)"
    )

    @field_validator("bus")
    @classmethod
    def _bus(cls, value: str) -> str:
        return check_bus_url(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if value not in model_names():
            raise ValueError(f"unknown gate model {value!r}; shipped: {', '.join(model_names())}")
        return value


class LaneDisplay(_Model):
    """The lane's LED display and voice, driven through the camera's RS-485 port (the answer
    to the camera's push carries the lines and the text to say)."""

    lines: int = Field(4, ge=1, le=8, description="lines the display shows")
    voice: bool = True
    model: str = Field(
        "text-crlf",
        description="the display module's framing (drivers/cameras/displays: text-crlf, ...)",
    )

    @field_validator("model")
    @classmethod
    def _display_model(cls, value: str) -> str:
        if value not in display_model_names():
            raise ValueError(
                f"unknown display model {value!r}; shipped: {', '.join(display_model_names())}"
            )
        return value


class Lane(_Model):
    """One entry or exit lane of a car park: the plate camera that reads it, the gate it moves."""

    id: Ident
    site: Ident
    kind: Literal["entry", "exit"]
    camera: Ident = Field(description="the plate camera's id (its push URL carries it)")
    gate: GateRef
    display: LaneDisplay | None = None


class Town(_Model):
    town: TownInfo
    zones: list[Zone] = Field(default_factory=list)
    streets: list[Street] = Field(default_factory=list)
    sites: list[Site]
    berths: list[Berth] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)
    chargers: list[Charger] = Field(default_factory=list)
    lanes: list[Lane] = Field(default_factory=list)
    officers: list[Officer] = Field(default_factory=list)
    drones: list[Drone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        for label, ids in (
            ("zone", [z.id for z in self.zones]),
            ("street", [st.id for st in self.streets]),
            ("site", [s.id for s in self.sites]),
            ("berth", [b.id for b in self.berths]),
            ("sensor dev_eui", [s.dev_eui.lower() for s in self.sensors]),
            ("charger", [c.id for c in self.chargers]),
            ("lane", [ln.id for ln in self.lanes]),
            ("officer", [o.id for o in self.officers]),
            ("officer bodycam", [o.bodycam for o in self.officers if o.bodycam]),
        ):
            dupes = [i for i, n in Counter(ids).items() if n > 1]
            if dupes:
                problems.append(f"duplicate {label} id(s): {', '.join(sorted(dupes)[:5])}")
        zone_ids = {z.id for z in self.zones}
        sites = {s.id: s for s in self.sites}
        for s in self.sites:
            if s.zone is not None and s.zone not in zone_ids:
                problems.append(f"site {s.id}: unknown zone {s.zone!r}")
            if s.counting is Counting.ENTRY_EXIT and s.kind is SiteKind.ON_STREET:
                problems.append(f"site {s.id}: on-street sites count by berth sensors")
        per_site = Counter(b.site for b in self.berths)
        for b in self.berths:
            if b.site not in sites:
                problems.append(f"berth {b.id}: unknown site {b.site!r}")
        for s in self.sites:
            if s.counting is Counting.BERTH_SENSORS and per_site[s.id] != s.capacity:
                problems.append(
                    f"site {s.id}: capacity {s.capacity} but {per_site[s.id]} berths listed"
                )
        berth_ids = {b.id for b in self.berths}
        bound = Counter(s.berth for s in self.sensors)
        for sensor in self.sensors:
            if sensor.berth not in berth_ids:
                problems.append(f"sensor {sensor.dev_eui}: unknown berth {sensor.berth!r}")
        twice = [b for b, n in bound.items() if n > 1]
        if twice:
            problems.append(f"berth(s) bound to more than one sensor: {', '.join(twice[:5])}")
        for c in self.chargers:
            if c.site is not None and c.site not in sites:
                problems.append(f"charger {c.id}: unknown site {c.site!r}")
        problems += lane_problems(self.lanes, sites)
        problems += drone_problems(self.drones)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def lane_problems(lanes: list[Lane], sites: dict[str, Site]) -> list[str]:
    """A lane stands in a car park; a camera reads one lane; a controller moves one gate."""
    problems: list[str] = []
    for ln in lanes:
        site = sites.get(ln.site)
        if site is None:
            problems.append(f"lane {ln.id}: unknown site {ln.site!r}")
        elif site.kind is not SiteKind.CAR_PARK:
            problems.append(f"lane {ln.id}: site {ln.site} is not a car park")
    cameras = Counter(ln.camera for ln in lanes)
    twice = sorted(c for c, n in cameras.items() if n > 1)
    if twice:
        problems.append(f"camera(s) in more than one lane: {', '.join(twice[:5])}")
    units = Counter((ln.gate.bus, ln.gate.unit) for ln in lanes)
    shared = sorted(f"{bus} unit {unit}" for (bus, unit), n in units.items() if n > 1)
    if shared:
        problems.append(f"gate controller(s) in more than one lane: {', '.join(shared[:5])}")
    return problems


class TownFileError(Exception):
    """The town file is missing, not TOML, or not a valid town."""


def parse_town(text: str, source: str = "<town>") -> Town:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TownFileError(f"{source}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise TownFileError(f"{source}: not valid TOML: nested too deeply") from None
    try:
        return Town.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(p) for p in err["loc"]) or "(file)"
            lines.append(f"  {loc}: {err['msg']}")
        raise TownFileError(f"{source}: invalid town:\n" + "\n".join(lines)) from exc


def town_zone(town: Town, configured: str) -> ZoneInfo:
    """The town's zone: the town file's ``timezone``, else ``configured`` ([town] timezone).
    The one zone every book (charger health, charging bills, parking tariffs) is given."""
    name = town.town.timezone or configured
    try:
        return zone_named(name)
    except ValueError as exc:
        raise TownFileError(f"town timezone: {exc}") from None


def configured_zone(config: TownConfig) -> ZoneInfo:
    """The zone of the configured town (``[town] file``, else the shipped sample)."""
    return town_zone(load_town(config.file), config.timezone)


def load_town(path: Path | None) -> Town:
    """Load *path*, or the shipped sample town when *path* is None."""
    if path is None:
        text = resources.files("gateway.data").joinpath(SAMPLE_TOWN).read_text("utf-8")
        return parse_town(text, f"(shipped) {SAMPLE_TOWN}")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise TownFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TownFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_town(text, str(path))
