"""Bulk import for technicians (token): ``POST /api/v1/import`` with a CSV or TOML file as
the body, the same function as ``citygate import`` (gateway.directory.bulk.service) and the
same JSON document as its ``--json``. A body that is not UTF-8 text is a 400; text that is
not a readable import file (not CSV or TOML, no kind, too many rows) a 422. All or nothing:
a rejected row is a 422 whose ``import`` member is that document (every error names the row
and the field), and nothing is written. Generated secrets are in the answer of the import
that made them, once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from gateway.api import problems
from gateway.api.auth import actor_of, require
from gateway.api.state import AppState, get_state
from gateway.directory.bulk.parse import ImportFileError, detect_format
from gateway.directory.bulk.service import import_file, limits_of
from gateway.directory.tokens import Role, TokenInfo

PATH = "/api/v1/import"
router = APIRouter(prefix="/api/v1", tags=["bulk import (token)"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/toml": {"schema": {"type": "string"}},
    },
}


@router.post(
    "/import",
    summary="Bulk import of sensors, cameras, chargers, body cams (CSV or TOML), all or nothing",
    description="The body is the file: `text/csv` (a header row naming the columns; `kind` "
    "names what it holds, or a `kind` column) or `application/toml` (`[[sensors]]`, "
    "`[[cameras]]`, `[[chargers]]`, `[[bodycams]]`). The answer is the document "
    "`citygate import --json` prints; a rejected row is a 422 with that document in `import`.",
    openapi_extra={"requestBody": _BODY},
    responses=problems.responses(415),
)
async def bulk_import(
    request: Request,
    state: StateDep,
    who: Technician,
    dry_run: bool = False,
    retire_missing: bool = False,
    kind: Annotated[Literal["sensor", "camera", "charger", "bodycam"] | None, Query()] = None,
) -> dict[str, Any]:
    try:
        fmt = detect_format("", request.headers.get("content-type") or "none")
    except ImportFileError as exc:
        raise problems.ProblemError(415, str(exc), "unsupported_media_type") from None
    cfg = state.bulk_import
    limits = limits_of(cfg.max_file_bytes, cfg.max_rows)
    data = await request.body()  # bounded by BodyLimit ([bulk_import] max_file_bytes)
    try:
        outcome = await import_file(
            state.sessions,
            data,
            fmt,
            state.clock(),
            limits=limits,
            realm=state.bodycams_config.effective_realm,
            kind=kind,
            dry_run=dry_run,
            retire_missing=retire_missing,
            actor=actor_of(who),
        )
    except ImportFileError as exc:  # 413 too large, 400 not text, 422 not a readable file
        raise problems.ProblemError(exc.status, str(exc), "bad_file") from None
    doc = outcome.as_dict()
    if doc["errors"]:
        raise problems.ProblemError(
            422,
            f"{len(doc['errors'])} row error(s): nothing imported",
            "rows_rejected",
            extensions={"import": doc},
        )
    if outcome.imported:
        state.changed()
    return doc
