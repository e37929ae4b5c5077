"""The event -> InfluxDB point mapping: one exact line per event kind, coverage of every event
type, determinism, tag hygiene, and a property test over arbitrary events."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from events import (
    BerthState,
    BerthStateChanged,
    BodycamPosition,
    CarParkCount,
    CaseRaised,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerHeartbeat,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    CommsLost,
    CommsRestored,
    ConnectorStatusChanged,
    DroneAlert,
    DronePosition,
    Event,
    InputRejected,
    MagnetometerSample,
    MeterSample,
    PlateRead,
    SensorHeartbeat,
    SensorStartup,
    SensorStatus,
    SiteCountsChanged,
)
from telemetry.lineproto import REPLACEMENT, format_line
from telemetry.mapping import MAPPINGS, DeviceTags, PointMapper, health_lines, mapping
from tests.test_lineproto import parse_both

DOC = Path(__file__).resolve().parent.parent / "docs" / "telemetry.md"

T0 = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
NS0 = 1_740_817_815_123_456_000

NWAVE = "70b3d5e75e001a01"
BOSCH = "70b3d5e75e00b002"
NBIOT = "863921034567890"
GATE = "zk-gate 1"  # a space, to show escaping
CHARGER = "SDEV001"  # an OCPP charge point id of the sample town
ID_TAG = "D4E5F60718293A4B"  # an RFID card: personal data, never written

DEVICES = {
    NWAVE: DeviceTags(site="P01", kind="berth_sensor", model="nwave-nps405"),
    BOSCH: DeviceTags(site="P01", kind="berth_sensor", model="bosch-tps110"),
    NBIOT: DeviceTags(site="S-wenhua", kind="berth_sensor", model="nbiot-geomag"),
    GATE: DeviceTags(site="市民大厅", kind="carpark_controller", model="zk-lane"),
    CHARGER: DeviceTags(site="cp-shiminting", kind="charger", model="XJZC-DC60"),
}
CHARGER_TAGS = "device=SDEV001,kind=charger,model=XJZC-DC60"

# One event of every kind with the exact line it must give (the same lines are in the docs).
CASES: list[tuple[Event, str]] = [
    (
        SensorStatus(
            device_id=NWAVE, ts=T0, model="nwave-nps405", fcnt=4711, rssi=-97, snr=7.5,
            occupied=True,
        ),
        "berth_sensor,device=70b3d5e75e001a01,kind=berth_sensor,model=nwave-nps405,"
        "report=status,site=P01 count=1i,occupied=1i,fcnt=4711i,rssi=-97.0,snr=7.5 "
        "1740817815123456000",
    ),
    (
        SensorHeartbeat(
            device_id=NWAVE, ts=T0, model="nwave-nps405", fcnt=4712, rssi=-101.0, snr=-2.25,
            battery_mv=3604, temperature_c=21.5, occupied=False,
        ),
        "berth_sensor,device=70b3d5e75e001a01,kind=berth_sensor,model=nwave-nps405,"
        "report=heartbeat,site=P01 count=1i,occupied=0i,battery_mv=3604i,temperature_c=21.5,"
        "fcnt=4712i,rssi=-101.0,snr=-2.25 1740817815123456000",
    ),
    (
        SensorStartup(
            device_id=BOSCH, ts=T0, model="bosch-tps110", fcnt=0, rssi=-88.0,
            firmware="2.1.0", reset_cause="watchdog",
        ),
        "berth_sensor,device=70b3d5e75e00b002,kind=berth_sensor,model=bosch-tps110,"
        'report=startup,site=P01 count=1i,firmware="2.1.0",reset_cause="watchdog",fcnt=0i,'
        "rssi=-88.0 1740817815123456000",
    ),
    (
        MagnetometerSample(
            device_id=NBIOT, ts=T0, model="nbiot-geomag", fcnt=812, rssi=-71.0,
            raw=(-120, 340, 1012), baseline=(-100, 310, 980), battery_mv=3590,
        ),
        "magnetometer,device=863921034567890,kind=berth_sensor,model=nbiot-geomag,"
        "site=S-wenhua raw_x=-120i,raw_y=340i,raw_z=1012i,base_x=-100i,base_y=310i,base_z=980i,"
        "magnitude=48.2078831727758,battery_mv=3590i,fcnt=812i,rssi=-71.0 1740817815123456000",
    ),
    (
        BerthStateChanged(
            device_id=NWAVE, ts=T0, site_id="P01", berth_id="P01-017",
            state=BerthState.OCCUPIED, previous=BerthState.FREE, since=T0,
        ),
        "berth_state,berth=P01-017,device=70b3d5e75e001a01,kind=berth_sensor,"
        'model=nwave-nps405,site=P01 state="occupied",previous="free",occupied=1i '
        "1740817815123456000",
    ),
    (
        CommsLost(
            device_id=NWAVE, ts=T0, site_id="P01", berth_id="P01-017",
            last_seen=T0 - timedelta(hours=60, microseconds=500),
        ),
        "comms,berth=P01-017,device=70b3d5e75e001a01,kind=berth_sensor,model=nwave-nps405,"
        'site=P01 state="lost",up=0i,silent_s=216000.0005 1740817815123456000',
    ),
    (
        CommsRestored(device_id=GATE, ts=T0, site_id="市民大厅", berth_id=None, silent_s=905.25),
        "comms,device=zk-gate\\ 1,kind=carpark_controller,model=zk-lane,site=市民大厅 "
        'state="restored",up=1i,silent_s=905.25 1740817815123456000',
    ),
    (
        CarParkCount(
            device_id=GATE, ts=T0, site_id="市民大厅", entered=3, exited=1, occupied=187, seq=40213
        ),
        "carpark_count,device=zk-gate\\ 1,kind=carpark_controller,model=zk-lane,site=市民大厅 "
        "entered=3i,exited=1i,occupied=187i,seq=40213i 1740817815123456213",
    ),
    (
        SiteCountsChanged(
            device_id=NWAVE, ts=T0, site_id="P01", capacity=120, free=37, occupied=80, unknown=3
        ),
        "site_counts,site=P01 capacity=120i,free=37i,occupied=80i,unknown=3i 1740817815123456000",
    ),
    (
        InputRejected(
            device_id=BOSCH, ts=T0, source="chirpstack", reason="bad_length", detail="7 bytes"
        ),
        "rejection,device=70b3d5e75e00b002,kind=berth_sensor,model=bosch-tps110,"
        "reason=bad_length,site=P01,source=chirpstack count=1i 1740817815123456852",
    ),
    (
        InputRejected(
            device_id="deadbeefdeadbeef", ts=T0, source="chirpstack", reason="unknown_device",
            detail="deadbeefdeadbeef",
        ),
        'rejection,reason=unknown_device,source=chirpstack count=1i,device_id="deadbeefdeadbeef" '
        "1740817815123456723",
    ),
    (
        PlateRead(
            device_id="cam-shiminting-in1", ts=T0, site_id="cp-shiminting", direction="in",
            plate="甘G12345", colour="blue", confidence=0.97,
        ),
        "plate_read,camera=cam-shiminting-in1,direction=in,site=cp-shiminting "
        "count=1i,confidence=0.97 1740817815123456585",
    ),
    (
        BodycamPosition(
            device_id="62072500081380000001", ts=T0, lat=38.7851, lon=101.0852,
            officer_id="of-001", squad="督查中队", speed_kmh=4.5, direction_deg=90.0,
        ),
        "bodycam_position,device=62072500081380000001,officer=of-001,squad=督查中队 "
        "lat=38.7851,lon=101.0852,speed_kmh=4.5,direction_deg=90.0 1740817815123456000",
    ),
    (
        DronePosition(
            device_id="drone-1", ts=T0, lat=38.776221, lon=101.076078, height_m=1652.5,
            elevation_m=60.0, speed_mps=4.2, heading_deg=270.0, battery_percent=81.0,
        ),
        "drone_position,device=drone-1 lat=38.776221,lon=101.076078,height_m=1652.5,"
        "elevation_m=60.0,speed_mps=4.2,heading_deg=270.0,battery_percent=81.0 "
        "1740817815123456000",
    ),
    (
        DroneAlert(
            device_id="drone-2", ts=T0, alert="left_area", raised=True,
            detail="42 m outside its patrol area",
        ),
        'drone_alert,alert=left_area,device=drone-2 raised=1i,detail="42 m outside its patrol '
        'area" 1740817815123456001',
    ),
    (
        CaseRaised(
            device_id="cam-gulou-1", ts=T0, category="0505", rule_id="no-parking",
            title="机动车乱停放", dedup_key="0505|zn-gulou-noparking", dedup_window_s=3600,
            zone_id="zn-gulou-noparking",
        ),
        "case_raised,category=0505,rule=no-parking count=1i 1740817815123456092",
    ),
    (
        ChargerConnected(device_id=CHARGER, ts=T0, protocol="ocpp1.6", remote="10.20.3.41:50112"),
        "charger_link,device=SDEV001,kind=charger,model=XJZC-DC60,site=cp-shiminting "
        'state="connected",up=1i,protocol="ocpp1.6",remote="10.20.3.41:50112" '
        "1740817815123456537",
    ),
    (
        ChargerDisconnected(device_id=CHARGER, ts=T0, reason="replaced"),
        "charger_link,device=SDEV001,kind=charger,model=XJZC-DC60,site=cp-shiminting "
        'state="disconnected",up=0i,reason="replaced" 1740817815123456097',
    ),
    (
        ChargerBooted(
            device_id=CHARGER, ts=T0, vendor="XJ Electric", model="XJZC-DC60",
            serial="XJ2311A0457", firmware="V3.2.17", reason="PowerUp",
        ),
        "charger_boot,device=SDEV001,kind=charger,model=XJZC-DC60,site=cp-shiminting "
        'count=1i,vendor="XJ Electric",reported_model="XJZC-DC60",serial="XJ2311A0457",'
        'firmware="V3.2.17",reason="PowerUp" 1740817815123456000',
    ),
    (
        ChargerHeartbeat(device_id=CHARGER, ts=T0),
        "charger_heartbeat,device=SDEV001,kind=charger,model=XJZC-DC60,site=cp-shiminting "
        "count=1i 1740817815123456000",
    ),
    (
        ConnectorStatusChanged(
            device_id=CHARGER, ts=T0, connector_id=2, status="Faulted",
            error_code="GroundFailure", vendor_error_code="E-0x31", info="绝缘检测失败",
        ),
        "connector_status,connector=2,device=SDEV001,kind=charger,model=XJZC-DC60,"
        'site=cp-shiminting status="Faulted",faulted=1i,error_code="GroundFailure",'
        'vendor_error_code="E-0x31",info="绝缘检测失败" 1740817815123456193',
    ),
    (
        MeterSample(
            device_id=CHARGER, ts=T0, connector_id=2, transaction_id="20417",
            energy_wh=1843210.0, power_w=41800, current_a=104.5, voltage_v=400.0, soc_pct=63,
            context="Sample.Periodic",
        ),
        "charger_meter,connector=2,device=SDEV001,kind=charger,model=XJZC-DC60,"
        "site=cp-shiminting energy_wh=1843210.0,power_w=41800.0,current_a=104.5,"
        'voltage_v=400.0,soc_pct=63.0,context="Sample.Periodic",transaction_id="20417" '
        "1740817815123456379",
    ),
    (
        ChargingStarted(
            device_id=CHARGER, ts=T0, connector_id=2, transaction_id="20417", id_tag=ID_TAG,
            meter_start_wh=1825400,
        ),
        "charging_session,connector=2,device=SDEV001,kind=charger,model=XJZC-DC60,phase=start,"
        'site=cp-shiminting count=1i,meter_wh=1825400.0,transaction_id="20417" '
        "1740817815123456819",
    ),
    (
        ChargingEnded(
            device_id=CHARGER, ts=T0, connector_id=2, transaction_id="20417",
            meter_stop_wh=1843210.0, reason="EVDisconnected",
        ),
        "charging_session,connector=2,device=SDEV001,kind=charger,model=XJZC-DC60,phase=end,"
        'site=cp-shiminting count=1i,meter_wh=1843210.0,reason="EVDisconnected",'
        'transaction_id="20417" 1740817815123456819',
    ),
    (
        ChargerNotice(
            device_id=CHARGER, ts=T0, notice="security", status="InvalidCentralSystemCertificate",
            detail="certificate expired 2025-02-28",
        ),
        "charger_notice,device=SDEV001,kind=charger,model=XJZC-DC60,notice=security,"
        'site=cp-shiminting count=1i,status="InvalidCentralSystemCertificate",'
        'detail="certificate expired 2025-02-28" 1740817815123456411',
    ),
    (
        ChargerNotice(
            device_id=CHARGER, ts=T0, notice="notify", status="Delta",
            detail="Connector.AvailabilityState = Faulted", severity=2,
        ),
        "charger_notice,device=SDEV001,kind=charger,model=XJZC-DC60,notice=notify,"
        'site=cp-shiminting count=1i,status="Delta",severity=2i,'
        'detail="Connector.AvailabilityState = Faulted" 1740817815123456891',
    ),
]  # fmt: skip


def _concrete_event_types() -> Iterator[type[Event]]:
    """Every class of events/ derived from Event that no other class derives from.

    ``@dataclass(slots=True)`` replaces each class with a new one, and the replaced one stays
    behind in ``__subclasses__()``: only the classes the module actually exports count.
    """
    todo: list[type[Event]] = [Event]
    while todo:
        cls = todo.pop()
        subs = [s for s in cls.__subclasses__() if getattr(events, s.__name__, None) is s]
        if not subs and cls is not Event:
            yield cls
        todo.extend(subs)


@pytest.fixture
def mapper() -> PointMapper:
    return PointMapper(DEVICES)


@pytest.mark.parametrize(("event", "line"), CASES, ids=lambda c: getattr(c, "kind", ""))
def test_exact_line(mapper: PointMapper, event: Event, line: str) -> None:
    assert mapper.lines(event) == [line]
    assert mapper.unmapped == 0


@pytest.mark.parametrize(("event", "line"), CASES, ids=lambda c: getattr(c, "kind", ""))
def test_fast_path_agrees_with_format_line(event: Event, line: str) -> None:
    """The mapper's hand-built lines are exactly what format_line makes of the same point."""
    measurement, tags, fields, ts = parse_both(line)
    assert format_line(measurement, tags, fields, ts) == line


