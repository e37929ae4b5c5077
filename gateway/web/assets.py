"""The page's static files, read from the package once at import and served from memory
under a URL that carries each file's content hash (``/web/static/<hash>/<name>``), so they
are cached for a year as immutable and a new release is fetched at once. Only the files
listed here are served; a stale or made-up hash is a 404."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

PREFIX = "/web/static"
CACHE_CONTROL = "public, max-age=31536000, immutable"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
# name in URLs -> file in the package's static/ folder
FILES = {
    "htmx.min.js": "htmx-2.0.11.min.js",
    "htmx-ext-sse.min.js": "htmx-ext-sse-2.2.4.min.js",
    "htmx.LICENSE.txt": "htmx.LICENSE.txt",
    "htmx-ext-sse.LICENSE.txt": "htmx-ext-sse.LICENSE.txt",
    "VENDORED.txt": "VENDORED.txt",
    "web.css": "web.css",
    "map.js": "map.js",
}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    digest: str  # the first 16 hex digits of its SHA-256

    @property
    def url(self) -> str:
        return f"{PREFIX}/{self.digest}/{self.name}"

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _load() -> dict[str, Asset]:
    base = resources.files("gateway.web") / "static"
    out = {}
    for name, file in FILES.items():
        body = (base / file).read_bytes()
        suffix = file[file.rfind(".") :]
        digest = hashlib.sha256(body).hexdigest()[:16]
        out[name] = Asset(name, body, _TYPES[suffix], digest)
    return out


ASSETS = _load()


def url(name: str) -> str:
    """The versioned URL of a static file (KeyError for one that is not shipped)."""
    return ASSETS[name].url


def find(digest: str, name: str) -> Asset | None:
    asset = ASSETS.get(name)
    return asset if asset is not None and asset.digest == digest else None
