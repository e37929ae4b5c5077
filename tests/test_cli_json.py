"""The CLI's contract with scripts (docs/cli.md): every command but the documented exemptions
takes ``--json`` and prints one JSON document (errors too, as ``{"error": ...}``), the exit
codes of ``gateway.cli.exits.Exit`` for not found, usage, refused, an unreachable database and
a failed check, and the JSON is what the API answers for the same thing.

In process (``cli.main``) on a copy of one migrated database with the sample town imported
(made once per session): a command costs milliseconds, not a Python start and a migration."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import NO_JSON, add_json_everywhere, build_parser, commands, main
from gateway.cli.exits import Exit
from tests.conftest import copy_sqlite

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "cli.md"


# -- the parser --------------------------------------------------------------------------------
def test_every_command_but_the_exemptions_takes_json() -> None:
    found = commands(build_parser())
    assert len(found) > 35 and set(found) >= NO_JSON
    missing = [p for p, sp in found.items() if p not in NO_JSON and "--json" not in
               sp._option_string_actions]  # fmt: skip
    assert missing == []
    for path in NO_JSON:  # the exemptions really are without it (docs/cli.md says why)
        assert "--json" not in found[path]._option_string_actions, path
    text = DOCS.read_text("utf-8")
    for path in NO_JSON:
        assert f"`citygate {' '.join(path)}`" in text, path


def test_a_command_added_later_gets_json_too() -> None:
    """What the other groups' new commands (devices lifecycle, replace, ...) rely on."""
    from gateway.cli import CliParser

    p = CliParser(prog="citygate")
    sub = p.add_subparsers(dest="command").add_parser("things").add_subparsers(dest="x")
    sub.add_parser("list").set_defaults(func=lambda _: 0)
    add_json_everywhere(p)
    args = p.parse_args(["things", "list", "--json"])
    assert args.json is True and args.cli_path == "citygate things list"
    assert p.parse_args(["things", "list"]).json is False


def test_the_exit_codes_are_the_documented_ones() -> None:
    text = DOCS.read_text("utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| `(\w+)` \|", text, re.M))
    assert {int(k): v for k, v in rows.items()} == {int(e): e.name for e in Exit}
    assert "docs/cli.md" in (ROOT / "README.md").read_text("utf-8")


# -- one migrated database, copied per test ------------------------------------------------------
@pytest.fixture
def config(sqlite_template: dict[str, Path], tmp_path: Path) -> Path:
    """This test's own copy of the migrated database with the town, and a config naming it."""
    db = copy_sqlite(sqlite_template["town"], tmp_path / "cg.db")
    path = tmp_path / "citygate.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
        f'[telemetry]\nspool_dir = "{tmp_path / "spool"}"\n',
        "utf-8",
    )
    return path


def run(
    capsys: pytest.CaptureFixture[str], config: Path | None, *argv: str
) -> tuple[int, Any, str]:
    """Exit code, stdout parsed as one JSON document, stderr."""
    rc = main([*argv, *(["-c", str(config)] if config else []), "--json"])
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


READ_ONLY = [
    ("token", "list"), ("devices", "list"), ("chargers", "health"), ("bodycams", "list"),
    ("field",), ("drones",), ("cases", "list"), ("audit",), ("db", "upgrade"),
    ("config", "which"),
]  # fmt: skip


