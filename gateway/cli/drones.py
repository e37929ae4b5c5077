"""``citygate drones`` (every patrol drone) and ``citygate drones show ID`` (one, with its
patrol area and last commands): the API's own view function on the state the running service
writes, so ``--json`` is exactly ``GET /api/v1/drones`` / ``GET /api/v1/drones/{id}``.

The loudspeaker and return-home commands are the API's only: the CLI is a client of the
database, and the drone links run in the gateway (no CLI command reaches into a running one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from events import now_utc
from gateway.cli.common import Exit, WithConfig, fail, print_table, settings_for, with_db


def _view(args: argparse.Namespace, drone_id: str | None) -> Any:
    settings = settings_for(args)

    async def work(sessions: Any) -> Any:
        from gateway.services.drones.views import drones_view

        d = settings.drones
        async with sessions() as db:
            return await drones_view(
                db, now_utc(), d.presence_timeout_s, drone_id, d.recent_commands
            )

    out: list[Any] = []

    async def keep(sessions: Any) -> int:
        out.append(await work(sessions))
        return 0

    asyncio.run(with_db(settings, keep, town=True))
    return out[0]


def _battery(x: dict[str, Any]) -> str:
    b = x["battery_percent"]
    return "" if b is None else f"{b:.0f}%"


def _position(x: dict[str, Any]) -> str:
    p = x["position"]
    return "" if p is None else f"{p['lat']:.6f},{p['lon']:.6f}"


def cmd_drones(args: argparse.Namespace) -> int:
    view = _view(args, None)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return 0
    print(f"{view['total']} drones, {view['online']} online (positions {view['datum']})")
    cols = ["drone", "name", "kind", "lifecycle", "link", "flying", "battery", "position",
            "alerts"]  # fmt: skip
    rows = [
        [
            x["id"], x["name"], x["kind"], x["lifecycle"], x["link"],
            "" if x["flying"] is None else ("yes" if x["flying"] else "no"),
            _battery(x), _position(x), ",".join(x["alerts"]),
        ]
        for x in view["drones"]
    ]  # fmt: skip
    print_table(cols, rows)
    return 0


def cmd_drones_show(args: argparse.Namespace) -> int:
    view = _view(args, args.id)
    if not view["drones"]:
        return fail(args, Exit.NOT_FOUND, f"no drone {args.id!r}",
                    "`citygate drones` lists them")  # fmt: skip
    drone = {"at": view["at"], "datum": view["datum"], **view["drones"][0]}
    if args.json:
        print(json.dumps(drone, ensure_ascii=False, indent=2))
        return 0
    dock = drone["dock"]
    lines = [
        f"{drone['id']}  {drone['name']}  ({drone['kind']}, {drone['lifecycle']})",
        f"link {drone['link']}, last seen {drone['last_seen'] or 'never'}",
        f"flying {drone['flying']}, mode {drone['mode']}, battery {_battery(drone) or '?'}",
        f"position {_position(drone) or '?'} ({drone['datum']})",
        f"home {drone['home']['lat']:.6f},{drone['home']['lon']:.6f}",
        f"alerts {', '.join(drone['alerts']) or 'none'}",
    ]
    if dock is not None:
        lines.append(
            f"dock {dock['sn']}: link {dock['link']}, mode {dock['mode']}, "
            f"drone in dock {dock['drone_in_dock']}, charging {dock['drone_charging']}"
        )
    print("\n".join(lines))
    cols = ["requested_at", "command", "status", "attempts", "by", "detail"]
    rows = [
        [c["requested_at"][:19], c["kind"], c["status"], str(c["attempts"]), c["requested_by"],
         c["detail"][:60]]
        for c in drone["commands"]
    ]  # fmt: skip
    if rows:
        print()
        print_table(cols, rows)
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    dr = with_config(sub.add_parser("drones", help="the patrol drones: link, battery, position"))
    dr.add_argument("--json", action="store_true", help="exactly what GET /api/v1/drones returns")
    dr.set_defaults(func=cmd_drones)
    dsub = dr.add_subparsers(dest="drones_command")
    show = with_config(dsub.add_parser("show", help="one drone with its last commands"))
    show.add_argument("id", help="the drone's id (drone-1)")
    show.add_argument(
        "--json", action="store_true", help="exactly what GET /api/v1/drones/{id} returns"
    )
    show.set_defaults(func=cmd_drones_show)