@pytest.mark.parametrize(("event", "line"), CASES, ids=lambda c: getattr(c, "kind", ""))
def test_documented(event: Event, line: str) -> None:
    assert line in DOC.read_text(encoding="utf-8"), f"docs/telemetry.md lacks {line}"


def test_every_measurement_is_documented(mapper: PointMapper) -> None:
    doc = DOC.read_text(encoding="utf-8")
    names = {parse_both(line)[0] for event, _ in CASES for line in mapper.lines(event)}
    names.add(parse_both(health_lines("ingest", {"x": 1}, 0)[0])[0])
    for name in names:
        assert f"### `{name}`" in doc


def test_every_event_type_has_a_mapping(mapper: PointMapper) -> None:
    concrete = set(_concrete_event_types())
    assert concrete >= {SensorStatus, InputRejected, SiteCountsChanged}  # the walk works
    assert concrete <= set(MAPPINGS), f"no mapping for {concrete - set(MAPPINGS)}"
    assert concrete == {type(event) for event, _ in CASES}, "a case per event type"


def test_same_event_same_line(mapper: PointMapper) -> None:
    for event, _ in CASES:
        first = mapper.lines(event)
        assert mapper.lines(event) == first
        assert PointMapper(DEVICES).lines(dataclasses.replace(event)) == first


