"""``citygate`` command line: run, demo, simulate, config, town, token, tariff, cases, db."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.config import ConfigError, Settings, describe, load_settings
from gateway.directory.town import TownFileError
from gateway.errors import StartupError
from gateway.logs import setup_logging
from telemetry import SPOOL_FILE

log = logging.getLogger("citygate")


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = getattr(args, "config", None)
    return load_settings(path)


async def _with_db(
    settings: Settings, work: Callable[[Any], Awaitable[int]], town: bool = False
) -> int:
    """Run *work* with a migrated database (and, with *town*, the town imported if empty)."""
    from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for

    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
        sessions = sessionmaker_for(engine)
        if town:
            from gateway.supervisor import ensure_town

            await ensure_town(sessions, settings.town.file, now_utc())
        return await work(sessions)
    finally:
        await engine.dispose()


def _install_stop(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


# -- run / demo / simulate ---------------------------------------------------------------------
def _on_embedded_broker(settings: Settings, host: str, port: int, kind: str) -> dict[str, Any]:
    """Settings data pointed at the local broker (plain, anonymous; amqtt speaks 3.1.1 only)."""
    data = settings.model_dump()
    data["mqtt"].update(
        host=host,
        port=port,
        tls=False,
        username=None,
        password=None,
        protocol="5" if kind == "mosquitto" else "3.1.1",
    )
    return data


async def _run(settings: Settings) -> int:
    from gateway.demo.broker import embedded_broker
    from gateway.supervisor import Gateway

    if not settings.demo.embedded_broker:
        gw = Gateway(settings)
        _install_stop(gw.request_stop)
        await gw.run()
        return 0
    async with embedded_broker() as (host, port, kind):
        gw = Gateway(Settings.model_validate(_on_embedded_broker(settings, host, port, kind)))
        _install_stop(gw.request_stop)
        await gw.run()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(_settings(args)))


async def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.demo.broker import embedded_broker
    from gateway.directory.town import load_town
    from gateway.supervisor import Gateway, mqtt_params

    base = _settings(args)
    workdir = Path(args.workdir)
    async with embedded_broker() as (host, port, kind):
        data = _on_embedded_broker(base, host, port, kind)
        if base.database.url == Settings().database.url:
            data["database"]["url"] = f"sqlite+aiosqlite:///{workdir / 'citygate.db'}"
        if base.telemetry.spool_dir == Settings().telemetry.spool_dir:
            data["telemetry"]["spool_dir"] = workdir / "telemetry-spool"
        data["api"]["port"] = args.port
        if base.ocpp.port == Settings().ocpp.port:
            data["ocpp"]["port"] = 0  # any free port: printed below
        settings = Settings.model_validate(data)
        gw = Gateway(settings)
        town = load_town(settings.town.file)
        sim_stop = asyncio.Event()
        options = SimulatorOptions(speed=args.speed, max_rate=args.rate)

        async def simulate() -> None:
            await gw.started.wait()
            await run_simulator(
                mqtt_params(settings, "citygate-sim", clean=True), town, options, stop=sim_stop
            )

        async def chargers() -> None:
            """The town's chargers, simulated over OCPP (demo passwords set here)."""
            from gateway.demo.chargers import run_chargers
            from gateway.directory.chargers import set_password
            from gateway.infra.storage.db import sessionmaker_for

            await gw.started.wait()
            if gw.charging is None or gw.engine is None:
                return
            fleet = {}
            async with sessionmaker_for(gw.engine).begin() as session:
                for c in gw.charging.chargers.values():
                    fleet[c.id] = (await set_password(session, c.id, now_utc()), c.connectors)
            ocpp_url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
            await run_chargers(ocpp_url, fleet, sim_stop, speed=args.speed / 60)

        async def announce() -> None:
            await gw.started.wait()
            url = f"http://{settings.api.host}:{gw.api_port}"
            ocpp = f"ws://{settings.ocpp.host}:{gw.ocpp_port}/ocpp/{{id}}" if gw.charging else "off"
            print(
                f"\ncitygate demo is running ({kind} broker on {host}:{port}).\n"
                f"  vacancies: {url}/api/v1/sites\n  city map:  {url}/api/v1/map\n"
                f"  live:      {url}/api/v1/vacancies/stream\n"
                f"  chargers:  {url}/api/v1/charging/locations (OCPP: {ocpp})\n"
                f"  API docs:  {url}/docs\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
            if args.duration:
                await asyncio.sleep(args.duration)
                gw.request_stop()

        def stop() -> None:
            sim_stop.set()
            gw.request_stop()

        gw.extra_tasks += [simulate, chargers, announce]
        _install_stop(stop)
        await gw.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.broker import port_is_free

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.port and not port_is_free("127.0.0.1", args.port):
        print(f"port {args.port} is taken; the demo API takes a free port instead", file=sys.stderr)
        args.port = 0
    return asyncio.run(_demo(args))


async def _simulate(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.directory.town import load_town
    from gateway.supervisor import mqtt_params

    settings = _settings(args)
    town = load_town(settings.town.file)
    stop = asyncio.Event()
    _install_stop(stop.set)
    options = SimulatorOptions(speed=args.speed, max_rate=args.rate, seed=args.seed)
    stats = await run_simulator(
        mqtt_params(settings, f"citygate-sim-{os.getpid()}", clean=True),
        town,
        options,
        stop=stop,
    )
    print(json.dumps(dataclasses.asdict(stats), default=str))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate(args))


# -- config ------------------------------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    load_settings(args.file)
    print(f"{args.file}: OK")
    return 0


def cmd_config_keys(_: argparse.Namespace) -> int:
    section = ""
    for sect, key, default, doc in describe():
        if sect != section:
            print(f"\n[{sect}]")
            section = sect
        print(f"  {key} = {default}    # {doc}")
    return 0


# -- town --------------------------------------------------------------------------------------
def cmd_town_import(args: argparse.Namespace) -> int:
    from gateway.directory.town import load_town
    from gateway.directory.town_import import import_town

    settings = _settings(args)
    town = load_town(args.file)

    async def work(sessions: Any) -> int:
        async with sessions.begin() as session:
            report = await import_town(session, town, now_utc())
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return 0

    return asyncio.run(_with_db(settings, work))


# -- tokens ------------------------------------------------------------------------------------
def cmd_token_create(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import Role, create_token

    settings = _settings(args)

    async def work(sessions: Any) -> int:
        async with sessions.begin() as session:
            info, token = await create_token(session, Role(args.role), now_utc(), args.label)
        print(token)
        print(
            f"token {info.id} ({info.role.value}) created; it is shown only once", file=sys.stderr
        )
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import TokenError, revoke_token

    settings = _settings(args)

    async def work(sessions: Any) -> int:
        try:
            async with sessions.begin() as session:
                found = await revoke_token(session, args.id, now_utc())
        except TokenError:
            found = False
        if not found:
            print(f"no token {args.id!r}", file=sys.stderr)
            return 1
        print(
            f"token {args.id.split('_')[1] if args.id.startswith('cg_') else args.id} revoked",
            file=sys.stderr,
        )
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_token_list(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import list_tokens

    settings = _settings(args)

    async def work(sessions: Any) -> int:
        async with sessions() as session:
            for t in await list_tokens(session):
                state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
                print(
                    f"{t.id}  {t.role.value:<10}  {t.created_at:%Y-%m-%d %H:%M}  {state}  {t.label}"
                )
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_telemetry_status(args: argparse.Namespace) -> int:
    from telemetry.pipeline import read_status
    from telemetry.spool import read_stats

    settings = _settings(args)
    t = settings.telemetry
    path = t.spool_dir / SPOOL_FILE
    if not path.exists():
        print(
            f"no telemetry spool at {path} (the gateway has not run with this config yet)",
            file=sys.stderr,
        )
        return 1
    stats = read_stats(path)
    status = read_status(t.spool_dir)
    out = {
        "server": t.url or None,
        "mode": t.mode,
        "spooled_pending": stats.pending_points,
        "spool_bytes": stats.pending_bytes,
        "spool_limit_bytes": t.spool_max_bytes,
        "dropped": stats.dropped,
        "dead_lettered": stats.dead_lettered,
        "buffered": status.get("buffered"),
        "accepted": status.get("accepted"),
        "delivered": status.get("written"),
        "replayed": status.get("replayed"),
        "healthy": status.get("healthy"),
        "last_error": status.get("last_error") or None,
        "status_age_s": round(time.time() - float(status["at"]), 1)  # type: ignore[arg-type]
        if "at" in status
        else None,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for key, value in out.items():
            print(f"{key:>18}: {value}")
    return 0


def cmd_tariff_quote(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.directory.town import load_town
    from gateway.services.parking.quotes import QuoteRequest, load_book, make_quote

    settings = _settings(args)
    sites = {s.id: s for s in load_town(settings.town.file).sites}
    try:
        req = QuoteRequest(
            site_id=args.site,
            vehicle_class=args.vehicle,
            plate=args.plate,
            plate_colour=args.plate_colour,
            entry=args.entry,
            exit=args.exit,
        )
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "request"
            print(f"invalid quote request: {where}: {err['msg']}", file=sys.stderr)
        return 2
    site = sites.get(req.site_id)
    if site is None:
        print(f"unknown site {req.site_id!r}", file=sys.stderr)
        return 2
    try:
        out = make_quote(load_book(settings.tariffs.file), site, req)
    except ValueError as exc:
        print(f"cannot quote: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


def cmd_cases_list(args: argparse.Namespace) -> int:
    """The local mirror of case reports: what was raised, delivered, and how far it got."""
    settings = _settings(args)

    async def work(sessions: Any) -> int:
        from gateway.cases.outbox import list_cases

        async with sessions() as session:
            page = await list_cases(
                session,
                status=args.status,
                category=args.category,
                delivery=args.delivery,
                limit=args.limit,
            )
        rows = [
            {
                "id": r.id,
                "created_at": r.created_at.isoformat(),
                "observed_at": r.observed_at.isoformat(),
                "category": r.category,
                "rule_id": r.rule_id,
                "title": r.title,
                "place": r.berth_id
                or r.site_id
                or r.zone_id
                or (f"{r.lat:.5f},{r.lon:.5f}" if r.lat is not None and r.lon is not None else ""),
                "plate": r.plate,
                "prior_offences": r.prior_offences,
                "delivery": r.delivery_state,
                "attempts": r.attempts,
                "status": r.status,
                "remote_id": r.remote_id,
            }
            for r in page.cases
        ]
        if args.json:
            print(json.dumps({"cases": rows}, ensure_ascii=False, indent=2))
            return 0
        if not rows:
            print("no case reports")
            return 0
        cols = ["created_at", "category", "title", "place", "delivery", "status", "id"]
        _print_table(cols, [[str(r[c] or "") for c in cols] for r in rows])
        return 0

    return asyncio.run(_with_db(settings, work))


def cmd_chargers_add(args: argparse.Namespace) -> int:
    """Register a charger and print its OCPP password once."""
    settings = _settings(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.chargers import ChargerError, NewCharger, add_charger
        from gateway.infra.storage.schema import SiteRow

        async with sessions.begin() as session:
            site = await session.get(SiteRow, args.site) if args.site else None
            if args.site and site is None:
                print(f"unknown site {args.site!r}", file=sys.stderr)
                return 2
            place = args.place or (site.name if site else None)
            lat = args.lat if args.lat is not None else (site.lat if site else None)
            lon = args.lon if args.lon is not None else (site.lon if site else None)
            if place is None or lat is None or lon is None:
                print("without --site, give --place, --lat and --lon", file=sys.stderr)
                return 2
            new = NewCharger(
                id=args.id,
                site_id=args.site,
                place=place,
                lat=lat,
                lon=lon,
                vendor=args.vendor,
                model=args.model,
                current=args.current,
                power_kw=args.power_kw,
                connectors=args.connectors,
            )
            try:
                password = await add_charger(session, new, now_utc())
            except ChargerError as exc:
                print(str(exc), file=sys.stderr)
                return 2
        _print_password(args, password)
        return 0

    return asyncio.run(_with_db(settings, work, town=True))


def cmd_chargers_set_password(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.chargers import ChargerError, set_password

        try:
            async with sessions.begin() as session:
                password = await set_password(session, args.id, now_utc())
        except ChargerError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        _print_password(args, password)
        return 0

    return asyncio.run(_with_db(settings, work, town=True))


def cmd_chargers_health(args: argparse.Namespace) -> int:
    """The fleet as the database last knew it, worst first: a table a person can read."""
    settings = _settings(args)

    async def work(sessions: Any) -> int:
        from charging.tariff_file import load_charging_tariffs, load_sample_charging_tariffs
        from gateway.infra.bus import EventBus
        from gateway.metrics import Metrics
        from gateway.services.charging.runtime import ChargingRuntime

        o = settings.ocpp
        tariffs = (
            load_sample_charging_tariffs()
            if o.tariff_file is None
            else load_charging_tariffs(o.tariff_file)
        )
        metrics = Metrics()
        rt = ChargingRuntime(o, sessions, EventBus(metrics), metrics, now_utc, tariffs)
        await rt.load()
        now = now_utc()
        fleet = rt.book.fleet(now)
        rows = []
        for h in fleet.chargers:
            info = rt.chargers.get(h.charger_id)
            avail = rt.book.availability(h.charger_id, now)
            rows.append(
                {
                    "id": h.charger_id,
                    "state": h.state.value,
                    "place": info.place if info else "",
                    "since": h.since.isoformat(timespec="minutes") if h.since else "",
                    "avail_24h": "" if avail.day is None else f"{avail.day:.0%}",
                    "avail_7d": "" if avail.week is None else f"{avail.week:.0%}",
                    "reason": h.reason,
                }
            )
        if args.json:
            counts = {k.value: v for k, v in fleet.counts.items()}
            print(json.dumps({"counts": counts, "chargers": rows}, ensure_ascii=False, indent=2))
            return 0
        counts_line = ", ".join(f"{k.value} {v}" for k, v in fleet.counts.items() if v)
        print(f"{len(rows)} chargers: {counts_line or 'none'}")
        cols = ["id", "state", "place", "since", "avail_24h", "avail_7d", "reason"]
        _print_table(cols, [[str(r[c]) for c in cols] for r in rows])
        return 0

    return asyncio.run(_with_db(settings, work, town=True))


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _print_table(cols: list[str], table: list[list[str]]) -> None:
    widths = [max([_width(c), *(_width(t[i]) for t in table)]) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        cells = [v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)]
        return "  ".join(cells).rstrip()

    print(line(cols))
    for t in table:
        print(line(t))


def _print_password(args: argparse.Namespace, password: str) -> None:
    """The password goes to stdout once, alone (or as JSON): it is never stored in clear."""
    if args.json:
        print(json.dumps({"id": args.id, "password": password}))
    else:
        print(password)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(_: Any) -> int:
        print("database schema is current")
        return 0

    return asyncio.run(_with_db(settings, work))


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citygate", description=__doc__)
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument("--log-json", action="store_true", help="JSON log lines")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config",
            "-c",
            type=Path,
            default=None,
            help="TOML config file (env CITYGATE_<SECTION>__<KEY> overrides)",
        )
        return sp

    run = with_config(sub.add_parser("run", help="run the gateway"))
    run.set_defaults(func=cmd_run)

    demo = with_config(
        sub.add_parser("demo", help="gateway + local broker + simulator on embedded defaults")
    )
    demo.add_argument("--port", type=int, default=8080, help="API port (0 = any free port)")
    demo.add_argument("--workdir", default=".demo", help="where the demo keeps its database")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--rate", type=float, default=100.0, help="max simulated msgs/s")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after N s (0 = never)")
    demo.set_defaults(func=cmd_demo)

    sim = with_config(sub.add_parser("simulate", help="drive the town's sensors over MQTT"))
    sim.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    sim.add_argument("--rate", type=float, default=200.0, help="max messages per second")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=cmd_simulate)

    cfg = sub.add_parser("config", help="check configuration").add_subparsers(
        dest="config_command", required=True
    )
    check = cfg.add_parser("check", help="validate a config file (and the environment)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)
    cfg.add_parser("keys", help="list every key with default and meaning").set_defaults(
        func=cmd_config_keys
    )

    town = sub.add_parser("town", help="town data").add_subparsers(
        dest="town_command", required=True
    )
    imp = with_config(town.add_parser("import", help="load or update a town file"))
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_town_import)

    tok = sub.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = with_config(tok.add_parser("create", help="create a token; prints it alone"))
    create.add_argument(
        "--role",
        required=True,
        choices=["device", "payments", "technician", "inspector", "operator", "admin"],
    )
    create.add_argument("--label", default="", help="who or what it is for")
    create.set_defaults(func=cmd_token_create)
    rev = with_config(tok.add_parser("revoke", help="revoke a token by id (or the token)"))
    rev.add_argument("id")
    rev.set_defaults(func=cmd_token_revoke)
    with_config(tok.add_parser("list", help="list tokens (never their secrets)")).set_defaults(
        func=cmd_token_list
    )

    tel = sub.add_parser("telemetry", help="telemetry to InfluxDB").add_subparsers(
        dest="telemetry_command", required=True
    )
    tstat = with_config(tel.add_parser("status", help="pending, spooled, dead-lettered, delivered"))
    tstat.add_argument("--json", action="store_true", help="one JSON object")
    tstat.set_defaults(func=cmd_telemetry_status)

    tar = sub.add_parser("tariff", help="posted tariffs").add_subparsers(
        dest="tariff_command", required=True
    )
    tq = with_config(tar.add_parser("quote", help="itemised fee for a stay (JSON, as the API)"))
    tq.add_argument("--site", required=True)
    tq.add_argument("--vehicle", choices=["small", "large", "new_energy"], default=None)
    tq.add_argument("--plate", default=None, help="instead of --vehicle (粤BD12345: new energy)")
    tq.add_argument(
        "--plate-colour",
        choices=["blue", "yellow", "green", "yellow_green", "white", "black"],
        default=None,
        help="with --plate: yellow is large, green new energy",
    )
    tq.add_argument("--entry", required=True, help="ISO 8601 with offset")
    tq.add_argument("--exit", required=True, help="ISO 8601 with offset")
    tq.set_defaults(func=cmd_tariff_quote)

    cases = sub.add_parser("cases", help="case reports to the case system").add_subparsers(
        dest="cases_command", required=True
    )
    cl = with_config(cases.add_parser("list", help="raised reports, delivery and case status"))
    cl.add_argument("--status", default=None, help="reported, registered, ... evaluated")
    cl.add_argument("--category", default=None, help="e.g. 0505")
    cl.add_argument("--delivery", choices=["pending", "delivered", "rejected"], default=None)
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true", help="JSON instead of a table")
    cl.set_defaults(func=cmd_cases_list)

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
    chh = with_config(ch.add_parser("health", help="the fleet, worst first (a readable table)"))
    chh.add_argument("--json", action="store_true", help="JSON instead of a table")
    chh.set_defaults(func=cmd_chargers_health)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    with_config(db.add_parser("upgrade", help="run migrations")).set_defaults(func=cmd_db_upgrade)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or "INFO"
    setup_logging(level.upper(), args.log_json)
    try:
        if hasattr(args, "config") or args.command != "config":
            # Honour [log] from the config file / environment where there is one.
            try:
                s = _settings(args)
                setup_logging(args.log_level or s.log.level, args.log_json or s.log.json_format)
            except ConfigError:
                pass  # reported properly by the command itself
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except TownFileError as exc:
        print(f"town error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
