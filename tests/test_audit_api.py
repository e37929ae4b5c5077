"""``GET /api/v1/audit`` and ``citygate audit`` on both backends: technicians' API changes are
logged under their token, an admin sees every entry, a technician their own, other roles
none; secrets handed out in answers never appear; the CLI prints what the API answers."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.api.app import create_app
from gateway.api.state import AppState
from gateway.directory.tokens import Role, create_token

CAM = "62072500081389990002"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.fromtimestamp(int(time.time()), UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    http: httpx.AsyncClient
    state: AppState
    tokens: dict[str, str]
    ids: dict[str, str]
    config: Path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def audit(self, who: str, **params: Any) -> Any:
        r = await self.http.get("/api/v1/audit", params=params, headers=self.auth(who))
        assert r.status_code == 200, r.text
        return r.json()


@pytest_asyncio.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    from gateway.config import Settings
    from gateway.wiring import build_services

    clock = Clock()
    spool = tmp_path / "spool"
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "telemetry": {"spool_dir": str(spool)}}
    )
    config = tmp_path / "citygate.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[telemetry]\nspool_dir = "{spool}"\n', "utf-8"
    )
    services = await build_services(settings, clock)
    state = AppState.of(services)
    tokens, ids = {}, {}
    async with services.sessions.begin() as s:
        for who, role, label in (
            ("admin", Role.ADMIN, "bureau admin"),
            ("van3", Role.TECHNICIAN, "van 3"),
            ("van7", Role.TECHNICIAN, "van 7"),
            ("inspector", Role.INSPECTOR, "inspector"),
            ("operator", Role.OPERATOR, "operator"),
        ):
            info, tokens[who] = await create_token(s, role, clock(), label)
            ids[who] = info.id
    transport = httpx.ASGITransport(app=create_app(state))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield Api(http, state, tokens, ids, config)
    finally:
        await services.close()


async def van3_provisions(api: Api) -> set[str]:
    """A technician's day through the API; returns the secrets the answers handed out."""
    h = api.auth("van3")
    site = next(iter(api.state.sites))
    out: set[str] = set()

    async def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = await api.http.request(method, path, json=body, headers=h)
        assert r.status_code == status, r.text
        return r.json()

    await call("POST", "/api/v1/devices", {"dev_eui": "A1B2C3D4E5F60009", "model": "nwave-nps405"},
               201)  # fmt: skip
    await call("PATCH", "/api/v1/devices/a1b2c3d4e5f60009", {"notes": "pole 4"})
    cam = await call("POST", "/api/v1/devices/cameras",
                     {"id": "cam-api-1", "vendor": "vzenith", "site_id": site}, 201)  # fmt: skip
    out.add(cam["secret"])
    out.add((await call("POST", "/api/v1/devices/cam-api-1/secret"))["secret"])
    charger = await call("POST", "/api/v1/chargers", {"id": "APIAUD1", "site_id": site}, 201)
    out.add(charger["password"])
    out.add((await call("POST", "/api/v1/chargers/APIAUD1/password"))["password"])
    await call("PATCH", "/api/v1/chargers/APIAUD1", {"place": "north gate"})
    out.add((await call("POST", "/api/v1/devices/bodycams", {"id": CAM}, 201))["password"])
    pw = await call("POST", f"/api/v1/devices/bodycams/{CAM}/password", {"password": "on-the-c4m"})
    out.add(pw["password"])
    return out


VAN3 = [
    ("bodycam", CAM, "password"),
    ("bodycam", CAM, "add"),
    ("charger", "APIAUD1", "update"),
    ("charger", "APIAUD1", "password"),
    ("charger", "APIAUD1", "add"),
    ("camera", "cam-api-1", "secret"),
    ("camera", "cam-api-1", "provision"),
    ("device", "a1b2c3d4e5f60009", "update"),
    ("device", "a1b2c3d4e5f60009", "provision"),
]


