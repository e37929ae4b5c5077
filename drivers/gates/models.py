"""The sample controller models shipped with the package (TOML files beside this module), and
loading a technician's own map file. The shipped ones are examples: see each file's header."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from pydantic import ValidationError

from drivers.gates.registers import GateMap

__all__ = ["MapError", "load_map", "model_names", "shipped_model"]


class MapError(ValueError):
    """A register map that cannot be used (unknown model, bad TOML, invalid map)."""


def _parse(text: str, where: str) -> GateMap:
    try:
        return GateMap.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise MapError(f"{where}: {exc}") from None
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise MapError(f"{where}: {reasons}") from None


def model_names() -> list[str]:
    """The shipped models, by name."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in files("drivers.gates").joinpath("models").iterdir()
        if p.name.endswith(".toml")
    )


def shipped_model(name: str) -> GateMap:
    """The shipped model *name*."""
    if name not in model_names():
        raise MapError(f"unknown model {name!r}; shipped: {', '.join(model_names())}")
    text = files("drivers.gates").joinpath("models", f"{name}.toml").read_text("utf-8")
    gate_map = _parse(text, f"model {name}")
    if gate_map.model != name:
        raise MapError(f"model {name}: the file names itself {gate_map.model!r}")
    return gate_map


def load_map(path: Path) -> GateMap:
    """A register map from a TOML file of the same shape as the shipped ones."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise MapError(f"{path}: {exc.strerror or exc}") from None
    return _parse(text, str(path))