def test_read_only_commands_print_one_json_document(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in READ_ONLY:
        rc, doc, err = run(capsys, config, *argv)
        assert rc == 0, (argv, err)
        assert isinstance(doc, dict) and "error" not in doc, argv  # never a bare array
    for argv in (("config", "keys"), ("modbus", "models"), ("ble", "models")):
        rc, doc, _ = run(capsys, None, *argv)
        assert rc == 0 and isinstance(doc, dict), argv
    rc, doc, _ = run(capsys, None, "config", "check", str(config))
    assert rc == 0 and doc == {"file": str(config), "ok": True}


def test_changes_print_json_and_a_password_once(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, made, _ = run(capsys, config, "token", "create", "--role", "technician", "--label", "v")
    assert rc == 0 and made["token"].startswith("cg_") and made["role"] == "technician"
    rc, listed, _ = run(capsys, config, "token", "list")
    assert [t["id"] for t in listed["tokens"]] == [made["id"]]
    assert made["token"] not in json.dumps(listed)  # never the secret
    rc, revoked, _ = run(capsys, config, "token", "revoke", made["id"])
    assert rc == 0 and revoked == {"id": made["id"], "revoked": True}
    rc, added, _ = run(capsys, config, "chargers", "add", "CP-JSON-1", "--site", "cp-zhening")
    assert rc == 0 and added["id"] == "CP-JSON-1" and len(added["password"]) >= 16
    rc, moved, _ = run(capsys, config, "chargers", "set", "CP-JSON-1", "--place", "north")
    assert rc == 0 and moved["place"] == "north" and moved["lifecycle"] == "provisioned"


def error_of(result: tuple[int, Any, str], exit: Exit, code: str | None = None) -> dict[str, str]:
    """The error document of a command's *result* (``run``), checked: *exit*, a hint."""
    rc, doc, _ = result
    assert rc == exit, doc
    assert set(doc) == {"error"} or doc.get("ok") is False, doc  # ble's carry "ok" too
    err: dict[str, str] = doc["error"]
    assert err["message"] and err["hint"], err  # says what to do next
    if code is not None:
        assert err["code"] == code
    return err


def test_not_found_refused_and_failed(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error_of(run(capsys, config, "token", "revoke", "nope"), Exit.NOT_FOUND, "not_found")
    error_of(run(capsys, config, "drones", "show", "drone-99"), Exit.NOT_FOUND)
    error_of(run(capsys, config, "chargers", "set-password", "NOPE"), Exit.NOT_FOUND)
    error_of(run(capsys, config, "devices", "set", "ffffffffffffffff", "--notes", "x"),
             Exit.NOT_FOUND)  # fmt: skip
    error_of(run(capsys, config, "commission", "no-such-device"), Exit.NOT_FOUND)
    quote = ("--vehicle", "small", "--entry", "2026-05-01T08:00+08:00",
             "--exit", "2026-05-01T09:00+08:00")  # fmt: skip
    error_of(run(capsys, config, "tariffs", "quote", "--site", "nowhere", *quote), Exit.NOT_FOUND)
    error_of(run(capsys, config, "telemetry", "status"), Exit.NOT_FOUND, "no_spool")
    taken = run(capsys, config, "chargers", "add", "CP-TAKEN", "--site", "cp-zhening")
    assert taken[0] == 0
    err = error_of(run(capsys, config, "chargers", "add", "CP-TAKEN", "--site", "cp-zhening"),
                   Exit.REFUSED, "refused")  # fmt: skip
    assert "already exists" in err["message"]
    error_of(run(capsys, config, "chargers", "set", "CP-TAKEN"), Exit.USAGE)  # nothing to set
    # a failed check: an import with a bad row (nothing imported), a commissioning that fails
    bad = config.parent / "bad.csv"
    bad.write_text("id,site_id\nCP-CLI-2,no-such-site\n", "utf-8")
    rc, doc, _ = run(capsys, config, "import", str(bad), "--kind", "charger")
    assert rc == Exit.FAILED and doc["errors"][0]["field"] == "site_id"
    sensor = next(d["id"] for d in run(capsys, config, "devices", "list")[1]["devices"]
                  if d["kind"] == "berth_sensor")  # fmt: skip
    rc, doc, _ = run(capsys, config, "commission", sensor, "--kind", "sensor")
    assert rc == Exit.FAILED and doc["passed"] is False  # never heard from: no first status
    broken = config.parent / "rules.toml"
    broken.write_text("[[rules]]\nid = 1\n", "utf-8")
    error_of(run(capsys, config, "rules", "import", str(broken)), Exit.FAILED)


def test_usage_errors_exit_2_with_json_on_stdout(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["devices", "lst"], ["token", "create", "--role", "mayor"],
                 ["audit", "--limit", "0"]):  # fmt: skip
        with pytest.raises(SystemExit) as done:
            main([*argv, "-c", str(config), "--json"])
        assert done.value.code == Exit.USAGE
        out, err = capsys.readouterr()
        error_of((Exit.USAGE, json.loads(out), err), Exit.USAGE, "usage")
        assert "usage:" in err and "what to do: see `citygate" in err
    with pytest.raises(SystemExit):  # without --json: argparse's text only
        main(["devices", "lst"])
    assert capsys.readouterr().out == ""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we leave: nobody listens


@pytest.mark.parametrize("where", ["missing sqlite directory", "closed postgresql port"])
def test_an_unreachable_database_is_one_line_and_exit_5(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'cg.db'}"
        if where.startswith("missing")
        else f"postgresql+asyncpg://cg:s3cret-pw@127.0.0.1:{closed_port()}/cg"
    )
    config = tmp_path / "citygate.toml"
    config.write_text(f'[database]\nurl = "{url}"\n', "utf-8")
    err = error_of(run(capsys, config, "devices", "list"), Exit.UNAVAILABLE,
                   "database_unavailable")  # fmt: skip
    assert "[database] url" in err["hint"] and "s3cret-pw" not in json.dumps(err)
    assert main(["token", "list", "-c", str(config)]) == Exit.UNAVAILABLE
    out, text = capsys.readouterr()
    assert out == "" and "Traceback" not in text and "s3cret-pw" not in text
    lines = [ln for ln in text.splitlines() if not ln.startswith("citygate: config ")]
    assert lines[0].startswith("citygate token list: cannot open the database")
    assert lines[1].startswith("  what to do: check [database] url")
    # the traceback is there for who asks
    assert main(["--log-level", "debug", "token", "list", "-c", str(config)]) == 5
    assert "Traceback" in capsys.readouterr().err


def test_a_bad_config_file_is_exit_2_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "citygate.toml"
    config.write_text("[database]\nurll = 1\n", "utf-8")
    err = error_of(run(capsys, config, "devices", "list"), Exit.USAGE, "bad_config")
    assert "urll" in err["message"]


# -- the CLI shows what the API shows ------------------------------------------------------------
def test_json_is_what_the_api_answers(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.api.app import create_app
    from gateway.api.state import AppState
    from gateway.config import load_settings
    from gateway.directory.tokens import Role, create_token
    from gateway.wiring import build_services

    # something of each kind beyond the town: a camera and a charger
    assert main(["devices", "add-camera", "cam-j-1", "--vendor", "dahua", "--site",
                 "cp-zhening", "-c", str(config)]) == 0  # fmt: skip
    assert main(["chargers", "add", "CP-J-1", "--site", "cp-zhening", "-c", str(config)]) == 0
    capsys.readouterr()
    paths = {("devices", "list"): "/api/v1/devices", ("chargers", "health"): "/api/v1/chargers",
             ("field",): "/api/v1/field", ("drones",): "/api/v1/drones",
             ("cases", "list"): "/api/v1/cases", ("audit",): "/api/v1/audit"}  # fmt: skip

    async def api_side() -> dict[tuple[str, ...], Any]:
        services = await build_services(load_settings(config, environ={}))
        try:
            async with services.sessions.begin() as s:
                _, token = await create_token(s, Role.ADMIN, services.clock(), "parity")
            transport = httpx.ASGITransport(app=create_app(AppState.of(services)))
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                out = {}
                for argv, path in paths.items():
                    r = await http.get(path, headers=headers)
                    assert r.status_code == 200, (path, r.text)
                    out[argv] = r.json()
                return out
        finally:
            await services.close()

    api = asyncio.run(api_side())
    for argv in paths:
        rc, cli, err = run(capsys, config, *argv)
        assert rc == 0, err
        for view in (cli, api[argv]):
            view.pop("at", None)  # when it was computed
        assert cli == api[argv], argv
    assert any(d["id"] == "cam-j-1" for d in api["devices", "list"]["devices"])
    assert any(c["id"] == "CP-J-1" for c in api["chargers", "health"]["chargers"])
    assert {("camera", "cam-j-1"), ("charger", "CP-J-1")} <= {
        (e["kind"], e["key"]) for e in api["audit",]["entries"]
    }


@pytest.mark.parametrize(
    ("raised", "exit", "code"),
    [(KeyboardInterrupt(), Exit.INTERRUPTED, "interrupted"),
     (RuntimeError("a bug\nover lines"), Exit.FAILED, "internal"),
     (ConnectionResetError("peer went away"), Exit.UNAVAILABLE, "unavailable")],
)  # fmt: skip
def test_what_no_command_handles_is_one_error_not_a_traceback(
    raised: BaseException,
    exit: Exit,
    code: str,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.cli import tokens

    def boom(_: Any) -> int:
        raise raised

    monkeypatch.setattr(tokens, "cmd_token_list", boom)
    rc, doc, _ = run(capsys, config, "token", "list")
    assert rc == exit and doc["error"]["code"] == code
    assert main(["token", "list", "-c", str(config)]) == exit
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    if exit is not Exit.INTERRUPTED:
        assert err.splitlines()[-2].startswith("citygate token list: ")  # one line, then
        assert err.splitlines()[-1].startswith("  what to do: ")  # what to do next


def test_a_reader_that_goes_away_is_a_quiet_141(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``citygate token list | head -1``: the pipe closes under the command; it ends quietly
    (as a command killed by SIGPIPE would), not as a lost database."""
    from gateway.cli import tokens

    def closed(_: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(tokens, "cmd_token_list", closed)
    assert main(["token", "list", "-c", str(config)]) == Exit.PIPE_CLOSED == 141
    err = capsys.readouterr().err
    assert "Broken pipe" not in err and "what to do" not in err