async def test_roles_own_entries_and_secrets(api: Api) -> None:
    secrets = await van3_provisions(api)
    r = await api.http.post(
        "/api/v1/devices",
        json={"dev_eui": "A1B2C3D4E5F6000A", "model": "nwave-nps405"},
        headers=api.auth("van7"),
    )
    assert r.status_code == 201

    mine = (await api.audit("van3"))["entries"]
    assert [(e["kind"], e["key"], e["action"]) for e in mine] == VAN3
    for e in mine:
        assert (e["actor"], e["actor_token_id"], e["role"], e["source"]) == (
            "van 3", api.ids["van3"], "technician", "api"
        )  # fmt: skip
    assert mine[-1]["before"] is None and mine[-1]["after"]["lifecycle"] == "provisioned"
    assert mine[-2]["before"]["notes"] == "" and mine[-2]["after"]["notes"] == "pole 4"
    assert len({e["request_id"] for e in mine}) == len(mine)  # one request each

    theirs = (await api.audit("van7"))["entries"]
    assert [(e["actor"], e["key"]) for e in theirs] == [("van 7", "a1b2c3d4e5f6000a")]
    # a technician's filters only narrow their own entries
    assert (await api.audit("van3", actor="van 7"))["entries"] == []

    everything = (await api.audit("admin", limit=1000))["entries"]
    actors = {e["actor"] for e in everything}
    assert {"van 3", "van 7", "system"} <= actors  # system: the town and documents at start
    assert {e["source"] for e in everything if e["actor"] == "system"} == {"startup", "system"}
    tokens = [e for e in everything if e["kind"] == "token"]
    assert len(tokens) == 5 and all("token_hash" not in e["after"] for e in tokens)

    for who in ("inspector", "operator"):
        r = await api.http.get("/api/v1/audit", headers=api.auth(who))
        assert r.status_code == 403 and r.json()["code"] == "wrong_role"
    assert (await api.http.get("/api/v1/audit")).status_code == 401

    text = json.dumps(everything) + json.dumps(mine)
    for secret in secrets | set(api.tokens.values()):
        assert secret not in text
    assert '"password_hash": "[redacted]"' in text and '"ha1": "[redacted]"' in text


async def test_filters_and_refusals(api: Api) -> None:
    await van3_provisions(api)
    got = await api.audit("admin", kind="charger", key="APIAUD1")
    assert [e["action"] for e in got["entries"]] == ["update", "password", "add"]
    assert (await api.audit("admin", actor="van 3"))["entries"] == (await api.audit("van3"))[
        "entries"
    ]
    last = (await api.audit("van3", limit=1))["entries"][0]
    assert (await api.audit("van3", since=last["at"]))["entries"][0] == last
    assert (await api.audit("van3", until=last["at"], kind="bodycam"))["entries"] == []
    pages, cursor = [], None
    while True:
        page = await api.audit("van3", limit=4, **({"cursor": cursor} if cursor else {}))
        pages.append(page["entries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [e for p in pages for e in p] == (await api.audit("van3"))["entries"]
    for bad in ({"limit": 0}, {"limit": 1001}, {"since": "yesterday"}, {"cursor": -1},
                {"kind": "x" * 17}, {"until": "0.5"}, {"since": "2026-12-03T08:00:00"},
                {"since": "0001-01-01T00:00:00+01:00"}, {"actor": "a\nb"},
                {"until": "9999-12-31T23:59:59-14:00"}):  # fmt: skip
        r = await api.http.get("/api/v1/audit", params=bad, headers=api.auth("admin"))
        assert r.status_code == 422, bad
    r = await api.http.get("/api/v1/audit", params={"key": "\x00"}, headers=api.auth("admin"))
    assert r.status_code == 422 and r.json()["code"] == "nul_character"  # before any route
    r = await api.http.get("/api/v1/audit", params={"key": "栏杆 🚗"}, headers=api.auth("admin"))
    assert r.status_code == 200 and r.json()["entries"] == []
    spec = (await api.http.get("/openapi.json")).json()
    op = spec["paths"]["/api/v1/audit"]["get"]
    assert {"401", "403", "422"} <= set(op["responses"])


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow  # CLI processes: a few seconds
async def test_cli_prints_what_the_api_answers(api: Api) -> None:
    await van3_provisions(api)
    cfg = str(api.config)
    rc, token, err = await cli(api.config, "--as", "van 9", "token", "create", "--config", cfg,
                               "--role", "inspector", "--label", "for the desk")  # fmt: skip
    assert rc == 0, err
    queries = ({}, {"kind": "charger"}, {"actor": "van 3", "limit": 3})
    runs = await asyncio.gather(  # read-only: side by side, they take the time of one
        *(cli(api.config, "audit", "--config", cfg, "--json",
              *(f"--{k}={v}" for k, v in params.items())) for params in queries),
        cli(api.config, "audit", "--config", cfg, "--kind", "charger"),
        cli(api.config, "audit", "--config", cfg, "--limit", "5000"),
    )  # fmt: skip
    for params, (rc, out, err) in zip(queries, runs, strict=False):
        assert rc == 0, err
        assert json.loads(out) == await api.audit("admin", **params)
    who = f"van 9 (cli:{getpass.getuser()})"
    made = (await api.audit("admin", kind="token", actor=who))["entries"]
    assert len(made) == 1 and made[0]["source"] == "cli" and made[0]["role"] == "cli"
    assert made[0]["after"]["label"] == "for the desk" and token.strip() not in json.dumps(made)

    rc, out, err = runs[3]
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["at", "actor", "source", "kind", "key", "action", "changed"]
    assert "place" in lines[1] and "van 3" in lines[1] and "created" in lines[3]
    rc, _, err = runs[4]
    assert rc == 2 and "1..1000" in err