def test_unknown_event_types_are_counted(mapper: PointMapper) -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class DroneTelemetry(Event):
        altitude_m: float

    assert mapper.lines(DroneTelemetry(device_id="d1", ts=T0, altitude_m=80.0)) == []
    assert mapper.lines(Event(device_id="d1", ts=T0)) == []
    assert mapper.unmapped == 2


def test_a_new_event_type_is_one_registered_function() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class ChargerStatus(Event):
        status: str

    @mapping(ChargerStatus)
    def _charger(m: PointMapper, e: ChargerStatus, ns: int) -> list[str]:
        dkm, site = m.device(e.device_id)
        return [f"charger{dkm}{site} status={e.status!r} {ns}"]

    try:
        with pytest.raises(ValueError, match="already has a mapping"):
            mapping(ChargerStatus)(_charger)
        line = PointMapper({"c1": DeviceTags("P01", "charger", "ac7")}).lines(
            ChargerStatus(device_id="c1", ts=T0, status="ok")
        )
        assert line == [f"charger,device=c1,kind=charger,model=ac7,site=P01 status='ok' {NS0}"]
    finally:
        del MAPPINGS[ChargerStatus]


# -- tags -----------------------------------------------------------------------------------------
def test_unregistered_device_keeps_device_and_event_model() -> None:
    event = SensorHeartbeat(device_id="a b", ts=T0, model="bosch-tps110")
    assert PointMapper({}).lines(event) == [
        f"berth_sensor,device=a\\ b,model=bosch-tps110,report=heartbeat count=1i {NS0}"
    ]


