"""Read a bulk import file into typed rows per kind, with the API's own validation.

Pure: bytes in, rows or errors out; no database, no clock. Each kind is validated by the
pydantic model the API uses to create one device of that kind, so a row is accepted here
exactly when ``POST`` of it would pass validation. Errors name the file row (the CSV line,
counting the header as line 1; the TOML table as ``chargers[3]``, from 1) and the field.

CSV: the header row names the columns (the model's fields; ``kind`` too when a file mixes
kinds, else the caller names the kind); UTF-8 with or without a BOM; an empty cell is the
field's default. A column in the header is one the file is authoritative for: an existing
device's value in that column is compared and changed. TOML: ``[[sensors]]``,
``[[cameras]]``, ``[[chargers]]``, ``[[bodycams]]`` arrays of tables; the keys a table gives
are the fields it is authoritative for.
"""

from __future__ import annotations

import csv
import functools
import io
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from drivers.sensors.messages import CodecError
from drivers.sensors.registry import get_codec
from gateway.api.models import CameraCreate, DeviceCreate
from gateway.directory.bodycams import BodycamCreate
from gateway.directory.chargers import ChargerCreate

Kind = Literal["sensor", "camera", "charger", "bodycam"]
KINDS: tuple[Kind, ...] = ("sensor", "camera", "charger", "bodycam")
TOML_TABLES: dict[str, Kind] = {
    "sensors": "sensor",
    "cameras": "camera",
    "chargers": "charger",
    "bodycams": "bodycam",
}
Format = Literal["csv", "toml"]


