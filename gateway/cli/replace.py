"""``citygate devices replace OLD NEW``: a failed device out, its replacement in, in one step.

The old device is retired and its place (a berth, a lane, a charger bay, an officer) moves to
the new one in one transaction, audited and in the change feed, so running gateways move the
binding within seconds. NEW may be provisioned already (e.g. by a bulk import) or be given
inline (``--model`` for a sensor, ``--vendor`` for a camera; a charger or body cam unknown to
the registry is registered with the old one's particulars and its password printed once). A
gate controller is named by its lane's id, NEW is the new controller's bus URL.
``--json`` prints exactly what ``POST /api/v1/devices/{old}/replace`` answers.

Exit codes (docs/cli.md): 0 replaced, 2 bad usage (an invalid NEW), 3 no such device, 4
refused (the message says what to do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from events import now_utc
from gateway.cli.common import Exit, WithConfig, cli_actor, fail, settings_for, with_db
from gateway.cli.exits import from_status


def cmd_devices_replace(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.directory.replace import Replaced, replace_device
    from gateway.directory.replace_rules import Refused, ReplaceRequest

    given = {
        k: getattr(args, k)
        for k in ("kind", "model", "vendor", "heartbeat_s", "unit")
        if getattr(args, k) is not None
    }
    try:
        req = ReplaceRequest(new=args.new, **given)
    except ValidationError as exc:
        text = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in exc.errors()
        )
        return fail(args, Exit.USAGE, f"invalid replacement: {text}",
                    "fix the value it names (`--help` gives the forms)", "invalid")  # fmt: skip
    settings = settings_for(args)
    done: list[Replaced] = []

    async def work(sessions: Any) -> int:
        done.append(
            await replace_device(
                sessions,
                args.old,
                req,
                now_utc(),
                realm=settings.bodycams.effective_realm,
                actor=cli_actor(args),
            )
        )
        return 0

    try:
        asyncio.run(with_db(settings, work, town=True))
    except Refused as exc:  # its message says what to do instead
        return fail(args, from_status(exc.status), exc.message, code=exc.code)
    out = done[0].as_dict()
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    place = ", ".join(f"{k} {v}" for k, v in out["place"].items() if v is not None)
    new = out["new"]
    print(
        f"{out['kind']} {out['old']['id']} retired; {new['id']} "
        f"({'registered now, ' if new['created'] else ''}{new['lifecycle'] or 'in service'}) "
        f"serves {place}"
    )
    for name, value in out.get("credentials", {}).items():
        print(f"{name}: {value}  (shown once)")
    return 0


def add_replace(dev: Any, with_config: WithConfig) -> None:
    """``devices replace`` (called by the devices group's ``register``)."""
    rp = with_config(
        dev.add_parser(
            "replace",
            help="replace a failed device: retire it and move its place to the new one",
            description="Retires OLD and moves its berth, lane, charger bay or officer to NEW "
            "in one transaction (audited, live on running gateways within seconds). A gate "
            "controller: OLD is its lane's id, NEW the new controller's bus URL. Exit codes: "
            "0 replaced, 2 bad usage, 3 no such device, 4 refused.",
        )
    )
    rp.add_argument("old", help="the failed device's id (a gate controller: its lane's id)")
    rp.add_argument("new", help="the new device's id (a gate controller: its bus URL)")
    rp.add_argument(
        "--kind",
        choices=["sensor", "camera", "gate", "charger", "bodycam"],
        default=None,
        help="refuse unless OLD is of this kind (needed when an id is of several kinds)",
    )
    rp.add_argument(
        "--model", default=None, help="new sensor's codec; gate's register map; charger's model"
    )
    rp.add_argument("--vendor", default=None, help="new camera's push format; charger's vendor")
    rp.add_argument("--heartbeat-s", type=int, default=None, help="new sensor's heartbeat")
    rp.add_argument("--unit", type=int, default=None, help="gate: the new Modbus unit")
    rp.add_argument("--json", action="store_true", help="one JSON object (the API's answer)")
    rp.set_defaults(func=cmd_devices_replace)