def test_event_site_wins_over_registry_site(mapper: PointMapper) -> None:
    event = CommsRestored(device_id=NWAVE, ts=T0, site_id="P02", berth_id=None, silent_s=1.0)
    (line,) = mapper.lines(event)
    assert parse_both(line)[1]["site"] == "P02"
    event = CommsRestored(device_id=NWAVE, ts=T0, site_id="", berth_id=None, silent_s=1.0)
    (line,) = mapper.lines(event)
    assert parse_both(line)[1]["site"] == "P01"


def test_empty_device_id_omits_the_tag(mapper: PointMapper) -> None:
    event = CommsLost(device_id="", ts=T0, site_id="P01", berth_id=None, last_seen=None)
    assert mapper.lines(event) == [f'comms,site=P01 state="lost",up=0i {NS0}']


class _LiveRegistry(Mapping[str, DeviceTags]):
    """Like the gateway's view of its directory: a fresh DeviceTags on every lookup."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str | None, str, str]] = {}
        self.lookups = 0

    def __getitem__(self, key: str) -> DeviceTags:
        self.lookups += 1
        site, kind, model = self.entries[key]
        return DeviceTags(site=site, kind=kind, model=model)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def test_live_registry_changes_are_seen() -> None:
    registry = _LiveRegistry()
    mapper = PointMapper(registry)
    event = SensorStatus(device_id="s1", ts=T0, model="nwave-nps405", occupied=True)
    (line,) = mapper.lines(event)
    assert parse_both(line)[1] == {"device": "s1", "model": "nwave-nps405", "report": "status"}
    registry.entries["s1"] = ("P01", "berth_sensor", "nwave-nps405")  # provisioned, bound
    (line,) = mapper.lines(event)
    assert parse_both(line)[1]["site"] == "P01"
    assert mapper.lines(event) == [line]
    registry.entries["s1"] = ("P02", "berth_sensor", "nwave-nps405")  # moved to another site
    (line,) = mapper.lines(event)
    assert parse_both(line)[1]["site"] == "P02"
    registry.entries["s1"] = (None, "berth_sensor", "nwave-nps405")  # unbound
    (line,) = mapper.lines(event)
    assert "site" not in parse_both(line)[1]


def test_never_a_plate_session_or_detail_as_tag(mapper: PointMapper) -> None:
    event = InputRejected(
        device_id="粤B12345", ts=T0, source="anpr", reason="bad_plate", detail="粤B12345 session 9"
    )
    (line,) = mapper.lines(event)
    _, tags, fields, _ = parse_both(line)
    assert tags == {"reason": "bad_plate", "source": "anpr"}
    assert fields == {"count": 1, "device_id": "粤B12345"}
    assert "session" not in line


def test_untrusted_device_id_is_cut_short(mapper: PointMapper) -> None:
    event = InputRejected(device_id="x" * 500, ts=T0, source="s", reason="unknown_device")
    (line,) = mapper.lines(event)
    assert parse_both(line)[2]["device_id"] == "x" * 64


def test_escaping_reaches_every_tag() -> None:
    mapper = PointMapper({"d,1": DeviceTags(site="a=b c", kind="k\n", model="m\\")})
    event = BerthStateChanged(
        device_id="d,1", ts=T0, site_id="", berth_id="B 1", state=BerthState.UNKNOWN,
        previous=BerthState.OCCUPIED, since=T0,
    )  # fmt: skip
    (line,) = mapper.lines(event)
    assert line == (
        f"berth_state,berth=B\\ 1,device=d\\,1,kind=k{REPLACEMENT},model=m{REPLACEMENT},"
        f'site=a\\=b\\ c state="unknown",previous="occupied",occupied=-1i {NS0}'
    )


# -- fields -------------------------------------------------------------------------------------
def test_occupied_int_for_every_berth_state(mapper: PointMapper) -> None:
    seen = {}
    for state in BerthState:
        event = BerthStateChanged(
            device_id=NWAVE, ts=T0, site_id="P01", berth_id="B", state=state,
            previous=BerthState.UNKNOWN, since=T0,
        )  # fmt: skip
        (line,) = mapper.lines(event)
        seen[state] = parse_both(line)[2]["occupied"]
    assert seen == {BerthState.OCCUPIED: 1, BerthState.FREE: 0, BerthState.UNKNOWN: -1}


def test_float_fields_stay_floats(mapper: PointMapper) -> None:
    """An int RSSI from a codec must not turn a float field into an integer one."""
    event = SensorHeartbeat(
        device_id=NWAVE, ts=T0, model="m", rssi=-97, snr=3, temperature_c=20, battery_mv=3600
    )
    (line,) = mapper.lines(event)
    fields = parse_both(line)[2]
    assert [type(fields[k]) for k in ("rssi", "snr", "temperature_c", "battery_mv")] == [
        float,
        float,
        float,
        int,
    ]


def test_unstorable_values_are_skipped(mapper: PointMapper) -> None:
    event = SensorHeartbeat(
        device_id=NWAVE, ts=T0, model="m", rssi=float("nan"), temperature_c=float("inf"),
        battery_mv=2**70,
    )  # fmt: skip
    assert mapper.lines(event) == [
        "berth_sensor,device=70b3d5e75e001a01,kind=berth_sensor,model=nwave-nps405,"
        f"report=heartbeat,site=P01 count=1i {NS0}"
    ]


def test_startup_strings_with_newlines_and_quotes(mapper: PointMapper) -> None:
    event = SensorStartup(
        device_id=NWAVE, ts=T0, model="m", firmware='v2 "beta"\n', reset_cause="C:\\boot"
    )
    (line,) = mapper.lines(event)
    assert '"v2 \\"beta\\"\ufffd"' in line and '"C:\\\\boot"' in line
    assert parse_both(line)[2]["firmware"] == 'v2 "beta"\ufffd'


def test_comms_lost_without_last_seen(mapper: PointMapper) -> None:
    event = CommsLost(device_id=NWAVE, ts=T0, site_id="P01", berth_id="B", last_seen=None)
    (line,) = mapper.lines(event)
    assert parse_both(line)[2] == {"state": "lost", "up": 0}


def _loose(cls: type[Event], **values: Any) -> Event:
    """An event with values of the wrong runtime type (dataclasses do not check them)."""
    return cls(**values)


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        (
            _loose(SensorHeartbeat, device_id=NWAVE, ts=T0, model="m", battery_mv=3600.0,
                   temperature_c=21, rssi="-97", snr="loud", fcnt=True),
            {"count": 1, "battery_mv": 3600, "temperature_c": 21.0, "fcnt": 1},
        ),
        (
            _loose(SensorHeartbeat, device_id=NWAVE, ts=T0, model="m", battery_mv=3600.5,
                   temperature_c=10**400, fcnt="7"),
            {"count": 1},
        ),
        (
            _loose(SensorStartup, device_id=NWAVE, ts=T0, model="m", firmware=2, reset_cause=b"x"),
            {"count": 1, "firmware": "2", "reset_cause": "b'x'"},
        ),
        (
            _loose(CommsLost, device_id=NWAVE, ts=T0, site_id="P01", berth_id=17,
                   last_seen=datetime(2025, 3, 1)),  # naive
            {"state": "lost", "up": 0},
        ),
        (
            _loose(InputRejected, device_id=12345, ts=T0, source="s", reason="r", detail=None),
            {"count": 1, "device_id": "12345"},
        ),
        (
            _loose(CarParkCount, device_id=GATE, ts=T0, site_id=7, entered=2.0, exited=None,
                   seq="9"),
            {"entered": 2},
        ),
    ],
)  # fmt: skip
def test_ill_typed_values_are_converted_or_skipped(
    mapper: PointMapper, event: Event, fields: dict[str, object]
) -> None:
    (line,) = mapper.lines(event)
    assert parse_both(line)[2] == fields


# -- timestamps -----------------------------------------------------------------------------------
def test_nanosecond_timestamp_from_event(mapper: PointMapper) -> None:
    shanghai = timezone(timedelta(hours=8))
    event = SiteCountsChanged(
        device_id="x", ts=T0.astimezone(shanghai), site_id="P01", capacity=1, free=1,
        occupied=0, unknown=0,
    )  # fmt: skip
    (line,) = mapper.lines(event)
    assert line.endswith(f" {NS0}")


def test_distinct_rejections_in_one_microsecond_do_not_collide(mapper: PointMapper) -> None:
    stamps = set()
    for i in range(50):
        event = InputRejected(
            device_id="", ts=T0, source="chirpstack", reason="bad_json", detail=f"payload {i}"
        )
        (line,) = mapper.lines(event)
        ts = parse_both(line)[3]
        assert NS0 <= ts < NS0 + 1000  # never leaves the event's microsecond
        stamps.add(ts)
    assert len(stamps) >= 45  # crc32 % 1000: a rare clash is allowed, not a systematic one


def test_carpark_counts_of_one_second_do_not_collide(mapper: PointMapper) -> None:
    whole_second = T0.replace(microsecond=0)
    stamps = set()
    for seq in range(100, 110):
        event = CarParkCount(device_id=GATE, ts=whole_second, site_id="P", entered=1, seq=seq)
        (line,) = mapper.lines(event)
        stamps.add(parse_both(line)[3])
    assert len(stamps) == 10
    no_seq = [CarParkCount(device_id=GATE, ts=whole_second, site_id="P", entered=n) for n in (1, 2)]
    assert len({mapper.lines(e)[0].rsplit(" ", 1)[1] for e in no_seq}) == 2


def test_timestamps_influxdb_cannot_store_are_counted(mapper: PointMapper) -> None:
    for ts in (datetime(1600, 1, 1, tzinfo=UTC), datetime(2263, 1, 1, tzinfo=UTC)):
        event = SiteCountsChanged(
            device_id="x", ts=ts, site_id="P", capacity=1, free=1, occupied=0, unknown=0
        )
        assert mapper.lines(event) == []
    assert mapper.unwritable == 2


# -- gateway health -------------------------------------------------------------------------------
def test_health_lines() -> None:
    values = {"events_per_s": 812.5, "queue_depth": 3, "ok": True, "lag_s": float("nan")}
    assert health_lines("ingest", values, NS0) == [
        f"gateway,component=ingest events_per_s=812.5,queue_depth=3.0,ok=1.0 {NS0}"
    ]


def test_health_lines_without_values() -> None:
    assert health_lines("ingest", {}, NS0) == []
    assert health_lines("ingest", {"x": float("inf")}, NS0) == []


def test_health_lines_refuse_bad_metric_names() -> None:
    with pytest.raises(ValueError, match="control"):
        health_lines("ingest", {"a\nb": 1}, NS0)


# -- EV chargers ----------------------------------------------------------------------------------
def test_id_tag_and_transaction_id_are_never_tags(mapper: PointMapper) -> None:
    started = ChargingStarted(
        device_id=CHARGER, ts=T0, connector_id=1, transaction_id="tx-9", id_tag=ID_TAG
    )
    sample = MeterSample(
        device_id=CHARGER, ts=T0, connector_id=1, transaction_id="tx-9", power_w=7000.0
    )
    for event in (started, sample):
        (line,) = mapper.lines(event)
        _, tags, fields, _ = parse_both(line)
        assert ID_TAG not in line
        assert "tx-9" not in tags.values()
        assert fields["transaction_id"] == "tx-9"
    assert "id_tag" not in mapper.lines(started)[0]


def test_unregistered_charger_keeps_device_and_reported_model() -> None:
    event = ChargerBooted(device_id="CP-9", ts=T0, vendor="ABB", model="Terra AC")
    assert PointMapper({}).lines(event) == [
        'charger_boot,device=CP-9,model=Terra\\ AC count=1i,vendor="ABB",'
        f'reported_model="Terra AC" {NS0}'
    ]
    (line,) = PointMapper({}).lines(ChargerHeartbeat(device_id="CP-9", ts=T0))
    assert parse_both(line)[1] == {"device": "CP-9"}


def test_replacing_connection_keeps_both_and_ends_up(mapper: PointMapper) -> None:
    """The old socket closed as "replaced" and the new one opened in one microsecond: both
    points stay, and the connect sorts after the disconnect."""
    (down,) = mapper.lines(ChargerDisconnected(device_id=CHARGER, ts=T0, reason="replaced"))
    for protocol in ("ocpp1.6", "ocpp2.0.1", ""):
        for remote in ("10.0.0.1:1", "10.0.0.2:65535", ""):
            event = ChargerConnected(device_id=CHARGER, ts=T0, protocol=protocol, remote=remote)
            (up,) = mapper.lines(event)
            assert NS0 <= parse_both(down)[3] < NS0 + 500 <= parse_both(up)[3] < NS0 + 1000
    for reason in ("", "1006", "1000 bye", "x" * 300):
        (line,) = mapper.lines(ChargerDisconnected(device_id=CHARGER, ts=T0, reason=reason))
        assert NS0 <= parse_both(line)[3] < NS0 + 500


def test_connector_statuses_of_one_second_do_not_collide(mapper: PointMapper) -> None:
    whole_second = T0.replace(microsecond=0)
    statuses = ["Available", "Preparing", "Charging", "SuspendedEV", "Finishing", "Faulted"]
    stamps = set()
    for status in statuses:
        event = ConnectorStatusChanged(
            device_id=CHARGER, ts=whole_second, connector_id=1, status=status
        )
        (line,) = mapper.lines(event)
        fields = parse_both(line)[2]
        assert fields == {"status": status, "faulted": int(status == "Faulted")}
        stamps.add(parse_both(line)[3])
    assert len(stamps) == len(statuses)


def test_connector_tag_only_for_plausible_numbers(mapper: PointMapper) -> None:
    for connector, tag, field in ((0, "0", None), (255, "255", None), (256, None, 256),
                                  (-1, None, -1), (2**70, None, None)):  # fmt: skip
        event = ConnectorStatusChanged(
            device_id=CHARGER, ts=T0, connector_id=connector, status="Available"
        )
        (line,) = mapper.lines(event)
        _, tags, fields, _ = parse_both(line)
        assert tags.get("connector") == tag
        assert fields.get("connector_id") == field


def test_meter_sample_without_a_reading_is_unwritable(mapper: PointMapper) -> None:
    event = MeterSample(
        device_id=CHARGER, ts=T0, connector_id=1, transaction_id="tx", energy_wh=float("nan"),
        context="Sample.Periodic",
    )  # fmt: skip
    assert mapper.lines(event) == []
    assert mapper.unwritable == 1


def test_meter_samples_of_one_instant_do_not_collide(mapper: PointMapper) -> None:
    """Chargers that put each measurand in its own sampled value send them at one timestamp."""
    samples = [
        MeterSample(device_id=CHARGER, ts=T0, connector_id=1, energy_wh=1000.0),
        MeterSample(device_id=CHARGER, ts=T0, connector_id=1, power_w=7000.0),
        MeterSample(device_id=CHARGER, ts=T0, connector_id=1, current_a=32.0),
        MeterSample(device_id=CHARGER, ts=T0, connector_id=1, voltage_v=230.0),
    ]
    assert len({parse_both(mapper.lines(e)[0])[3] for e in samples}) == len(samples)


def test_meter_fields_are_floats(mapper: PointMapper) -> None:
    event = MeterSample(
        device_id=CHARGER, ts=T0, connector_id=1, energy_wh=1000, power_w=0, current_a=16,
        voltage_v=230, soc_pct=80,
    )  # fmt: skip
    (line,) = mapper.lines(event)
    assert all(type(v) is float for v in parse_both(line)[2].values())


def test_sessions_of_one_connector_and_second_do_not_collide(mapper: PointMapper) -> None:
    whole_second = T0.replace(microsecond=0)
    stamps = {
        parse_both(mapper.lines(ChargingEnded(
            device_id=CHARGER, ts=whole_second, connector_id=1, transaction_id=tx,
            reason="DeAuthorized",
        ))[0])[3]
        for tx in ("20417", "20418")
    }  # fmt: skip
    assert len(stamps) == 2


def test_notice_kind_is_a_fixed_enum(mapper: PointMapper) -> None:
    event = ChargerNotice(device_id=CHARGER, ts=T0, notice="Boot 7", status="x", detail="y" * 300)
    (line,) = mapper.lines(event)
    _, tags, fields, _ = parse_both(line)
    assert tags["notice"] == "other"
    assert fields == {"count": 1, "notice_kind": "Boot 7", "status": "x", "detail": "y" * 256}


def test_notify_events_of_one_message_do_not_collide(mapper: PointMapper) -> None:
    stamps = {
        parse_both(mapper.lines(ChargerNotice(
            device_id=CHARGER, ts=T0, notice="notify", status="Delta", detail=f"component {i}",
        ))[0])[3]
        for i in range(20)
    }  # fmt: skip
    assert len(stamps) >= 18


# -- any event at all -----------------------------------------------------------------------------
_tz = st.one_of(
    st.just(UTC),
    st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
)
_ts = st.datetimes(timezones=_tz)
_text = st.text(st.characters(blacklist_categories=()), max_size=20)
_ints = st.integers(-(2**66), 2**66)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_vec = st.tuples(_ints, _ints, _ints)
_ids = st.one_of(st.sampled_from(sorted(DEVICES)), _text)
_opt_int, _opt_float, _opt_bool = st.none() | _ints, st.none() | _floats, st.none() | st.booleans()
_radio = {"model": _text, "fcnt": _opt_int, "rssi": _opt_float, "snr": _opt_float}
_state = st.sampled_from(list(BerthState))
_connectors = st.integers(0, 8) | _ints
_ID_TAG_MARK = "idtag\u2603"  # generated id tags start with it; no line may contain it

STRATEGIES: dict[type[Event], st.SearchStrategy[Event]] = {
    SensorStatus: st.builds(
        SensorStatus, device_id=_ids, ts=_ts, occupied=st.booleans(), **_radio
    ),
    SensorHeartbeat: st.builds(
        SensorHeartbeat, device_id=_ids, ts=_ts, battery_mv=_opt_int, temperature_c=_opt_float,
        occupied=_opt_bool, **_radio,
    ),
    SensorStartup: st.builds(
        SensorStartup, device_id=_ids, ts=_ts, firmware=st.none() | _text,
        reset_cause=st.none() | _text, occupied=_opt_bool, **_radio,
    ),
    MagnetometerSample: st.builds(
        MagnetometerSample, device_id=_ids, ts=_ts, raw=_vec, baseline=_vec,
        battery_mv=_opt_int, **_radio,
    ),
    BerthStateChanged: st.builds(
        BerthStateChanged, device_id=_ids, ts=_ts, site_id=_text, berth_id=_text, state=_state,
        previous=_state, since=_ts,
    ),
    CommsLost: st.builds(
        CommsLost, device_id=_ids, ts=_ts, site_id=_text, berth_id=st.none() | _text,
        last_seen=st.none() | _ts,
    ),
    CommsRestored: st.builds(
        CommsRestored, device_id=_ids, ts=_ts, site_id=_text, berth_id=st.none() | _text,
        silent_s=_floats,
    ),
    CarParkCount: st.builds(
        CarParkCount, device_id=_ids, ts=_ts, site_id=_text, entered=_ints, exited=_ints,
        occupied=_opt_int, seq=_opt_int,
    ),
    SiteCountsChanged: st.builds(
        SiteCountsChanged, device_id=_ids, ts=_ts, site_id=_text, capacity=_ints, free=_ints,
        occupied=_ints, unknown=_ints,
    ),
    InputRejected: st.builds(
        InputRejected, device_id=_ids, ts=_ts, source=_text, reason=_text, detail=_text
    ),
    BodycamPosition: st.builds(
        BodycamPosition, device_id=_ids, ts=_ts, lat=_floats, lon=_floats,
        officer_id=st.none() | _text, squad=st.none() | _text, speed_kmh=_opt_float,
        direction_deg=_opt_float, altitude_m=_opt_float,
    ),
    DronePosition: st.builds(
        DronePosition, device_id=_ids, ts=_ts, lat=_floats, lon=_floats, height_m=_opt_float,
        elevation_m=_opt_float, speed_mps=_opt_float, heading_deg=_opt_float,
        battery_percent=_opt_float,
    ),
    DroneAlert: st.builds(
        DroneAlert, device_id=_ids, ts=_ts, alert=st.sampled_from(["left_area", "x"]) | _text,
        raised=st.booleans(), detail=_text,
    ),
    PlateRead: st.builds(
        PlateRead, device_id=_ids, ts=_ts, site_id=_text, direction=st.sampled_from(["in", "out"]),
        plate=_text, colour=st.none() | _text, confidence=_opt_float,
    ),
    CaseRaised: st.builds(
        CaseRaised, device_id=_ids, ts=_ts, category=_text, rule_id=_text, title=_text,
        dedup_key=_text, dedup_window_s=_ints, site_id=st.none() | _text,
    ),
    ChargerConnected: st.builds(
        ChargerConnected, device_id=_ids, ts=_ts, protocol=_text, remote=_text
    ),
    ChargerDisconnected: st.builds(ChargerDisconnected, device_id=_ids, ts=_ts, reason=_text),
    ChargerBooted: st.builds(
        ChargerBooted, device_id=_ids, ts=_ts, vendor=_text, model=_text,
        serial=st.none() | _text, firmware=st.none() | _text, reason=st.none() | _text,
    ),
    ChargerHeartbeat: st.builds(ChargerHeartbeat, device_id=_ids, ts=_ts),
    ConnectorStatusChanged: st.builds(
        ConnectorStatusChanged, device_id=_ids, ts=_ts, connector_id=_connectors,
        status=_text | st.sampled_from(["Available", "Charging", "Faulted"]),
        error_code=st.none() | _text, vendor_error_code=st.none() | _text,
        info=st.none() | _text,
    ),
    MeterSample: st.builds(
        MeterSample, device_id=_ids, ts=_ts, connector_id=_connectors,
        transaction_id=st.none() | _text, energy_wh=_opt_float, power_w=_opt_float,
        current_a=_opt_float, voltage_v=_opt_float, soc_pct=_opt_float,
        context=st.none() | _text,
    ),
    ChargingStarted: st.builds(
        ChargingStarted, device_id=_ids, ts=_ts, connector_id=_connectors,
        transaction_id=_text, id_tag=st.none() | _text.map(_ID_TAG_MARK.__add__),
        meter_start_wh=_opt_float,
    ),
    ChargingEnded: st.builds(
        ChargingEnded, device_id=_ids, ts=_ts, connector_id=_connectors, transaction_id=_text,
        meter_stop_wh=_opt_float, reason=st.none() | _text,
    ),
    ChargerNotice: st.builds(
        ChargerNotice, device_id=_ids, ts=_ts,
        notice=_text | st.sampled_from(["security", "firmware", "notify", "data_transfer"]),
        status=_text, detail=st.text(max_size=400), severity=_opt_int,
    ),
}  # fmt: skip


def test_strategies_cover_every_event_type() -> None:
    assert set(STRATEGIES) == set(_concrete_event_types())


@settings(max_examples=300, deadline=None)
@given(st.one_of(*STRATEGIES.values()))
def test_any_event_maps_without_raising(event: Event) -> None:
    mapper = PointMapper(DEVICES)
    lines = mapper.lines(event)
    assert len(lines) + mapper.unwritable == 1  # one point, or counted as unwritable
    assert mapper.lines(event) == lines == PointMapper(DEVICES).lines(event)  # deterministic
    for line in lines:
        measurement, tags, fields, ts = parse_both(line)
        assert format_line(measurement, tags, fields, ts) == line
        assert fields and all(not isinstance(v, float) or math.isfinite(v) for v in fields.values())
        assert set(tags) <= {
            "site", "kind", "model", "device", "berth", "report", "reason", "source",
            "camera", "direction", "category", "rule", "connector", "phase", "notice",
            "officer", "squad", "alert",
        }  # fmt: skip
        assert tags.get("alert", "other") in {"left_area", "low_battery", "link_lost", "other"}
        assert tags.get("notice", "other") in {
            "security", "firmware", "diagnostics", "log", "notify", "data_transfer", "other",
        }  # fmt: skip
        assert 0 <= int(tags.get("connector", "0")) <= 255
        assert _ID_TAG_MARK not in line  # id tags are never written, in any form
        if isinstance(event, MeterSample | ChargingStarted | ChargingEnded):
            assert "transaction_id" not in tags
