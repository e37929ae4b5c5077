"""The citygate command line as a technician or admin uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.town import load_town


def cli(*args: str, db: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CITYGATE_DATABASE__URL": f'"sqlite+aiosqlite:///{db}"'}
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
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
