"""The web page's login and forms, pure: the cookies it sets, CSRF tokens (double submit),
where a login may send a person on, and a bounded parser of urlencoded form bodies.

**Login.** A person pastes their API token (``citygate token create``); it is checked like a
bearer token and kept in the ``cg_web`` cookie: HttpOnly (no script reads it), SameSite=Strict
(no other site's page sends it), Path=/web, Secure when the page is served over TLS. The token
is never written into a page, a log line or a URL.

**CSRF.** Every form that is posted carries the value of the ``cg_csrf`` cookie (a random
256-bit value set with the first page) in a hidden field; a POST whose field does not equal its
cookie is refused with 403. Another site can neither read the cookie nor (SameSite=Strict) make
the browser send it. Login rotates it.
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import parse_qsl

from gateway.directory.tokens import Role, TokenError, split_token

AUTH_COOKIE = "cg_web"
CSRF_COOKIE = "cg_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/web"
MAX_FORM_BYTES = 16_384  # the largest form of the page is a pasted token: far below this
MAX_FORM_FIELDS = 16
HOME = "/web/map"

# Who sees which page and layer (as the API: GET /api/v1/chargers, GET /api/v1/field).
STAFF = frozenset({Role.INSPECTOR, Role.OPERATOR, Role.TECHNICIAN, Role.ADMIN})
CHARGER_READERS = frozenset({Role.INSPECTOR, Role.OPERATOR, Role.TECHNICIAN, Role.ADMIN})
FIELD_READERS = frozenset({Role.INSPECTOR, Role.OPERATOR, Role.ADMIN})
# GET /api/v1/cases[/{id}], and POST /api/v1/cases/{id}/redeliver.
CASE_READERS = frozenset({Role.OPERATOR, Role.INSPECTOR})
CASE_ACTORS = frozenset({Role.OPERATOR})
# GET /api/v1/lanes; POST /api/v1/lanes/{id}/open and the drone commands (operators; admin too)
LANE_READERS = frozenset({Role.INSPECTOR, Role.OPERATOR, Role.TECHNICIAN, Role.ADMIN})
COMMANDERS = frozenset({Role.OPERATOR, Role.ADMIN})

_CSRF = re.compile(r"[A-Za-z0-9_-]{32,64}")


class FormError(Exception):
    """A form body refused: ``status`` (400, 413, 415, 422) and a message for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body, or FormError: too large
    (413), another media type (415), not ASCII, not UTF-8 once decoded, a field twice (400),
    more than MAX_FORM_FIELDS fields (413), or a NUL character anywhere (422)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise FormError(415, "a form must be sent as application/x-www-form-urlencoded")
    if len(body) > MAX_FORM_BYTES:
        raise FormError(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except UnicodeDecodeError:
        raise FormError(400, "the form is not valid UTF-8") from None
    except ValueError:
        raise FormError(413, f"a form has at most {MAX_FORM_FIELDS} fields") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise FormError(422, "a NUL character is not accepted")
        if key in out:
            raise FormError(400, f"the field {key[:32]!r} is given twice")
        out[key] = value
    return out


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, field: str | None) -> bool:
    """Whether a posted form's CSRF field matches its cookie (both well formed)."""
    if not cookie or not field or not _CSRF.fullmatch(cookie) or not _CSRF.fullmatch(field):
        return False
    return hmac.compare_digest(cookie.encode(), field.encode())


def usable_csrf(cookie: str | None) -> bool:
    return cookie is not None and _CSRF.fullmatch(cookie) is not None


def token_shaped(value: str | None) -> bool:
    """Whether a cookie holds something of the form of an API token (else it is ignored)."""
    if not value:
        return False
    try:
        split_token(value)
    except TokenError:
        return False
    return True


def safe_next(target: str | None) -> str:
    """Where to go after login: a page of ours (``/web/...``), never another site."""
    if (
        not target
        or len(target) > 200
        or not target.startswith("/web/")
        or target.startswith("//")
        or any(c in target for c in "\\\r\n\t\x00")
        or target.startswith("/web/static/")
    ):
        return HOME
    return target
