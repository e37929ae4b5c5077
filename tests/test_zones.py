"""Every file and setting that names a time zone refuses a name that is no zone, however
hostile (a name longer than a path component made ``ZoneInfo`` raise ``OSError``: found by
``make fuzz``, target file.tariffs), with its own clear error."""

from __future__ import annotations

import re
from importlib import resources
from zoneinfo import ZoneInfo

import pytest

from charging.tariff_file import ChargingTariffFileError, loads_charging_tariffs
from gateway.config import Settings
from gateway.directory.town import TownFileError, parse_town, town_zone
from parking.enforcement_file import RulesFileError, loads_rules
from parking.tariff_file import TariffFileError, loads_tariffs
from tariffcore.zones import zone_named

CHINA = ZoneInfo("Asia/Shanghai")
BAD = ["Asia/Shan" * 40, "Asia/" + "a" * 300, "", "Asia/Nowhere", "../../etc/passwd", "Asia/\x00"]


def _with_zone(text: str, name: str) -> str:
    line = f"zone = {name!r}".replace("'", '"') if '"' not in name else f"zone = '{name}'"
    return re.sub(r'^zone = ".*"$', line.replace("\\", "\\\\"), text, count=1, flags=re.M)


@pytest.mark.parametrize("name", BAD)
def test_no_zone_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        zone_named(name)


def test_a_real_zone_is_found() -> None:
    assert zone_named("Asia/Shanghai") == CHINA


@pytest.mark.parametrize("name", BAD[:2])
def test_every_file_refuses_it_with_its_own_error(name: str) -> None:
    tariffs = resources.files("parking.data").joinpath("sample_tariffs.toml").read_text("utf-8")
    assert re.search(r'^zone = "', tariffs, re.M)
    with pytest.raises(TariffFileError, match="zone"):
        loads_tariffs(_with_zone(tariffs, name), "t.toml", zone=CHINA)
    charging = resources.files("charging.data").joinpath("sample_charging_tariffs.toml")
    text = charging.read_text("utf-8")
    if re.search(r'^zone = "', text, re.M):
        with pytest.raises(ChargingTariffFileError, match="zone"):
            loads_charging_tariffs(_with_zone(text, name), "c.toml", zone=CHINA)
    with pytest.raises(RulesFileError, match="zone"):
        loads_rules(f'zone = "{name}"\n', [], "r.toml")
    site = ('[[sites]]\nid = "s"\nname = "S"\nkind = "car_park"\nlat = 38.78\nlon = 101.08\n'
            'capacity = 1\ncounting = "entry_exit"\nsegment_class = "A"\n')  # fmt: skip
    town = parse_town(f'[town]\nname = "t"\ntimezone = "{name}"\n' + site, "t.toml")
    with pytest.raises(TownFileError, match="unknown time zone"):
        town_zone(town, "Asia/Shanghai")
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings.model_validate({"town": {"timezone": name}})
