"""Database tables (SQLAlchemy 2 ORM). Changes here need an Alembic migration.

Over 400 lines on purpose: every table in one place, so a migration's author sees the whole
schema.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the database layer")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ZoneRow(Base):
    __tablename__ = "zones"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    polygon: Mapped[list[list[float]]] = mapped_column(JSON)


class StreetRow(Base):
    __tablename__ = "streets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    line: Mapped[list[list[float]]] = mapped_column(JSON)


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    capacity: Mapped[int] = mapped_column(Integer)
    counting: Mapped[str] = mapped_column(String(16))
    segment_class: Mapped[str] = mapped_column(String(16))
    zone_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("zones.id"), nullable=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    controller_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occupied_count: Mapped[int] = mapped_column(Integer, default=0)
    count_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    count_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BerthRow(Base):
    __tablename__ = "berths"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), index=True)
    number: Mapped[str] = mapped_column(String(16))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_fcnt: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # LoRaWAN: u32


class DeviceRow(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("berth_id", name="uq_devices_berth_id"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(200))
    berth_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("berths.id"), nullable=True)
    site_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("sites.id"), nullable=True)
    lifecycle: Mapped[str] = mapped_column(String(16), default="provisioned")
    heartbeat_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    battery_mv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What the network server reports (ChirpStack status events), 0..100.
    battery_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    rssi: Mapped[float | None] = mapped_column(Float, nullable=True)
    snr: Mapped[float | None] = mapped_column(Float, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Plate cameras (kind "camera"): the push format, the SHA-256 of the secret in the
    # camera's URL, its lane and which way that lane goes (None: as the camera says).
    vendor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lane_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    direction: Mapped[str | None] = mapped_column(String(4), nullable=True)


class CameraReadRow(Base):
    """Every plate read a camera pushed, stored before the camera gets its answer.

    ``(camera_id, record_id)`` is unique: a camera's resend of a read it already delivered
    (Vzenith ``plateid``) is recognised as a duplicate. ``read_at`` is the camera's time, or
    the receive time when the camera's clock was off (``clock_off`` says how).
    """

    __tablename__ = "camera_reads"
    __table_args__ = (
        UniqueConstraint("camera_id", "record_id", name="uq_camera_reads_record"),
        Index("ix_camera_reads_camera_read_at", "camera_id", "read_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vendor: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lane_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    plate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    raw_plate: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # read | unread | bad_plate
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    direction: Mapped[str | None] = mapped_column(String(4), nullable=True)
    colour: Mapped[str | None] = mapped_column(String(16), nullable=True)
    vehicle_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    camera_ts: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    clock_off: Mapped[str | None] = mapped_column(String(16), nullable=True)
    images: Mapped[list[str]] = mapped_column(JSON, default=list)  # under evidence_dir
    dropped_images: Mapped[list[str]] = mapped_column(JSON, default=list)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ParkingSessionRow(Base):
    """One stay: on-street by berth occupancy, in a car park by plate reads at the lanes.

    The partial unique indexes make "one open session per berth" and "one open session per
    vehicle per car park" hold in the database itself, whatever races the callers run.
    """

    __tablename__ = "parking_sessions"
    __table_args__ = (
        Index(
            "uq_sessions_open_plate",
            "site_id",
            "plate",
            unique=True,
            sqlite_where=text("state = 'open' AND plate IS NOT NULL"),
            postgresql_where=text("state = 'open' AND plate IS NOT NULL"),
        ),
        Index(
            "uq_sessions_open_berth",
            "berth_id",
            unique=True,
            sqlite_where=text("state = 'open' AND berth_id IS NOT NULL"),
            postgresql_where=text("state = 'open' AND berth_id IS NOT NULL"),
        ),
        Index("ix_sessions_plate", "plate", "entry_at"),
        Index("ix_sessions_berth", "berth_id", "entry_at"),
        Index("ix_sessions_state_entry", "state", "entry_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # berth | plate
    site_id: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), index=True)
    berth_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("berths.id"), nullable=True)
    plate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(8))  # open | closed
    entry_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exit_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    entry_source: Mapped[str] = mapped_column(String(64))
    exit_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tariff_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    paid_fen: Mapped[int] = mapped_column(Integer, default=0)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PlateReadRow(Base):
    """Every lane read, kept for audit and to pair reads that arrive out of order."""

    __tablename__ = "plate_reads"
    __table_args__ = (Index("ix_plate_reads_site_plate", "site_id", "plate", "read_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"))
    direction: Mapped[str] = mapped_column(String(4))  # in | out
    plate: Mapped[str] = mapped_column(String(16))
    colour: Mapped[str | None] = mapped_column(String(16), nullable=True)  # yellow_green
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    lane: Mapped[str | None] = mapped_column(String(32), nullable=True)
    image_ref: Mapped[str | None] = mapped_column(String(500), nullable=True)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class PaymentRow(Base):
    """A payment or a refund (positive amounts; ``kind`` tells which). The idempotency key
    is unique, so the same request twice records one payment."""

    __tablename__ = "payments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("parking_sessions.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # payment | refund
    amount_fen: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    refund_of: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("payments.id"), nullable=True
    )
    request_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(32), default="")
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseReportRow(Base):
    """A case report: the outbox entry (delivery state) and the local mirror of the case
    system's status, in one row. ``id`` is also the idempotency key sent with it."""

    __tablename__ = "case_reports"
    __table_args__ = (
        Index("ix_cases_dedup", "dedup_key", "observed_at"),
        Index("ix_cases_delivery", "delivery_state", "next_attempt_at"),
        Index("ix_cases_plate", "plate"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    dedup_key: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    berth_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    zone_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    device_id: Mapped[str] = mapped_column(String(64))
    plate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    prior_offences: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivery_state: Mapped[str] = mapped_column(String(16))  # pending | delivered | rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    remote_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="reported")
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CaseStatusRow(Base):
    """One status update from the case system's callback (the mirror's history)."""

    __tablename__ = "case_status_updates"
    __table_args__ = (UniqueConstraint("case_id", "status", name="uq_case_status_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(36), ForeignKey("case_reports.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DetectionRow(Base):
    """What an AI camera or a drone reported seeing, and what the rules made of it."""

    __tablename__ = "detections"
    __table_args__ = (Index("ix_detections_observed", "observed_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    berth_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confidence: Mapped[float] = mapped_column(Float)
    image_ref: Mapped[str] = mapped_column(String(500))
    plate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))


class ChargerRow(Base):
    """A public EV charger (OCPP charge point) and what the gateway last knew of it.

    The OCPP basic-auth password is stored as a SHA-256 hash: it is generated by the gateway
    with 192 bits of entropy, so a fast hash is enough and keeps 5,000 reconnecting chargers
    from costing minutes of CPU (slow hashes are for human-chosen passwords).
    """

    __tablename__ = "chargers"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("sites.id"), nullable=True, index=True
    )
    place: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    vendor: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    current: Mapped[str] = mapped_column(String(4))
    power_kw: Mapped[float] = mapped_column(Float)
    connectors: Mapped[int] = mapped_column(Integer)
    lifecycle: Mapped[str] = mapped_column(String(16), default="provisioned")
    password_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_s: Mapped[int] = mapped_column(Integer, default=300)
    protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    firmware: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_boot_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_boot_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What liveness needs, so a restart and the CLI see what the running gateway saw.
    connected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disconnect_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    restarted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    probe_state: Mapped[str] = mapped_column(String(8), default="idle", server_default="idle")
    probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConnectorRow(Base):
    """A connector's current status (history is in ``charger_events``)."""

    __tablename__ = "charger_connectors"
    charger_id: Mapped[str] = mapped_column(String(48), ForeignKey("chargers.id"), primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(24), default="Unknown")
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    vendor_error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    info: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_meter_wh: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_meter_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Energy today (of the local day ``energy_day``) and the transaction the connector carries:
    # they survive a restart, and an end without a connector finds its connector.
    energy_today_wh: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    energy_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    transaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChargerEventRow(Base):
    """What a charger said or what happened to it, for inspectors' history and availability."""

    __tablename__ = "charger_events"
    __table_args__ = (Index("ix_charger_events_charger_ts", "charger_id", "ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(48))
    connector_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(50))
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    vendor_error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    detail: Mapped[str] = mapped_column(String(500), default="")


class ChargingSessionRow(Base):
    """One charging transaction; the meter samples that bill it are in ``charging_samples``.

    ``(charger_id, transaction_id)`` is unique, so a transaction delivered twice (a charger
    re-sending its offline queue) is recorded once.
    """

    __tablename__ = "charging_sessions"
    __table_args__ = (
        UniqueConstraint("charger_id", "transaction_id", name="uq_charging_tx"),
        Index("ix_charging_sessions_started", "started_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    charger_id: Mapped[str] = mapped_column(String(48), ForeignKey("chargers.id"))
    connector_id: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str] = mapped_column(String(36))
    id_tag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(8))  # open | closed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    charging_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    meter_start_wh: Mapped[float | None] = mapped_column(Float, nullable=True)
    meter_stop_wh: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tariff_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    total_fen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bill: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChargingSampleRow(Base):
    """An energy register reading of a charging session (unique per instant: re-sent
    readings are stored once)."""

    __tablename__ = "charging_samples"
    __table_args__ = (UniqueConstraint("session_id", "ts", name="uq_charging_sample"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("charging_sessions.id"), index=True
    )
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    energy_wh: Mapped[float] = mapped_column(Float)


class ChangeRow(Base):
    """One provisioning change (device, charger, token, town, tariffs, rules), numbered in
    commit order: the feed every gateway instance follows to stay live without a restart.

    Written in the transaction that made the change; followers re-read the row by ``key``, so
    the payload stays small or empty.
    """

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)  # a seq is never reused
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    op: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class DocumentRow(Base):
    """A version of a configuration document (posted tariffs, enforcement rules) as imported:
    the TOML text, validated before it was stored. The newest of a kind is in force."""

    __tablename__ = "config_documents"
    __table_args__ = (Index("ix_config_documents_kind", "kind", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LaneRow(Base):
    """A car park's entry or exit lane: the camera that reads it and the gate controller that
    moves its barrier (bus URL, Modbus unit, register-map model). From the town file."""

    __tablename__ = "lanes"
    __table_args__ = (UniqueConstraint("camera_id", name="uq_lanes_camera"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # entry | exit
    camera_id: Mapped[str] = mapped_column(String(64))
    gate_bus: Mapped[str] = mapped_column(String(200))
    gate_unit: Mapped[int] = mapped_column(Integer)
    gate_model: Mapped[str] = mapped_column(String(64))
    # the gate controller's lifecycle (gateway.directory.lifecycle): the lane names it
    gate_lifecycle: Mapped[str] = mapped_column(
        String(16), default="active", server_default="active"
    )
    display: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LaneDecisionRow(Base):
    """A decision to raise a lane's gate, written before the command is sent: ``pending`` ->
    ``sent`` -> ``confirmed | unconfirmed | failed``, or ``interrupted`` when the gateway
    restarted before the outcome was known (never resent: the gate may have moved)."""

    __tablename__ = "lane_decisions"
    __table_args__ = (
        Index("ix_lane_decisions_lane", "lane_id", "created_at"),
        Index("ix_lane_decisions_state", "state"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lane_id: Mapped[str] = mapped_column(String(64))
    plate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(String(300))
    verdict: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(300), default="")
    operator: Mapped[str | None] = mapped_column(String(16), nullable=True)  # token id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OfficerRow(Base):
    """An officer or assistant of the bureau's enforcement squads (from the town file)."""

    __tablename__ = "officers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    squad: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))  # officer | assistant
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BodycamRow(Base):
    """A body cam (GB/T 28181 device, 20-digit id) and its digest credential.

    Only HA1 = MD5(id:realm:password) is stored, with the realm it was made for: the digest
    needs nothing else, and a leaked row does not give the password away for other realms.
    """

    __tablename__ = "bodycams"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    officer_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("officers.id"), nullable=True, index=True
    )
    ha1: Mapped[str | None] = mapped_column(String(32), nullable=True)
    realm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifecycle: Mapped[str] = mapped_column(String(16), default="provisioned")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BodycamStateRow(Base):
    """What the platform last knew of a cam: registration, presence, power, position.
    Written behind the signalling (every ``[bodycams] persist_interval_s``), read back at a
    restart so presence survives it."""

    __tablename__ = "bodycam_state"
    device_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    contact: Mapped[str | None] = mapped_column(String(256), nullable=True)
    transport: Mapped[str | None] = mapped_column(String(8), nullable=True)
    source_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_keepalive: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    battery_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    storage_free_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    storage_total_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    speed_kmh: Mapped[float | None] = mapped_column(Float, nullable=True)
    direction_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    manufacturer: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    firmware: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # PostgreSQL, several instances: the one that wrote the row (heard the cam last)
    instance_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class BodycamAlarmRow(Base):
    """An alarm a cam raised (kept for the operators; ``case_id`` when one was filed)."""

    __tablename__ = "bodycam_alarms"
    __table_args__ = (Index("ix_bodycam_alarms_device_at", "device_id", "received_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    method: Mapped[int | None] = mapped_column(Integer, nullable=True)
    alarm_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class DroneRow(Base):
    """A patrol drone of the town file: its link (``dji``: dock and aircraft sns; ``mavlink``:
    system id), patrol area (a WGS-84 ``[lon, lat]`` ring) and home."""

    __tablename__ = "drones"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # dji | mavlink
    dock_sn: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    aircraft_sn: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    system_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    patrol_area: Mapped[Any] = mapped_column(JSON)
    home_lat: Mapped[float] = mapped_column(Float)
    home_lon: Mapped[float] = mapped_column(Float)
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DroneStateRow(Base):
    """What the drone service last knew of a drone (and its dock): written behind the links'
    reports (every ``[drones] persist_interval_s``), read back at a restart. ``alerts``: the
    alert kinds standing, so a restart neither forgets nor repeats them."""

    __tablename__ = "drone_state"
    drone_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    link: Mapped[str] = mapped_column(String(16))  # online | lost | unknown
    last_heard: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    height_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    elevation_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    speed_mps: Mapped[float | None] = mapped_column(Float, nullable=True)
    heading_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    battery_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flying: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    armed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    text: Mapped[str | None] = mapped_column(String(256), nullable=True)
    dock_link: Mapped[str | None] = mapped_column(String(16), nullable=True)
    dock_heard: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dock_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    drone_in_dock: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    drone_charging: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    cover_state: Mapped[int | None] = mapped_column(Integer, nullable=True)
    alerts: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DroneCommandRow(Base):
    """A command to a drone, written through: ``pending`` before it goes on the wire, its
    outcome when final. ``id`` is the command id (DJI: the bid), so progress from any
    instance updates the row. ``args`` holds no secrets; ``requested_by`` is the token's
    label."""

    __tablename__ = "drone_commands"
    __table_args__ = (Index("ix_drone_commands_drone_at", "drone_id", "requested_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    drone_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    args: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_code: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditRow(Base):
    """One audited change (gateway.directory.audit): who (a token's label and id, or
    ``cli:<user>``), when, through what, which object, and its public fields before and after
    (secrets redacted before they get here). Written in the changing transaction."""

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_actor", "actor"),
        Index("ix_audit_kind_key", "kind", "key"),
        Index("ix_audit_actor_token", "actor_token_id", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    actor_token_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # api | cli | import | startup | ocpp | system
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)


class ChargerConnectionRow(Base):
    """Where a charger is connected when several gateways share the database (PostgreSQL):
    the instance that holds the charger's advisory lock, since when. Deleted when that
    instance lets the charger go; a row whose instance died (its lock is free) is stale and
    removed by the next instance that looks (``gateway.services.charging.cluster``)."""

    __tablename__ = "charger_connections"
    charger_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    protocol: Mapped[str] = mapped_column(String(16), default="")
    remote: Mapped[str] = mapped_column(String(64), default="")


class GateCommandRow(Base):
    """A lane's gate command relayed to the instance that drives the gate's bus (several
    instances, PostgreSQL): written by the instance that decided (``origin``) for the bus,
    taken by the one holding the bus's advisory lock (``taken_by``), answered in ``result``
    (the gate's read-back outcome), deleted by the origin once read."""

    __tablename__ = "gate_commands"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lane_id: Mapped[str] = mapped_column(String(64))
    bus: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(16))
    decision_id: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(64))
    taken_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | running | done | expired
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GateStateRow(Base):
    """A lane's gate as the instance driving its bus last polled it (``GateFactory.status``),
    so every instance shows it (several instances, PostgreSQL)."""

    __tablename__ = "gate_states"
    lane_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bus: Mapped[str] = mapped_column(String(200))
    instance_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChargerCommandRow(Base):
    """A person's command to a charger connected to another gateway instance, relayed through
    the database: written by the instance that was asked (``origin``), run by the one that
    holds the connection (``instance_id``), answered in ``result``, deleted by the origin once
    read. ``params`` is cleared when the command is taken (it may carry a password)."""

    __tablename__ = "charger_commands"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    charger_id: Mapped[str] = mapped_column(String(48), index=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))  # pending | running | done | expired
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
