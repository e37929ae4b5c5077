"""``citygate devices``: the device registry from the command line — the same checks and the
same registry operations as the technicians' API; every change goes through the change feed,
so running gateways bind, unbind and retire sensors live."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Exit,
    WithConfig,
    cli_actor,
    fail,
    invalid,
    print_table,
    refused,
    settings_for,
    with_db,
)
from gateway.cli.replace import add_replace

COLUMNS = ["id", "kind", "model", "site_id", "berth_id", "lifecycle", "last_seen"]


def _row(r: Any) -> dict[str, Any]:
    from gateway.api.models import DeviceOut

    return DeviceOut.model_validate(r, from_attributes=True).model_dump(mode="json")


def _invalid(exc: Any, args: argparse.Namespace | None = None) -> int:
    if args is not None:  # exit 2, as JSON with --json
        return invalid(args, "device", exc)
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "device"
        print(f"invalid device: {where}: {err['msg']}", file=sys.stderr)
    return 2


def cmd_devices_list(args: argparse.Namespace) -> int:
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.registry import Registry

        rows = await Registry(sessions).list_devices(args.kind, args.site, args.lifecycle)
        out = [_row(r) for r in rows]
        if args.json:
            print(json.dumps({"devices": out}, ensure_ascii=False, indent=2))
        else:
            print_table(COLUMNS, [[str(d[c] or "") for c in COLUMNS] for d in out])
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def _change(args: argparse.Namespace, op: str, body: Any) -> int:
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.registry import Registry, RegistryError

        registry = Registry(sessions)
        try:
            if op == "add":
                row, _ = await registry.provision(
                    body.dev_eui,
                    body.model,
                    now_utc(),
                    berth_id=body.berth_id,
                    heartbeat_s=body.heartbeat_s,
                    notes=body.notes,
                    actor=cli_actor(args),
                )
            else:
                changes = body.model_dump(include=body.model_fields_set)
                row, _ = await registry.update(args.id, changes, now_utc(), actor=cli_actor(args))
        except RegistryError as exc:
            return refused(args, exc.status, exc.message, "citygate devices list")
        print(json.dumps(_row(row), ensure_ascii=False))
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_devices_add(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.api.models import DeviceCreate

    try:
        body = DeviceCreate(
            dev_eui=args.dev_eui,
            model=args.model,
            berth_id=args.berth,
            heartbeat_s=args.heartbeat_s,
            notes=args.notes,
        )
    except ValidationError as exc:
        return _invalid(exc, args)
    return _change(args, "add", body)


def cmd_devices_set(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.api.models import DevicePatch

    given: dict[str, Any] = {}
    if args.unbind:
        given["berth_id"] = None
    elif args.berth is not None:
        given["berth_id"] = args.berth
    for key in ("lifecycle", "heartbeat_s", "notes"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    if not given:
        return fail(args, Exit.USAGE, "nothing to change",
                    "give --berth, --unbind, --lifecycle, --heartbeat-s or --notes")  # fmt: skip
    try:
        body = DevicePatch.model_validate(given)
    except ValidationError as exc:
        return _invalid(exc, args)
    return _change(args, "set", body)


def _camera(args: argparse.Namespace, rotate: bool) -> int:
    """Register a plate camera, or give it a new secret; prints its push path once."""
    from pydantic import ValidationError

    from gateway.api.models import CameraCreate

    body = None
    if not rotate:
        try:
            body = CameraCreate(
                id=args.id,
                vendor=args.vendor,
                site_id=args.site,
                lane_id=args.lane,
                direction=args.direction,
                notes=args.notes,
            )
        except ValidationError as exc:
            return _invalid(exc, args)
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.api.devices import camera_credentials
        from gateway.directory.registry import Registry, RegistryError

        registry = Registry(sessions)
        try:
            if body is None:
                row, secret = await registry.rotate_camera_secret(
                    args.id, now_utc(), actor=cli_actor(args)
                )
            else:
                row, secret = await registry.provision_camera(
                    body.id,
                    body.vendor,
                    body.site_id,
                    now_utc(),
                    lane_id=body.lane_id,
                    direction=body.direction,
                    actor=cli_actor(args),
                    notes=body.notes,
                )
        except RegistryError as exc:
            return refused(args, exc.status, exc.message, "citygate devices list")
        print(camera_credentials(row, secret).model_dump_json())
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_devices_add_camera(args: argparse.Namespace) -> int:
    return _camera(args, rotate=False)


def cmd_devices_camera_secret(args: argparse.Namespace) -> int:
    return _camera(args, rotate=True)


def cmd_devices_lifecycle(args: argparse.Namespace) -> int:
    """Move any kind of device through its lifecycle (``gateway.services.lifecycle.move``);
    ``--json`` prints what ``POST /api/v1/devices/{id}/lifecycle`` answers."""
    from gateway.directory.devices import Lifecycle
    from gateway.directory.lifecycle import LifeKind
    from gateway.services import lifecycle

    settings = settings_for(args)
    out: list[dict[str, Any]] = []

    async def work(sessions: Any) -> int:
        kind = None if args.kind is None else LifeKind(args.kind)
        moved = await lifecycle.move(
            sessions, args.device, Lifecycle(args.state), now_utc(), kind=kind,
            actor=cli_actor(args), reason=args.reason,
        )  # fmt: skip
        out.append(moved)
        return 0

    try:
        asyncio.run(with_db(settings, work, town=True))
    except lifecycle.NoSuchDevice as exc:
        return fail(args, Exit.NOT_FOUND, str(exc), code="no_device")
    except lifecycle.AmbiguousDevice as exc:
        return fail(args, Exit.USAGE, str(exc), "say which with --kind", "ambiguous_device")
    except lifecycle.Refused as exc:  # its message says what to do instead
        return fail(args, Exit.REFUSED, str(exc), code="refused_transition")
    result = out[0]
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif result["changed"]:
        print(f"{result['kind']} {result['device_id']}: {result['from']} -> {result['to']}")
    else:
        print(f"{result['kind']} {result['device_id']}: already {result['to']}")
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    dev = sub.add_parser(
        "devices", help="the device registry (berth sensors, cameras; lifecycle of every kind)"
    ).add_subparsers(dest="devices_command", required=True)
    ls = with_config(dev.add_parser("list", help="devices, as the API lists them"))
    ls.add_argument("--kind", default=None)
    ls.add_argument("--site", default=None)
    ls.add_argument("--lifecycle", default=None)
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(func=cmd_devices_list)
    add = with_config(dev.add_parser("add", help="provision a berth sensor (optionally bound)"))
    add.add_argument("dev_eui", help="16 hex digits")
    add.add_argument("--model", required=True, help="codec, e.g. nwave-nps405")
    add.add_argument("--berth", default=None, help="bind it to this berth")
    add.add_argument("--heartbeat-s", type=int, default=None)
    add.add_argument("--notes", default="")
    add.set_defaults(func=cmd_devices_add)
    st = with_config(dev.add_parser("set", help="bind/unbind, lifecycle, heartbeat, notes"))
    st.add_argument("id")
    where = st.add_mutually_exclusive_group()
    where.add_argument("--berth", default=None, help="bind to this berth")
    where.add_argument("--unbind", action="store_true", help="free its berth")
    st.add_argument(
        "--lifecycle", choices=["provisioned", "active", "maintenance", "retired"], default=None
    )
    st.add_argument("--heartbeat-s", type=int, default=None)
    st.add_argument("--notes", default=None)
    st.set_defaults(func=cmd_devices_set)
    lc = with_config(
        dev.add_parser(
            "lifecycle",
            help="move a device of any kind through its lifecycle",
            description="Moves a berth sensor, plate camera, charger, body cam, drone, or a "
            "lane's gate controller (by the lane's id): commissioned -> active, active <-> "
            "maintenance, any -> retired (final); provisioned -> commissioned is the "
            "commissioning checks' (citygate commission). Exit codes: 0 moved (or already "
            "there), 2 bad usage or an id several kinds share, 3 no such device, 4 the "
            "lifecycle refuses the move.",
        )
    )
    lc.add_argument("device", help="the device's id (a gate controller: its lane's id)")
    lc.add_argument(
        "state", choices=["provisioned", "commissioned", "active", "maintenance", "retired"]
    )
    lc.add_argument("--reason", default="", help="why (kept in the audit log)")
    lc.add_argument(
        "--kind",
        choices=["sensor", "camera", "charger", "bodycam", "drone", "gate"],
        default=None,
        help="only look for a device of this kind",
    )
    lc.add_argument("--json", action="store_true", help="one JSON object (the API's answer)")
    lc.set_defaults(func=cmd_devices_lifecycle)
    cam = with_config(
        dev.add_parser("add-camera", help="register a plate camera; prints its push URL once")
    )
    cam.add_argument("id", help="camera id: lower-case letters, digits, . _ -")
    cam.add_argument("--vendor", required=True, choices=["hikvision", "vzenith", "dahua"])
    cam.add_argument("--site", required=True, help="the car park it watches")
    cam.add_argument("--lane", default=None, help="its lane id")
    cam.add_argument("--direction", choices=["in", "out"], default=None, help="its lane's way")
    cam.add_argument("--notes", default="")
    cam.set_defaults(func=cmd_devices_add_camera)
    rot = with_config(
        dev.add_parser("camera-secret", help="a new push URL secret for a camera (printed once)")
    )
    rot.add_argument("id")
    rot.set_defaults(func=cmd_devices_camera_secret)
    add_replace(dev, with_config)
