"""The sample controller models shipped with the package (TOML files beside this module), and
loading a technician's own map file. The shipped ones are examples: see each file's header."""

from __future__ import annotations

from pathlib import Path

from drivers.gates.registers import GateMap
from drivers.tomlmodels import load_model, shipped_model_of, shipped_names

__all__ = ["MapError", "load_map", "model_names", "shipped_model"]


class MapError(ValueError):
    """A register map that cannot be used (unknown model, bad TOML, invalid map)."""


def model_names() -> list[str]:
    """The shipped models, by name."""
    return shipped_names("drivers.gates", "models")


def shipped_model(name: str) -> GateMap:
    """The shipped model *name*."""
    return shipped_model_of(GateMap, "drivers.gates", "models", name, "model", MapError)


def load_map(path: Path) -> GateMap:
    """A register map from a TOML file of the same shape as the shipped ones."""
    return load_model(GateMap, path, MapError)
