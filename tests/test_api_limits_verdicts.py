"""The rate limit's remembered verdicts (gateway.api.limits.RateLimit): which requests it
limits follows from the method and path, the same whether matched anew or remembered, and
its tables stay bounded."""

from __future__ import annotations

from typing import Any

from starlette.routing import Match

from gateway.api import limits
from gateway.api.app import ROUTERS
from gateway.api.limits import RateLimit, exempt, token_routes
from gateway.api.throttle import RateTable, client_key

ROUTES = [r for router in ROUTERS for r in router.routes]
TOKENED = token_routes(ROUTES)


async def _never(token: str) -> bool:
    return False


def limiter() -> RateLimit:
    return RateLimit(lambda *a: None, RateTable(10, 40, 100), TOKENED, _never,  # type: ignore[arg-type]
                     lambda reason: None)  # fmt: skip


def scope(method: str, path: str, peer: str = "127.0.0.1") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
            "client": (peer, 5555)}  # fmt: skip


def matched_anew(s: dict[str, Any]) -> bool:
    return not exempt(s["path"]) and not any(r.matches(s)[0] is Match.FULL for r in TOKENED)


REQUESTS = [
    (method, path)
    for path in ("/api/v1/sites", "/api/v1/map", "/api/v1/sites/S1", "/api/v1/chargers",
                 "/api/v1/devices", "/api/v1/devices/bodycams", "/healthz", "/metrics",
                 "/cameras/abc/x", "/api/v1/nothing-here", "/web", "/api/v1/cases/callback")
    for method in ("GET", "POST", "PUT", "DELETE", "HEAD")
]  # fmt: skip


def test_remembered_verdicts_are_the_matched_ones() -> None:
    assert TOKENED, "the registry's routes take a token"
    rl = limiter()
    for _ in range(3):  # the first time matched, then remembered
        for method, path in REQUESTS:
            s = scope(method, path)
            assert rl.limited(s) is matched_anew(s), (method, path)
    assert rl.limited(scope("GET", "/api/v1/sites")) is True
    assert rl.limited(scope("GET", "/api/v1/devices")) is False  # a token route


def test_the_tables_stay_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(limits, "VERDICTS_MAX", 8)
    monkeypatch.setattr(limits, "CLIENTS_MAX", 8)
    rl = limiter()
    for i in range(50):
        assert rl.limited(scope("GET", f"/api/v1/sites/S{i}")) is True
        assert rl.client(scope("GET", "/api/v1/sites", f"10.0.0.{i}")) == f"10.0.0.{i}"
    assert len(rl._verdicts) <= 8 and len(rl._clients) <= 8
    assert rl.limited(scope("GET", "/api/v1/sites/" + "x" * 1000)) is True  # not remembered
    assert all(len(k[1]) <= limits.VERDICT_PATH_MAX for k in rl._verdicts)


def test_client_keys_are_the_computed_ones() -> None:
    rl = limiter()
    for peer in ("10.1.2.3", "2001:db8::1", "2001:db8::2", "::ffff:10.1.2.3", "unix-sock"):
        for _ in range(2):
            assert rl.client(scope("GET", "/api/v1/sites", peer)) == client_key(peer)