class CameraSecret(BaseModel):
    """A camera's push URL secret when the file gives one (else one is generated)."""

    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(None, min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ChargerPassword(BaseModel):
    """A charger's OCPP password when the file gives one: OCPP's 16..40 characters."""

    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(None, min_length=16, max_length=40, pattern=r"^[\x21-\x7e]+$")


# The one model each kind's row must pass (the API's), and the secret column it may carry
# beside it (validated by its own small model: the API's create models generate those).
MODELS: dict[Kind, type[BaseModel]] = {
    "sensor": DeviceCreate,
    "camera": CameraCreate,
    "charger": ChargerCreate,
    "bodycam": BodycamCreate,
}
SECRET_MODELS: dict[Kind, tuple[str, type[BaseModel]]] = {
    "camera": ("secret", CameraSecret),
    "charger": ("password", ChargerPassword),
}
SECRET_FIELDS = {"secret", "password"}  # never printed, never in a diff


class ImportFileError(Exception):
    """The file as a whole cannot be read (too large, not UTF-8, not CSV/TOML, no kind);
    ``status`` is the HTTP status that fits: 413 too large, 400 not text, else 422."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RowError:
    row: str  # "line 7" (CSV) or "chargers[3]" (TOML)
    field: str  # the column, or "row" for the row as a whole
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class Row:
    kind: Kind
    id: str  # as the directory keys it (sensors and cameras lower-cased)
    where: str
    values: dict[str, Any]  # the model's fields, validated (secrets excluded)
    given: frozenset[str]  # the fields the file is authoritative for
    secret: str | None = None  # from the file; hashed on the way in, never shown


@dataclass
class Parsed:
    rows: dict[Kind, list[Row]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.rows.values())


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int
    max_rows: int


def detect_format(name: str, content_type: str | None = None) -> Format:
    """The file's format from a Content-Type or a file name."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in ("text/csv", "application/csv"):
        return "csv"
    if ct in ("application/toml", "text/toml", "text/x-toml"):
        return "toml"
    if ct:
        raise ImportFileError(
            f"unsupported content type {ct!r}: send text/csv or application/toml", status=415
        )
    if name.lower().endswith(".csv"):
        return "csv"
    if name.lower().endswith(".toml"):
        return "toml"
    raise ImportFileError(f"{name}: cannot tell CSV from TOML by its name (.csv or .toml)")


def parse(data: bytes, fmt: Format, limits: Limits, kind: Kind | None = None) -> Parsed:
    """Every row of the file, validated; the errors of every bad row (none imported then)."""
    if len(data) > limits.max_bytes:
        raise ImportFileError(
            f"the file has {len(data)} bytes, more than {limits.max_bytes}", status=413
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"not UTF-8 text (byte {exc.start})", status=400) from None
    if "\x00" in text:
        raise ImportFileError("not a text file (NUL bytes)", status=400)
    raw = _csv_rows(text, kind) if fmt == "csv" else _toml_rows(text, kind)
    prepared: list[_Prepared | RowError] = []
    for n, (row_kind, where, cells) in enumerate(raw, start=1):
        if n > limits.max_rows:
            raise ImportFileError(f"more than {limits.max_rows} rows")
        prepared.append(_prepare(row_kind, where, cells))
    bodies = _validate_all(prepared)
    known: dict[str, bool] = {}  # sensor model -> a codec decodes it (a file names a few)
    parsed = Parsed()
    seen: dict[tuple[Kind, str], str] = {}
    for i, prep in enumerate(prepared):
        if isinstance(prep, RowError):
            parsed.errors.append(prep)
            continue
        row = _finish(prep, bodies[i], parsed.errors, known)
        if row is None:
            continue
        first = seen.setdefault((row.kind, row.id), prep.where)
        if first != prep.where:
            parsed.errors.append(
                RowError(prep.where, _id_field(row.kind), f"{row.id} also at {first}")
            )
            continue
        parsed.rows.setdefault(row.kind, []).append(row)
    if not parsed.rows and not parsed.errors:
        raise ImportFileError("the file has no rows" + (f" of kind {kind}" if kind else ""))
    return parsed


def columns(kind: Kind | None) -> set[str]:
    """The columns a file of *kind* (None: of every kind) may have."""
    out: set[str] = set()
    for k in KINDS if kind is None else (kind,):
        out |= set(MODELS[k].model_fields)
        if k in SECRET_MODELS:
            out.add(SECRET_MODELS[k][0])
    return out


def _id_field(kind: Kind) -> str:
    return "dev_eui" if kind == "sensor" else "id"


def _csv_rows(text: str, kind: Kind | None) -> Iterator[tuple[Kind, str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            raise ImportFileError("line 1: a column is named twice")
        if kind is None and "kind" not in header:
            raise ImportFileError("which kind? give --kind (kind= in the API) or a kind column")
        known = columns(kind) | ({"kind", ""} if kind is None else {""})
        unknown = [h for h in header if h not in known]
        if unknown:
            raise ImportFileError(
                f"line 1: unknown column {unknown[0]!r}; the columns are: "
                + ", ".join(sorted(known - {""}))
            )
        width = len(header)
        for values in reader:
            where = f"line {reader.line_num}"
            if len(values) != width:
                if any(v.strip() for v in values):
                    yield "sensor", where, {"\x00": f"{len(values)} cells, the header has {width}"}
                continue  # else a blank line
            stripped = [v.strip() for v in values]
            if not any(stripped):
                continue  # a line of empty cells
            cells = dict(zip(header, stripped, strict=True))
            cells.pop("", None)  # a column without a name (a trailing comma) is ignored
            row_kind = cells.pop("kind", "") or kind
            if row_kind not in KINDS:
                yield "sensor", where, {"\x00kind": f"unknown kind {row_kind!r}"}
                continue
            yield row_kind, where, cells
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: not CSV: {exc}") from None


def _toml_rows(text: str, kind: Kind | None) -> Iterator[tuple[Kind, str, dict[str, Any]]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ImportFileError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(TOML_TABLES))
    if unknown:
        raise ImportFileError(
            f"unknown table {unknown[0]!r}: use {', '.join(f'[[{t}]]' for t in TOML_TABLES)}"
        )
    for table, table_kind in TOML_TABLES.items():
        if table not in doc or (kind is not None and table_kind != kind):
            continue
        items = doc[table]
        if not isinstance(items, list):
            raise ImportFileError(f"{table} must be an array of tables ([[{table}]])")
        for i, item in enumerate(items, start=1):
            where = f"{table}[{i}]"
            if not isinstance(item, dict):
                yield table_kind, where, {"\x00": "not a table"}
                continue
            yield table_kind, where, {"\x01toml": True, **item}


@dataclass(slots=True)
class _Prepared:
    """A row's cells ready for its kind's model (the secret column apart)."""

    kind: Kind
    where: str
    toml: bool
    given: frozenset[str]
    cells: dict[str, Any]
    secret_cells: dict[str, Any]


def _prepare(kind: Kind, where: str, cells: dict[str, Any]) -> _Prepared | RowError:
    for marker in ("\x00", "\x00kind"):
        if marker in cells:
            return RowError(where, marker[1:] or "row", str(cells[marker]))
    toml = cells.pop("\x01toml", False)
    given = frozenset(cells)
    secret_field = SECRET_MODELS[kind][0] if kind in SECRET_MODELS else ""
    secret_cells = {secret_field: cells.pop(secret_field)} if secret_field in cells else {}
    if not toml:  # an empty CSV cell is the field's default
        if "" in cells.values():
            cells = {k: v for k, v in cells.items() if v != ""}
        if secret_cells and "" in secret_cells.values():
            secret_cells = {}
    return _Prepared(kind, where, toml, given, cells, secret_cells)


@functools.cache
def _many(kind: Kind) -> TypeAdapter[dict[str, Any]]:
    """The kind's model over many rows at once, keyed by text (strings mode validates a
    mapping, not a list): one call validates a file's thousands."""
    return TypeAdapter(dict[str, MODELS[kind]])  # type: ignore[valid-type]


Body = BaseModel | ValidationError


def _validate_all(prepared: list[_Prepared | RowError]) -> dict[int, Body]:
    """Each prepared row's model (or the row's ValidationError), by position in *prepared*
    (the rows already rejected are left out). The rows of a kind are validated in one call;
    when one of them is bad they are validated again one by one, so each row's errors are
    exactly its own (and the good rows still reach the diff, which reports its own errors)."""
    groups: dict[tuple[Kind, bool], list[tuple[int, _Prepared]]] = {}
    for i, prep in enumerate(prepared):
        if isinstance(prep, RowError):
            continue
        groups.setdefault((prep.kind, prep.toml), []).append((i, prep))
    out: dict[int, Body] = {}
    for (kind, toml), items in groups.items():
        cells = {str(n): p.cells for n, (_, p) in enumerate(items)}
        adapter = _many(kind)
        try:
            bodies = adapter.validate_python(cells) if toml else adapter.validate_strings(cells)
        except ValidationError:
            model = MODELS[kind]
            for i, prep in items:
                try:
                    out[i] = (model.model_validate(prep.cells) if toml
                              else model.model_validate_strings(prep.cells))  # fmt: skip
                except ValidationError as exc:
                    out[i] = exc
            continue
        for (i, _), body in zip(items, bodies.values(), strict=True):
            out[i] = body
    return out


def _finish(
    prep: _Prepared, body: Body, errors: list[RowError], known: dict[str, bool]
) -> Row | None:
    """The row from its validated model, its secret and the checks beyond the model."""
    kind, where = prep.kind, prep.where
    if isinstance(body, ValidationError):
        _errors(body, where, errors)
        return None
    bad = False
    secret: str | None = None
    if kind in SECRET_MODELS and prep.secret_cells:
        secret_field, secret_model = SECRET_MODELS[kind]
        try:
            checked = secret_model.model_validate(prep.secret_cells)
            secret = getattr(checked, secret_field)
        except ValidationError as exc:
            _errors(exc, where, errors, hide_input=True)
            bad = True
    values = dict(body.__dict__)  # flat models: their fields as validated
    if kind == "sensor":
        model = values["model"]
        if model not in known:
            known[model] = _decodable(model)
        if not known[model]:
            errors.append(RowError(where, "model", f"unsupported sensor model {values['model']!r}"))
            bad = True
        values["dev_eui"] = values["dev_eui"].lower()
    if kind == "camera":
        values["id"] = values["id"].lower()
    if kind == "bodycam":
        secret = values.pop("password")
    if bad:
        return None
    key = values.pop(_id_field(kind))
    return Row(kind, key, where, values, prep.given.intersection(values), secret)


def _decodable(model: str) -> bool:
    """Whether a codec decodes sensor *model*."""
    try:
        get_codec(model)
    except CodecError:
        return False
    return True


def _errors(
    exc: ValidationError, where: str, errors: list[RowError], hide_input: bool = False
) -> None:
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        msg = err["msg"]
        if loc in SECRET_FIELDS or hide_input:
            msg = msg.split(":")[0]  # the message never carries the value, but be sure
        errors.append(RowError(where, loc, msg))
