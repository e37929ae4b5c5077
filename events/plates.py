"""Mainland plate text: the one normaliser that drivers (camera parsers) and parking share.

It lives in ``events`` because both may import it: drivers import only ``events``, and a plate
must mean the same at the camera's edge as in the parking books.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["PROVINCES", "PlateError", "normalise_plate"]

# Province abbreviations of mainland plates, plus the special prefixes.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
_PLATE = re.compile(
    rf"^[{PROVINCES}][A-HJ-NP-Z](?:[A-HJ-NP-Z0-9]{{5,6}}|[A-HJ-NP-Z0-9]{{4}}[挂学警港澳领使试超])$"
)
_SEPARATORS = str.maketrans("", "", " \t·.-•・")


class PlateError(ValueError):
    """Text that is not a mainland plate; the message says what is wrong."""


def normalise_plate(text: str) -> str:
    """Canonical plate text: full-width folded, separators removed, letters upper-case,
    the province character kept (粤B·12345 → 粤B12345). Raises PlateError otherwise."""
    plate = unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()
    if not _PLATE.match(plate):
        raise PlateError(
            f"{text[:40]!r} is not a plate: expected a province character, a letter and 5 or 6 "
            "letters/digits (I and O are not used), e.g. 甘G12345 or 甘GD12345"
        )
    return plate
