"""The patrol drones for operators: where each is, flying or docked, battery, link, dock,
alerts and last commands; and the loudspeaker and return-home commands.

A command POST waits for the command's outcome (at most ``[drones] command_timeout_s`` per
try, ``command_retries`` more tries) and answers its final record (200), whatever the outcome:
``ok``, ``failed``, ``rejected`` (the vehicle or its link cannot: a MAVLink vehicle has no
loudspeaker), ``timeout`` or ``canceled``. Every command is recorded (``pending``) before it is
sent, with the token's label, and is shown on ``GET /api/v1/drones/{id}``. Positions are WGS-84
degrees (``datum``). Errors answer the problem shape (``gateway.api.problems``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from dronelink.model import CommandKind
from gateway.api.auth import require
from gateway.api.problems import ProblemError, invalid, responses
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.drones.commands import speakable
from gateway.services.drones.service import CommandBusy, NotRecorded, UnknownDrone
from gateway.services.drones.store import command_json
from gateway.services.drones.views import drones_view

router = APIRouter(prefix="/api/v1", tags=["Drones"])
StateDep = Annotated[AppState, Depends(get_state)]
Operator = Annotated[TokenInfo, Depends(require(Role.OPERATOR))]
DroneId = Annotated[str, Path(min_length=1, max_length=64)]
TEXT_LIMIT = 2000  # the schema's bound; [drones] speaker_max_chars is the one in force


class SpeakerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        min_length=1,
        max_length=TEXT_LIMIT,
        description="what the loudspeaker says (text to speech); at most [drones] "
        "speaker_max_chars characters (200 by default), else a 422 (code text_too_long)",
    )
    volume: int | None = Field(
        None, ge=0, le=100, strict=True, description="0-100; default [drones] default_volume"
    )
    loop: bool = Field(False, strict=True, description="repeat until stopped")


async def _view(state: AppState, drone_id: str | None = None) -> dict[str, Any]:
    if state.drones is not None:
        await state.drones.flush()  # what the service knows now, not a second ago
    c = state.drones_config
    async with state.sessions() as db:
        return await drones_view(
            db, state.clock(), c.presence_timeout_s, drone_id, c.recent_commands
        )


def _service(state: AppState) -> Any:
    if state.drones is None:
        raise ProblemError(503, "the drone service does not run here", "no_drone_service")
    return state.drones


async def _command(
    state: AppState, drone_id: str, kind: CommandKind, args: dict[str, Any], token: TokenInfo
) -> dict[str, Any]:
    service = _service(state)
    try:
        record = await service.command(drone_id, kind, args, token.label or token.id)
    except UnknownDrone:
        raise ProblemError(404, f"no drone {drone_id!r}", "no_such_drone") from None
    except CommandBusy as exc:
        raise ProblemError(
            409, str(exc), "command_in_flight", extensions={"command_id": exc.command_id}
        ) from None
    except NotRecorded as exc:
        raise ProblemError(503, str(exc), "not_recorded") from None
    except ValueError as exc:
        raise invalid(str(exc), "invalid_command", ("body",)) from None
    return command_json(record)


@router.get(
    "/drones",
    summary="Every patrol drone: link, flying, battery, position (WGS-84), dock, alerts",
    description="`link`: online (heard within [drones] presence_timeout_s), lost, unknown "
    "(never heard). Positions are WGS-84 degrees, as the vehicles send them (`datum`).",
    responses=responses(401, 403),
)
async def list_drones(state: StateDep, _: Operator) -> dict[str, Any]:
    return await _view(state)


@router.get(
    "/drones/{drone_id}",
    summary="One patrol drone with its patrol area and last commands (newest first)",
    responses=responses(401, 403, 404, s404="no such drone (code no_such_drone)"),
)
async def get_drone(drone_id: DroneId, state: StateDep, _: Operator) -> dict[str, Any]:
    view = await _view(state, drone_id)
    if not view["drones"]:
        raise ProblemError(404, f"no drone {drone_id!r}", "no_such_drone")
    drone: dict[str, Any] = view["drones"][0]
    return {"at": view["at"], "datum": view["datum"], **drone}


COMMAND_RESPONSES = responses(
    401, 403, 404, 409, 422, 503,
    s404="no such drone (code no_such_drone)",
    s409="a command of this kind to this drone is still in flight (code command_in_flight, "
    "`command_id` names it)",
    s422="a body the schema refuses, or a text longer than [drones] speaker_max_chars",
    s503="the command could not be recorded, so it was not sent (code not_recorded)",
)  # fmt: skip


@router.post(
    "/drones/{drone_id}/speaker",
    summary="Say a text on the drone's loudspeaker (the final command record)",
    description="Waits for the outcome and answers the command's final record; `status` "
    "`rejected` when the drone cannot (a MAVLink vehicle has no loudspeaker).",
    responses=COMMAND_RESPONSES,
)
async def speaker(
    drone_id: DroneId, body: SpeakerRequest, state: StateDep, token: Operator
) -> dict[str, Any]:
    text = " ".join(body.text.split())
    limit = state.drones_config.speaker_max_chars
    if not text:
        raise invalid("text must say something", "empty_text", ("body", "text"))
    if not speakable(text):
        raise invalid("text has control characters or lone surrogates", "bad_text",
                      ("body", "text"))  # fmt: skip
    if len(text) > limit:
        raise invalid(f"text is longer than {limit} characters", "text_too_long", ("body", "text"))
    volume = state.drones_config.default_volume if body.volume is None else body.volume
    args = {"text": text, "volume": volume, "loop": body.loop}
    return await _command(state, drone_id, CommandKind.SPEAKER, args, token)


@router.post(
    "/drones/{drone_id}/speaker/stop",
    summary="Stop the drone's loudspeaker (the final command record)",
    responses=COMMAND_RESPONSES,
)
async def speaker_stop(drone_id: DroneId, state: StateDep, token: Operator) -> dict[str, Any]:
    return await _command(state, drone_id, CommandKind.SPEAKER_STOP, {}, token)


@router.post(
    "/drones/{drone_id}/return-home",
    summary="Bring the drone home (to its dock / launch point; the final command record)",
    responses=COMMAND_RESPONSES,
)
async def return_home(drone_id: DroneId, state: StateDep, token: Operator) -> dict[str, Any]:
    return await _command(state, drone_id, CommandKind.RETURN_HOME, {}, token)
