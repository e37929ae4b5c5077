"""Plate camera credentials: the secret in each camera's push URL, stored hashed.

Cameras cannot send a bearer token, so each posts to ``/cameras/{camera_id}/{secret}/...``.
The secret has 192 bits of entropy, so a fast hash (SHA-256) is enough, as for API tokens;
it is compared in constant time, and an unknown camera costs the same comparison as a known
one, so a refusal hints at neither. Cameras are devices of kind ``camera``: provisioned
through the registry and followed live through the change feed like every device.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from gateway.directory.devices import DeviceEntry, Lifecycle

VENDORS = ("hikvision", "vzenith", "dahua")
_DUMMY = hashlib.sha256(b"no such camera").hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def admit(entry: DeviceEntry | None, secret: str, vendor: str) -> tuple[DeviceEntry | None, str]:
    """``(camera, "")`` if *secret* is the camera's own and it pushes this *vendor*'s format;
    else ``(None, reason)`` with the reason for the metric only (never for the caller)."""
    camera = entry if entry is not None and entry.kind == "camera" else None
    expected = camera.secret_hash if camera is not None and camera.secret_hash else _DUMMY
    good = hmac.compare_digest(expected, hash_secret(secret[:200]))
    if camera is None or camera.secret_hash is None:
        return None, "unknown"
    if not good:
        return None, "secret"
    if camera.lifecycle is Lifecycle.RETIRED:
        return None, "retired"
    if camera.vendor != vendor:
        return None, "vendor"
    return camera, ""
