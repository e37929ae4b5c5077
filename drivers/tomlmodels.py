"""Model files in TOML (gate register maps, display framings): the shipped ones beside a
driver and a technician's own, validated with a pydantic model, every error naming the file
and the field."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["load_model", "parse_model", "shipped_model_of", "shipped_names"]


M = TypeVar("M", bound=BaseModel)


def parse_model(cls: type[M], text: str, where: str, error: type[ValueError]) -> M:
    """*text* as a *cls*; *error* names *where* and each wrong field."""
    try:
        return cls.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: {exc}") from None
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise error(f"{where}: {reasons}") from None


def load_model(cls: type[M], path: Path, error: type[ValueError]) -> M:
    """A model file of the same shape as the shipped ones."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or exc}") from None
    return parse_model(cls, text, str(path), error)


def shipped_names(package: str, folder: str) -> list[str]:
    """The model files shipped in *package*'s *folder*, by name."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in files(package).joinpath(folder).iterdir()
        if p.name.endswith(".toml")
    )


def shipped_model_of(
    cls: type[M], package: str, folder: str, name: str, label: str, error: type[ValueError]
) -> M:
    """The shipped model *name*; the file must name itself so (its ``model`` field)."""
    names = shipped_names(package, folder)
    if name not in names:
        raise error(f"unknown {label} {name!r}; shipped: {', '.join(names)}")
    text = files(package).joinpath(folder, f"{name}.toml").read_text("utf-8")
    found = parse_model(cls, text, f"{label} {name}", error)
    own: str = getattr(found, "model", name)
    if own != name:
        raise error(f"{label} {name}: the file names itself {own!r}")
    return found
