"""How every citygate command finds its config file, says which, and what it writes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.cli import GROUPS, build_parser, package_version
from gateway.cli.run import defaults_warning
from gateway.config import (
    DEMO_CONFIG,
    LOCAL_CONFIG,
    ConfigError,
    Settings,
    find_config,
    load_settings,
    settings_to_toml,
)


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


# -- the search order -------------------------------------------------------------------------
def test_search_order_flag_env_local_demo(tmp_path: Path) -> None:
    flag = touch(tmp_path / "flag.toml")
    env_file = touch(tmp_path / "env.toml")
    local = touch(tmp_path / LOCAL_CONFIG)
    demo = touch(tmp_path / DEMO_CONFIG)
    env = {"CITYGATE_CONFIG": str(env_file)}
    assert find_config(flag, env, tmp_path).path == flag.resolve()
    assert find_config(None, env, tmp_path).path == env_file.resolve()
    assert find_config(None, {}, tmp_path).path == local.resolve()
    local.unlink()
    found = find_config(None, {}, tmp_path)
    assert found.path == demo.resolve() and found.found_by == "./.demo/citygate.toml"
    demo.unlink()
    none = find_config(None, {}, tmp_path)
    assert none.path is None and "searched" in none.describe()


def test_a_named_file_that_is_missing_is_an_error_not_a_fall_through(tmp_path: Path) -> None:
    touch(tmp_path / LOCAL_CONFIG)
    with pytest.raises(ConfigError, match=r"nope\.toml \(from --config\): no such file"):
        find_config(Path("nope.toml"), {}, tmp_path)
    with pytest.raises(ConfigError, match=r"CITYGATE_CONFIG"):
        find_config(None, {"CITYGATE_CONFIG": str(tmp_path / "gone.toml")}, tmp_path)


def test_relative_flag_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    f = touch(tmp_path / "etc" / "gw.toml")
    assert find_config(Path("etc/gw.toml"), {}, tmp_path).path == f.resolve()


def test_the_demo_skips_local_files_and_the_environment(tmp_path: Path) -> None:
    touch(tmp_path / LOCAL_CONFIG)
    touch(tmp_path / DEMO_CONFIG)
    env = {"CITYGATE_CONFIG": str(touch(tmp_path / "prod.toml"))}
    found = find_config(None, env, tmp_path, skip=(LOCAL_CONFIG, DEMO_CONFIG), use_env=False)
    assert found.path is None


# -- paths in a file --------------------------------------------------------------------------
def test_relative_paths_in_a_file_are_relative_to_its_directory(tmp_path: Path) -> None:
    f = touch(
        tmp_path / "conf" / "citygate.toml",
        '[database]\nurl = "sqlite+aiosqlite:///data/cg.db"\n'
        '[telemetry]\nspool_dir = "spool"\n[town]\nfile = "../town.toml"\n',
    )
    s = load_settings(f, environ={})
    here = (tmp_path / "conf").resolve()
    assert s.database.url == f"sqlite+aiosqlite:///{here / 'data' / 'cg.db'}"
    assert s.telemetry.spool_dir == here / "spool"
    assert s.town.file == here / ".." / "town.toml"
    # The environment stays relative to the working directory, as before.
    env = load_settings(f, environ={"CITYGATE_TELEMETRY__SPOOL_DIR": "elsewhere"})
    assert env.telemetry.spool_dir == Path("elsewhere")


def test_absolute_and_memory_urls_are_left_alone(tmp_path: Path) -> None:
    f = touch(tmp_path / "a.toml", '[database]\nurl = "sqlite+aiosqlite:////srv/cg.db"\n')
    assert load_settings(f, environ={}).database.url == "sqlite+aiosqlite:////srv/cg.db"
    f.write_text('[database]\nurl = "sqlite+aiosqlite:///:memory:"\n')
    assert load_settings(f, environ={}).database.url == "sqlite+aiosqlite:///:memory:"


def test_written_config_reads_back_the_same_and_holds_no_secret(tmp_path: Path) -> None:
    workdir = tmp_path / ".demo"
    workdir.mkdir()
    s = Settings.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{workdir / 'citygate.db'}"},
            "telemetry": {"spool_dir": workdir / "telemetry-spool", "token": "s3cret-token"},
            "api": {"port": 41234},
            "mqtt": {"port": 39999, "protocol": "3.1.1", "password": "hunter2"},
            "log": {"json": True},
        }
    )
    text = settings_to_toml(s, workdir, "written by a test")
    assert "hunter2" not in text and "s3cret-token" not in text
    assert 'url = "sqlite+aiosqlite:///citygate.db"' in text  # relative to the file
    path = workdir / "citygate.toml"
    path.write_text(text)
    tomllib.loads(text)
    back = load_settings(path, environ={})
    assert back.database.url == s.database.url
    assert back.telemetry.spool_dir == s.telemetry.spool_dir
    assert (back.api.port, back.mqtt.port, back.mqtt.protocol) == (41234, 39999, "3.1.1")
    assert back.log.json_format is True
    assert back.mqtt.password is None  # a secret stays in the environment it came from


# -- what the user sees -----------------------------------------------------------------------
def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    from importlib.metadata import version

    res = run_cli("--version", cwd=tmp_path)
    assert res.returncode == 0
    assert (
        res.stdout.strip() == f"citygate {version('citygate')}" == f"citygate {package_version()}"
    )


def test_help_lists_every_command_group() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = parser.format_help()
    # An alias (``tariff`` for ``tariffs``) shares its command's parser and help line.
    names = {n for n, p in sub.choices.items() if p.prog.split()[-1] == n}
    helped = {a.dest.split(" ")[0] for a in sub._choices_actions}
    assert names == helped, "a command without help= is missing from --help"
    for name in names:
        assert f"    {name} " in text or f"    {name}\n" in text, name
    # Every module in GROUPS contributes at least one top-level command.
    for group in GROUPS:
        probe = argparse.ArgumentParser().add_subparsers()
        group.register(probe, lambda sp: sp)
        assert set(probe.choices) <= set(sub.choices) and probe.choices, group.__name__
    assert "citygate.toml" in text  # the search order is in --help


def test_config_which_and_the_stderr_line(tmp_path: Path) -> None:
    none = run_cli("config", "which", cwd=tmp_path)
    assert none.returncode == 3 and none.stdout == ""  # not found (docs/cli.md)
    assert "no config file" in none.stderr
    demo = touch(tmp_path / DEMO_CONFIG, '[database]\nurl = "sqlite+aiosqlite:///citygate.db"\n')
    found = run_cli("config", "which", cwd=tmp_path)
    assert found.returncode == 0 and found.stdout.strip() == str(demo.resolve())
    # Every command says, on stderr only, which file it uses: stdout stays machine-readable.
    tokens = run_cli("token", "list", cwd=tmp_path)
    assert tokens.returncode == 0, tokens.stderr
    assert f"config {demo.resolve()} (from ./.demo/citygate.toml)" in tokens.stderr
    assert "citygate.toml" not in tokens.stdout
    assert (tmp_path / ".demo" / "citygate.db").exists()  # the demo's database, not ./citygate.db
    assert not (tmp_path / "citygate.db").exists()


def test_missing_config_flag_is_one_clear_error(tmp_path: Path) -> None:
    res = run_cli("token", "list", "--config", "nope.toml", cwd=tmp_path)
    assert res.returncode == 2
    error, hint = res.stderr.strip().splitlines()[-2:]
    assert error == "citygate token list: config error: nope.toml (from --config): no such file"
    assert hint.startswith("  what to do: ")
    assert "Traceback" not in res.stderr


def test_run_without_a_config_says_what_it_will_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = defaults_warning(load_settings(None, environ={}), {"CITYGATE_MQTT__PORT": "1884"})
    assert "NO CONFIG FILE" in text
    assert "SAMPLE town" in text
    assert "127.0.0.1:1883" in text
    assert str(tmp_path.resolve() / "citygate.db") in text
    assert str(tmp_path.resolve() / "telemetry-spool") in text
    assert "CITYGATE_MQTT__PORT" in text and "1884" not in text  # names, never values


def test_the_config_line_is_printed_once(tmp_path: Path) -> None:
    # In a subprocess: main() sets up the process's logging, which must not leak into the suite.
    touch(tmp_path / LOCAL_CONFIG, '[telemetry]\nspool_dir = "sp"\n')
    res = run_cli("telemetry", "status", "--json", cwd=tmp_path)
    assert res.returncode == 3  # not found, said on stdout as JSON (docs/cli.md)
    assert json.loads(res.stdout)["error"]["code"] == "no_spool"
    assert res.stderr.count("citygate: config ") == 1
    error = json.loads(res.stdout)["error"]
    assert str(tmp_path.resolve() / "sp") in error["message"]  # the spool it looked for, absolute
