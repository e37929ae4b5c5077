"""Configuration: file + environment, validated with errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, describe, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "citygate.toml"
    p.write_text(text, "utf-8")
    return p


def test_defaults_need_no_file() -> None:
    s = load_settings(None, environ={})
    assert s.api.port == 8080
    assert s.database.url.startswith("sqlite+aiosqlite://")
    assert s.town.file is None  # shipped sample town


def test_file_and_env_override(tmp_path: Path) -> None:
    p = write(tmp_path, '[api]\nport = 9001\n[mqtt]\nhost = "broker.local"\nshared_group = "gw"\n')
    s = load_settings(
        p,
        environ={
            "CITYGATE_MQTT__PORT": "8883",
            "CITYGATE_MQTT__TLS": "true",
            "CITYGATE_API__HOST": "0.0.0.0",
        },
    )
    assert (s.api.port, s.api.host) == (9001, "0.0.0.0")
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.mqtt.shared_group) == (
        "broker.local",
        8883,
        True,
        "gw",
    )


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "[api]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"\[api\] prot: unknown key"):
        load_settings(p, environ={})


def test_bad_value_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, '[mqtt]\nport = "eighty"\n[database]\nurl = "mysql://x"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(p, environ={})
    assert "[mqtt] port" in str(err.value)
    assert "[database] url" in str(err.value)


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqqt"):
        load_settings(write(tmp_path, "[mqqt]\nhost = 'x'\n"), environ={})


def test_secret_refused_in_file(tmp_path: Path) -> None:
    p = write(tmp_path, '[mqtt]\nusername = "gw"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="CITYGATE_MQTT__PASSWORD") as err:
        load_settings(p, environ={})
    assert "hunter2" not in str(err.value)


def test_secret_from_env_is_not_shown() -> None:
    s = load_settings(None, environ={"CITYGATE_MQTT__PASSWORD": "hunter2"})
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()


def test_tls_files_without_tls_fail(tmp_path: Path) -> None:
    p = write(tmp_path, '[mqtt]\nca_file = "/etc/ssl/ca.pem"\n')
    with pytest.raises(ConfigError, match="tls = true"):
        load_settings(p, environ={})


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[api\nport=1"), environ={})


def test_every_key_is_documented() -> None:
    rows = describe()
    assert rows, "no keys"
    undocumented = [f"[{s}] {k}" for s, k, _, doc in rows if not doc]
    assert undocumented == []
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text("utf-8")
    missing = [f"[{s}] {k}" for s, k, _, _ in rows if f"`{k}`" not in doc]
    assert missing == [], "docs/configuration.md lacks these keys"


def test_config_check_cli(tmp_path: Path) -> None:
    good = write(tmp_path, "[api]\nport = 9000\n")
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[occupancy]\nsilence_factor = 0.1\n")
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 2
    assert "[occupancy] silence_factor" in res.stderr


def test_api_limits_are_read_and_checked(tmp_path: Path) -> None:
    p = write(tmp_path, '[api]\nheader_timeout_s = 2.5\ntrusted_proxies = ["10.0.0.0/8"]\n')
    s = load_settings(p, environ={"CITYGATE_API__TRUSTED_PROXIES": '["10.1.0.0/16", "::1"]'})
    assert s.api.header_timeout_s == 2.5 and s.api.trusted_proxies == ("10.1.0.0/16", "::1")
    assert s.api.rate_limit_per_s == 10.0 and s.api.max_unauthenticated_bodies == 16
    bad = write(
        tmp_path,
        '[api]\nheader_timeout_s = 0\nmax_unauthenticated_bodies = 0\ntrusted_proxies = ["x"]\n',
    )
    with pytest.raises(ConfigError) as err:
        load_settings(bad, environ={})
    for key in ("header_timeout_s", "max_unauthenticated_bodies", "trusted_proxies"):
        assert f"[api] {key}" in str(err.value)
