"""Posted tariffs and enforcement rules kept in the database, as versioned TOML documents.

The database is their one source of truth: ``citygate tariffs import`` / ``rules import``
validate a file and store it as a new version (with its change in the feed, so every running
gateway switches to it); at start the file named in the configuration is imported when it
changed since it was last imported, so editing that file and restarting keeps working while a
later import from the CLI is not undone by a restart. Without a configured file the shipped
sample is stored once, so every instance prices with the same, recorded, text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.directory.audit import SYSTEM, Actor, record_audit
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import DocumentRow, SiteRow, StreetRow, ZoneRow
from parking.enforcement import RuleBook, ZoneShape
from parking.enforcement_file import SAMPLE_RULES, loads_rules
from parking.tariff_file import loads_tariffs
from parking.tariffs import TariffBook

DocKind = Literal["tariffs", "rules"]
_SAMPLES: dict[str, tuple[str, str]] = {
    "tariffs": ("parking.data", "sample_tariffs.toml"),
    "rules": ("parking.data", SAMPLE_RULES),
}


class DocumentError(ValueError):
    """A document that cannot be put in force; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Document:
    id: int
    kind: str
    source: str
    sha256: str
    content: str
    created_at: datetime


def _doc(row: DocumentRow) -> Document:
    return Document(row.id, row.kind, row.source, row.sha256, row.content, row.created_at)


def document_fields(doc: Document) -> dict[str, Any]:
    """What the audit log keeps of a version: which it is, not its text (kept in the table)."""
    return {
        "id": doc.id,
        "source": doc.source,
        "sha256": doc.sha256,
        "bytes": len(doc.content.encode("utf-8")),
        "created_at": doc.created_at,
    }


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StreetLine:
    """A street's centre line, as the one map draws it."""

    id: str
    name: str
    kind: str  # main | minor
    line: tuple[tuple[float, float], ...]  # (lon, lat), WGS-84


async def town_streets(session: AsyncSession) -> list[StreetLine]:
    rows = (await session.execute(select(StreetRow).order_by(StreetRow.id))).scalars()
    return [
        StreetLine(r.id, r.name, r.kind, tuple((float(p[0]), float(p[1])) for p in r.line))
        for r in rows
    ]


async def town_zones(session: AsyncSession) -> list[ZoneShape]:
    rows = (await session.execute(select(ZoneRow).order_by(ZoneRow.id))).scalars()
    return [
        ZoneShape(r.id, r.kind, r.name, tuple((float(p[0]), float(p[1])) for p in r.polygon))
        for r in rows
    ]


def parse_tariffs(text: str, source: str, zone: ZoneInfo) -> TariffBook:
    try:
        return loads_tariffs(text, source, zone=zone)
    except ValueError as exc:
        raise DocumentError(str(exc)) from None


def parse_rules(
    text: str, source: str, zones: Sequence[ZoneShape], sites: Collection[str]
) -> RuleBook:
    try:
        return loads_rules(text, zones, source, sites=sites)
    except ValueError as exc:
        raise DocumentError(str(exc)) from None


async def validate(
    session: AsyncSession, kind: DocKind, text: str, source: str, zone: ZoneInfo
) -> Any:
    """The parsed book of *text* (rules are checked against the town's zones and sites)."""
    if kind == "tariffs":
        return parse_tariffs(text, source, zone)
    sites = set((await session.execute(select(SiteRow.id))).scalars())
    return parse_rules(text, source, await town_zones(session), sites)


async def current(session: AsyncSession, kind: DocKind) -> Document | None:
    row = await session.scalar(
        select(DocumentRow).where(DocumentRow.kind == kind).order_by(DocumentRow.id.desc())
    )
    return None if row is None else _doc(row)


async def get(session: AsyncSession, doc_id: int) -> Document | None:
    row = await session.get(DocumentRow, doc_id)
    return None if row is None else _doc(row)


async def import_document(
    session: AsyncSession,
    kind: DocKind,
    text: str,
    source: str,
    now: datetime,
    zone: ZoneInfo,
    *,
    actor: Actor = SYSTEM,
) -> tuple[Document, bool]:
    """Validate *text* and put it in force (in the caller's transaction); returns the document
    in force and whether it is new (the same text as the current version is not stored twice).
    Raises ``DocumentError`` naming the field at fault."""
    await validate(session, kind, text, Path(source).name, zone)
    digest = sha256(text)
    now_doc = await current(session, kind)
    if now_doc is not None and now_doc.sha256 == digest:
        return now_doc, False
    row = DocumentRow(kind=kind, sha256=digest, source=source[:300], content=text, created_at=now)
    session.add(row)
    await session.flush()
    await record_change(session, kind, str(row.id), "import", now)
    doc = _doc(row)
    before = None if now_doc is None else document_fields(now_doc)
    await record_audit(
        session, actor, kind, str(row.id), "import", before, document_fields(doc), now
    )
    return doc, True


def _read(kind: DocKind, path: Path | None) -> tuple[str, str]:
    """(text, source) of the configured file, or of the shipped sample."""
    if path is None:
        package, name = _SAMPLES[kind]
        return resources.files(package).joinpath(name).read_text("utf-8"), f"(shipped) {name}"
    try:
        return path.read_text("utf-8"), str(path.resolve())
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror}") from None


async def in_force(
    sessions: async_sessionmaker[Any], kind: DocKind, path: Path | None
) -> tuple[str, str]:
    """(text, source) of the document in force, read only: the database's current version,
    or, before any gateway stored one, what a gateway would store (the configured file)."""
    async with sessions() as session:
        doc = await current(session, kind)
    return (doc.content, doc.source) if doc is not None else _read(kind, path)


async def ensure_document(
    sessions: async_sessionmaker[Any],
    kind: DocKind,
    path: Path | None,
    now: datetime,
    zone: ZoneInfo,
    *,
    actor: Actor = SYSTEM,
) -> Document:
    """The document in force at start, after importing the configured file if it changed
    since its last import (or nothing is stored yet)."""
    text, source = _read(kind, path)
    digest = sha256(text)
    async with sessions.begin() as session:
        doc = await current(session, kind)
        if doc is not None and doc.sha256 != digest:
            seen = await session.scalar(
                select(DocumentRow.sha256)
                .where(DocumentRow.kind == kind, DocumentRow.source == source[:300])
                .order_by(DocumentRow.id.desc())
            )
            if seen == digest or path is None:
                return doc  # the file is as last imported: a later import stays in force
        if doc is None or doc.sha256 != digest:
            doc, _ = await import_document(session, kind, text, source, now, zone, actor=actor)
        return doc
