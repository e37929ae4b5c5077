"""A small, bounded ``multipart/form-data`` splitter (RFC 7578) for camera pushes.

Cameras send a handful of parts (an XML document, two or three JPEGs); the body is already
bounded by the HTTP edge. This splits on the boundary without copying more than once, takes
CRLF or bare LF line ends (some firmware sends either), and reads the part headers it needs:
the disposition's ``name`` / ``filename`` and the ``Content-Type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.cameras.reads import CameraError

__all__ = ["Part", "boundary_of", "split_multipart"]

_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;,"]{1,200}))', re.IGNORECASE)
_PARAM = re.compile(r'(\w+)\*?=(?:"([^"]*)"|([^\s;]*))')


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str
    content_type: str
    data: bytes


def boundary_of(content_type: str) -> str:
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise CameraError("malformed_multipart", "multipart Content-Type without a boundary")
    return m.group(1) or m.group(2)


def _headers(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    return out


def _params(value: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(value)}


def split_multipart(body: bytes, content_type: str, max_parts: int = 16) -> list[Part]:
    """The parts of *body*; CameraError when it has no boundary, no part, or too many."""
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise CameraError("malformed_multipart", "multipart body without its boundary")
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        if len(parts) >= max_parts:
            raise CameraError("malformed_multipart", f"more than {max_parts} parts")
        chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
        for sep in (b"\r\n\r\n", b"\n\n"):
            head, found, data = chunk.partition(sep)
            if found:
                break
        else:
            raise CameraError("malformed_multipart", "a part without a header block")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        headers = _headers(head)
        disposition = _params(headers.get("content-disposition", ""))
        parts.append(
            Part(
                name=disposition.get("name", "")[:100],
                filename=disposition.get("filename", "")[:100],
                content_type=headers.get("content-type", "").split(";")[0].strip().lower(),
                data=data,
            )
        )
    if not parts:
        raise CameraError("malformed_multipart", "multipart body without parts")
    return parts
