"""The citygate command line as a technician or admin uses it: in process (``cli.main``), each
test on its own copy of a migrated database (``sqlite_template``), found as a user's command
finds it (``CITYGATE_DATABASE__URL``, run from the database's directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.directory.town import load_town
from tests.conftest import copy_sqlite


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Ran]


def make_cli(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("CITYGATE_DATABASE__URL", f'"sqlite+aiosqlite:///{db}"')
    monkeypatch.chdir(db.parent)  # no stray config file found by the search order
    capsys.readouterr()

    def cli(*args: str, check: bool = True) -> Ran:
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse's refusals
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        res = Ran(rc, out, err)
        if check:
            assert res.returncode == 0, res.stderr
        return res

    return cli


@pytest.fixture
def cli(
    sqlite_template: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """The CLI on a copy of the migrated database with the sample town imported."""
    db = copy_sqlite(sqlite_template["town"], tmp_path / "cg.db")
    return make_cli(db, monkeypatch, capsys)


def test_token_lifecycle(cli: Cli) -> None:
    created = cli("token", "create", "--role", "technician", "--label", "van 3")
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cg_")  # the token alone on stdout
    token = lines[0]
    listed = cli("token", "list").stdout
    token_id = token.split("_")[1]
    assert token_id in listed and "technician" in listed and "van 3" in listed
    assert token.split("_", 2)[2] not in listed  # never the secret
    assert cli("token", "revoke", token_id).returncode == 0
    assert "revoked" in cli("token", "list").stdout
    missing = cli("token", "revoke", "nope", check=False)
    assert missing.returncode == 3 and "no token" in missing.stderr  # not found
    bad_role = cli("token", "create", "--role", "mayor", check=False)
    assert bad_role.returncode == 2


def test_town_import_is_idempotent(
    sqlite_template: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = make_cli(copy_sqlite(sqlite_template["empty"], tmp_path / "cg.db"), monkeypatch, capsys)
    src = Path(__file__).parent.parent / "gateway" / "data" / "sample_town.toml"
    first = json.loads(cli("town", "import", str(src)).stdout)
    town = load_town(None)
    assert first["created"]["sites"] == len(town.sites)
    second = json.loads(cli("town", "import", str(src)).stdout)
    assert second["created"] == {} and second["updated"] == {}
    broken = tmp_path / "broken.toml"
    broken.write_text(src.read_text("utf-8").replace('kind = "on_street"', 'kind = "plaza"', 1))
    res = cli("town", "import", str(broken), check=False)
    assert res.returncode == 1  # read and refused: nothing imported
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


def test_chargers_add_rotate_and_health(cli: Cli, tmp_path: Path) -> None:
    """A technician registers a charger and gets its password once; rotating it replaces it;
    the health table lists the fleet worst first."""
    import asyncio

    from gateway.directory.chargers import check_password
    from gateway.infra.storage.db import create_engine, sessionmaker_for
    from gateway.infra.storage.schema import ChargerRow

    db = tmp_path / "cg.db"
    added = cli("chargers", "add", "CP-NEW-01", "--site", "cp-zhening", "--json")
    body = json.loads(added.stdout)
    assert body["id"] == "CP-NEW-01" and len(body["password"]) >= 16
    again = cli("chargers", "add", "CP-NEW-01", "--site", "cp-zhening", check=False)
    assert again.returncode == 4 and "already exists" in again.stderr  # refused
    rotated = cli("chargers", "set-password", "CP-NEW-01").stdout.strip()
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
    missing = cli("chargers", "set-password", "NOPE", check=False)
    assert missing.returncode == 3 and "no charger" in missing.stderr

    table = cli("chargers", "health").stdout.splitlines()
    assert table[0].startswith("57 chargers: offline 57")
    assert table[1].split()[:3] == ["id", "state", "place"]
    health = json.loads(cli("chargers", "health", "--json").stdout)
    assert health["counts"]["offline"] == 57 and len(health["chargers"]) == 57


def test_devices_add_camera_and_rotate_its_secret(cli: Cli) -> None:
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
        ).stdout
    )
    assert out["push_path"] == f"/cameras/cam-east-in/{out['secret']}/vzenith"
    assert out["device"]["kind"] == "camera" and out["device"]["direction"] == "in"
    listed = cli("devices", "list", "--kind", "camera", "--json").stdout
    assert "cam-east-in" in listed and out["secret"] not in listed  # never the secret
    again = json.loads(cli("devices", "camera-secret", "cam-east-in").stdout)
    assert again["secret"] != out["secret"]
    taken = cli(
        "devices",
        "add-camera",
        "cam-east-in",
        "--vendor",
        "dahua",
        "--site",
        "cp-shiminting",
        check=False,
    )
    assert taken.returncode == 4 and "already exists" in taken.stderr
    nowhere = cli(
        "devices",
        "add-camera",
        "cam-x",
        "--vendor",
        "dahua",
        "--site",
        "cp-none",
        check=False,
    )
    assert nowhere.returncode == 2 and "no site" in nowhere.stderr
