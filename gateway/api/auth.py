"""Bearer-token authentication and role checks for the non-public API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.problems import ProblemError
from gateway.api.state import AppState, get_state
from gateway.directory.audit import Actor
from gateway.directory.tokens import Role, TokenError, TokenInfo, verify_token

_bearer = HTTPBearer(auto_error=False, description="token from `citygate token create`")
bearer_scheme = _bearer  # for routes whose token check is conditional (ops: /metrics)


def require(*roles: Role) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency admitting the given roles (admin is always admitted)."""
    allowed = {*roles, Role.ADMIN}

    async def dependency(
        request: Request,
        creds: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        state: AppState = Depends(get_state),  # noqa: B008
    ) -> TokenInfo:
        if creds is None:
            state.metrics.api_auth_failures.labels("missing").inc()
            raise ProblemError(
                status.HTTP_401_UNAUTHORIZED,
                "a bearer token is required",
                "token_required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            async with state.sessions() as session:
                info = await verify_token(session, creds.credentials)
        except TokenError as exc:
            state.metrics.api_auth_failures.labels(exc.reason).inc()
            raise ProblemError(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked token",
                "invalid_token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        if info.role not in allowed:
            state.metrics.api_auth_failures.labels("forbidden").inc()
            raise ProblemError(
                status.HTTP_403_FORBIDDEN,
                f"role {info.role.value} may not do this; needs one of "
                + ", ".join(sorted(r.value for r in allowed)),
                "wrong_role",
            )
        request.state.token = info
        return info

    return dependency


def actor_of(info: TokenInfo) -> Actor:
    """Who a request with this token is, for the audit log (its label, id and role)."""
    return Actor.of_token(info.id, info.role.value, info.label)
