"""The citygate command line as a technician or admin uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.directory.town import load_town


def cli(*args: str, db: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CITYGATE_DATABASE__URL": f'"sqlite+aiosqlite:///{db}"'}
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        cwd=db.parent,  # no stray config file found by the search order
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res


@pytest.mark.slow
def test_token_lifecycle(tmp_path: Path) -> None:
    db = tmp_path / "cg.db"
    created = cli("token", "create", "--role", "technician", "--label", "van 3", db=db)
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cg_")  # the token alone on stdout
    token = lines[0]
    listed = cli("token", "list", db=db).stdout
    token_id = token.split("_")[1]
    assert token_id in listed and "technician" in listed and "van 3" in listed
    assert token.split("_", 2)[2] not in listed  # never the secret
    assert cli("token", "revoke", token_id, db=db).returncode == 0
    assert "revoked" in cli("token", "list", db=db).stdout
    missing = cli("token", "revoke", "nope", db=db, check=False)
    assert missing.returncode == 1 and "no token" in missing.stderr
    bad_role = cli("token", "create", "--role", "mayor", db=db, check=False)
    assert bad_role.returncode == 2


@pytest.mark.slow
def test_town_import_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "cg.db"
    src = Path(__file__).parent.parent / "gateway" / "data" / "sample_town.toml"
    first = json.loads(cli("town", "import", str(src), db=db).stdout)
    town = load_town(None)
    assert first["created"]["sites"] == len(town.sites)
    second = json.loads(cli("town", "import", str(src), db=db).stdout)
    assert second["created"] == {} and second["updated"] == {}
    broken = tmp_path / "broken.toml"
    broken.write_text(src.read_text("utf-8").replace('kind = "on_street"', 'kind = "plaza"', 1))
    res = cli("town", "import", str(broken), db=db, check=False)
    assert res.returncode == 2
    assert "sites" in res.stderr and "kind" in res.stderr


def test_config_keys_lists_every_section() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "keys"],
        capture_output=True,
        text=True,
        check=True,
    )
    for section in ("[api]", "[database]", "[mqtt]", "[town]"):
        assert section in res.stdout
    assert "shared_group" in res.stdout and "(secret, env only)" in res.stdout


@pytest.mark.slow
def test_chargers_add_rotate_and_health(tmp_path: Path) -> None:
    """A technician registers a charger and gets its password once; rotating it replaces it;
    the health table lists the fleet worst first."""
    import asyncio

    from gateway.directory.chargers import check_password
    from gateway.infra.storage.db import create_engine, sessionmaker_for
    from gateway.infra.storage.schema import ChargerRow

    db = tmp_path / "cg.db"
    added = cli("chargers", "add", "CP-NEW-01", "--site", "cp-zhening", "--json", db=db)
    body = json.loads(added.stdout)
    assert body["id"] == "CP-NEW-01" and len(body["password"]) >= 16
    again = cli("chargers", "add", "CP-NEW-01", "--site", "cp-zhening", db=db, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
    rotated = cli("chargers", "set-password", "CP-NEW-01", db=db).stdout.strip()
    assert rotated != body["password"]

    async def verdicts() -> tuple[str, str, str | None]:
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        try:
            async with sessionmaker_for(engine)() as s:
                row = await s.get(ChargerRow, "CP-NEW-01")
                return (
                    check_password(row, rotated),
                    check_password(row, body["password"]),
                    None if row is None else row.site_id,
                )
        finally:
            await engine.dispose()

    assert asyncio.run(verdicts()) == ("ok", "bad_password", "cp-zhening")
    assert body["password"] not in (tmp_path / "cg.db").read_bytes().decode("latin-1")
    missing = cli("chargers", "set-password", "NOPE", db=db, check=False)
    assert missing.returncode == 2 and "no charger" in missing.stderr

    table = cli("chargers", "health", db=db).stdout.splitlines()
    assert table[0].startswith("57 chargers: offline 57")
    assert table[1].split()[:3] == ["id", "state", "place"]
    health = json.loads(cli("chargers", "health", "--json", db=db).stdout)
    assert health["counts"]["offline"] == 57 and len(health["chargers"]) == 57


@pytest.mark.slow
def test_devices_add_camera_and_rotate_its_secret(tmp_path: Path) -> None:
    db = tmp_path / "cg.db"
    out = json.loads(
        cli(
            "devices",
            "add-camera",
            "cam-east-in",
            "--vendor",
            "vzenith",
            "--site",
            "cp-shiminting",
            "--direction",
            "in",
            db=db,
        ).stdout
    )
    assert out["push_path"] == f"/cameras/cam-east-in/{out['secret']}/vzenith"
    assert out["device"]["kind"] == "camera" and out["device"]["direction"] == "in"
    listed = cli("devices", "list", "--kind", "camera", "--json", db=db).stdout
    assert "cam-east-in" in listed and out["secret"] not in listed  # never the secret
    again = json.loads(cli("devices", "camera-secret", "cam-east-in", db=db).stdout)
    assert again["secret"] != out["secret"]
    taken = cli(
        "devices",
        "add-camera",
        "cam-east-in",
        "--vendor",
        "dahua",
        "--site",
        "cp-shiminting",
        db=db,
        check=False,
    )
    assert taken.returncode == 2 and "already exists" in taken.stderr
    nowhere = cli(
        "devices",
        "add-camera",
        "cam-x",
        "--vendor",
        "dahua",
        "--site",
        "cp-none",
        db=db,
        check=False,
    )
    assert nowhere.returncode == 2 and "no site" in nowhere.stderr
