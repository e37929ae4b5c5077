"""``citygate devices replace``: exit codes scripts can trust (docs/cli.md: 0 replaced, 2 bad
usage, 3 no such device, 4 refused), one JSON document with ``--json`` (errors too), the
message on stderr without it, and the CLI user as the audit log's actor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.cli import main
from gateway.directory.town import load_town
from gateway.infra.storage.db import create_engine, sessionmaker_for
from gateway.infra.storage.schema import AuditRow

TOWN = load_town(None)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}"
    monkeypatch.setenv("CITYGATE_DATABASE__URL", json.dumps(url))
    monkeypatch.chdir(tmp_path)  # no citygate.toml of the worktree's
    return url


def replace(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["devices", "replace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def audit_actors(url: str, key: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_engine(url)
        try:
            async with sessionmaker_for(engine)() as s:
                q = select(AuditRow.actor).where(AuditRow.key == key, AuditRow.action == "replace")
                return list((await s.execute(q)).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_exit_codes_json_and_messages(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old, other = TOWN.sensors[0], TOWN.sensors[1]
    code, out, err = replace(capsys, "x", "y", "--unit", "0")
    assert code == 2 and "unit" in err and out == ""
    code, out, err = replace(capsys, "ffffffffffffffff", "a1b2c3d4e5f60009", "--json")
    error = json.loads(out)["error"]  # with --json the error is the one document
    assert code == 3 and error["code"] == "no_device" and "no device" in error["message"]
    code, out, err = replace(capsys, old.dev_eui, other.dev_eui, "--json")
    error = json.loads(out)["error"]
    assert code == 4 and error["code"] == "new_bound"
    assert "free it there first" in error["message"]
    code, out, err = replace(capsys, old.dev_eui, "a1b2c3d4e5f60009")
    assert code == 2 and "give its model" in err and out == ""
    code, out, err = replace(
        capsys, old.dev_eui, "a1b2c3d4e5f60009", "--model", "nwave-nps405", "--json"
    )
    assert code == 0, err
    done = json.loads(out)  # one document
    assert done["place"]["berth_id"] == old.berth
    assert done["new"] == {"id": "a1b2c3d4e5f60009", "lifecycle": "provisioned", "created": True}
    assert all(a.startswith("cli:") for a in audit_actors(db, "a1b2c3d4e5f60009"))
    code, out, err = replace(capsys, old.dev_eui, "a1b2c3d4e5f6000a", "--model", "nwave-nps405")
    assert code == 4 and "retired already" in err


def test_a_charger_replacement_prints_the_new_password_once(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = TOWN.chargers[0]
    code, out, err = replace(capsys, old.id, f"{old.id}-B")
    assert code == 0, err
    assert f"charger {old.id} retired; {old.id}-B (registered now" in out
    assert "password: " in out and "(shown once)" in out
