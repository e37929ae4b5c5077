"""``citygate chargers``: register, move and retire chargers, rotate passwords, the fleet's
health. Registry changes go through the change feed: running gateways follow them live."""

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
    print_json,
    print_password,
    print_table,
    refused,
    settings_for,
    with_db,
)

LISTING = "citygate chargers health"
LIFECYCLE_HINT = "the moves of the device lifecycle: docs/lifecycle.md"


def cmd_chargers_add(args: argparse.Namespace) -> int:
    """Register a charger and print its OCPP password once (the same checks as the API)."""
    from pydantic import ValidationError

    from gateway.directory.chargers import ChargerCreate

    settings = settings_for(args)
    try:
        body = ChargerCreate(
            id=args.id,
            site_id=args.site,
            place=args.place,
            lat=args.lat,
            lon=args.lon,
            vendor=args.vendor,
            model=args.model,
            current=args.current,
            power_kw=args.power_kw,
            connectors=args.connectors,
        )
    except ValidationError as exc:
        return invalid(args, "charger", exc)

    async def work(sessions: Any) -> int:
        from gateway.directory.chargers import ChargerError, add_charger, charger_at

        rest = body.model_dump(exclude={"id", "site_id", "place", "lat", "lon"})
        try:
            async with sessions.begin() as session:
                new = await charger_at(
                    session, body.id, body.site_id, body.place, body.lat, body.lon, **rest
                )
                password = await add_charger(session, new, now_utc(), actor=cli_actor(args))
        except ChargerError as exc:
            return refused(args, exc.status, str(exc), LISTING)
        print_password(args, password)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_chargers_set(args: argparse.Namespace) -> int:
    """Move a charger, or move it in the device lifecycle (live on every gateway); a move the
    lifecycle refuses (a retired charger stays retired) changes nothing and exits 4."""
    from pydantic import ValidationError

    from gateway.directory.chargers import ChargerPatch

    settings = settings_for(args)
    given: dict[str, Any] = {
        k: v
        for k, v in (("place", args.place), ("lat", args.lat), ("lon", args.lon))
        if v is not None
    }
    if args.site is not None:
        given["site_id"] = args.site or None  # --site "" takes it out of any car park
    if args.lifecycle is not None:
        given["lifecycle"] = args.lifecycle
    if not given:
        return fail(args, Exit.USAGE, "nothing to change",
                    "give --site, --place, --lat, --lon or --lifecycle")  # fmt: skip
    try:
        patch = ChargerPatch.model_validate(given)
    except ValidationError as exc:
        return invalid(args, "charger", exc)

    async def work(sessions: Any) -> int:
        from gateway.directory.chargers import ChargerError, LifecycleRefused, update_charger

        try:
            async with sessions.begin() as session:
                row = await update_charger(
                    session,
                    args.id,
                    patch.model_dump(include=patch.model_fields_set),
                    now_utc(),
                    actor=cli_actor(args),
                )
                where = row.site_id or row.place
        except LifecycleRefused as exc:
            return fail(args, Exit.REFUSED, str(exc), LIFECYCLE_HINT, "refused_transition")
        except ChargerError as exc:
            return refused(args, exc.status, str(exc), LISTING)
        if args.json:
            print_json({"id": args.id, "lifecycle": row.lifecycle, "site_id": row.site_id,
                        "place": row.place})  # fmt: skip
        print(f"charger {args.id}: {row.lifecycle}, at {where}", file=sys.stderr)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_chargers_set_password(args: argparse.Namespace) -> int:
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.chargers import ChargerError, set_password

        try:
            async with sessions.begin() as session:
                password = await set_password(session, args.id, now_utc(), actor=cli_actor(args))
        except ChargerError as exc:
            return refused(args, exc.status, str(exc), LISTING)
        print_password(args, password)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_chargers_health(args: argparse.Namespace) -> int:
    """The fleet as the running gateway sees it, worst first: a table a person can read, or
    (``--json``) exactly what ``GET /api/v1/chargers`` returns. Both come from the same state
    (the database the recorder keeps) through the same function (``fleet_view``)."""
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from charging.tariff_file import load_charging_tariffs, load_sample_charging_tariffs
        from gateway.directory.town import configured_zone
        from gateway.infra.bus import EventBus
        from gateway.metrics import Metrics
        from gateway.services.charging.backend import ChargingRuntime
        from gateway.services.charging.views import fleet_view

        o = settings.ocpp
        zone = configured_zone(settings.town)
        tariffs = (
            load_sample_charging_tariffs(zone)
            if o.tariff_file is None
            else load_charging_tariffs(o.tariff_file, zone)
        )
        metrics = Metrics()
        rt = ChargingRuntime(o, sessions, EventBus(metrics), metrics, now_utc, tariffs, zone)
        await rt.load(restart=False)  # a reader: the gateway's sockets are not ours to close
        now = now_utc()
        view = fleet_view(rt, now)
        if args.json:
            print(json.dumps(view, ensure_ascii=False, indent=2))
            return 0
        rows = []
        for line in view["chargers"]:
            avail = rt.book.availability(line["id"], now)
            since = line["since"]
            rows.append(
                {
                    **line,
                    "place": line["place"] or "",
                    "since": since[:16] if since else "",
                    "avail_24h": "" if avail.day is None else f"{avail.day:.0%}",
                    "avail_7d": "" if avail.week is None else f"{avail.week:.0%}",
                }
            )
        counts_line = ", ".join(f"{k} {v}" for k, v in view["counts"].items() if v)
        print(f"{len(rows)} chargers: {counts_line or 'none'}")
        cols = ["id", "state", "place", "since", "avail_24h", "avail_7d", "reason", "lifecycle"]
        print_table(cols, [[str(r[c]) for c in cols] for r in rows])
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    ch = sub.add_parser("chargers", help="EV chargers (OCPP)").add_subparsers(
        dest="chargers_command", required=True
    )
    cadd = with_config(ch.add_parser("add", help="register a charger; prints its password once"))
    cadd.add_argument("id", help="OCPP charge point id (1-48 characters)")
    cadd.add_argument("--site", default=None, help="the car park it stands in")
    cadd.add_argument("--place", default=None, help="where drivers find it (default: the site)")
    cadd.add_argument("--lat", type=float, default=None)
    cadd.add_argument("--lon", type=float, default=None)
    cadd.add_argument("--vendor", default="unknown")
    cadd.add_argument("--model", default="unknown")
    cadd.add_argument("--current", choices=["AC", "DC"], default="AC")
    cadd.add_argument("--power-kw", type=float, default=7.0)
    cadd.add_argument("--connectors", type=int, default=1)
    cadd.add_argument("--json", action="store_true", help='print {"id", "password"}')
    cadd.set_defaults(func=cmd_chargers_add)
    cpw = with_config(ch.add_parser("set-password", help="rotate a charger's OCPP password"))
    cpw.add_argument("id")
    cpw.add_argument("--json", action="store_true", help='print {"id", "password"}')
    cpw.set_defaults(func=cmd_chargers_set_password)
    cset = with_config(
        ch.add_parser("set", help="move a charger, or move it in the device lifecycle")
    )
    cset.add_argument("id")
    cset.add_argument("--site", default=None, help='the car park it now stands in ("": none)')
    cset.add_argument("--place", default=None)
    cset.add_argument("--lat", type=float, default=None)
    cset.add_argument("--lon", type=float, default=None)
    cset.add_argument(
        "--lifecycle",
        choices=["provisioned", "commissioned", "active", "maintenance", "retired"],
        default=None,
        help="an operator's lifecycle move (docs/lifecycle.md); retired is final: refused at "
        "the OCPP handshake, out of the fleet",
    )
    cset.set_defaults(func=cmd_chargers_set)
    chh = with_config(ch.add_parser("health", help="the fleet, worst first (a readable table)"))
    chh.add_argument("--json", action="store_true", help="JSON instead of a table")
    chh.set_defaults(func=cmd_chargers_health)
