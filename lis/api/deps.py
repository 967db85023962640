"""API dependencies: the LIS context and bearer-token authentication with role checks."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lis.context import LisContext
from lis.models import User
from lis.permissions import allowed
from lis.services.security import user_for_token

_bearer = HTTPBearer(auto_error=False)


def get_ctx(request: Request) -> LisContext:
    return request.app.state.lis


def current_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    ctx = get_ctx(request)
    with ctx.db.read() as session:
        user = user_for_token(session, credentials.credentials)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def require(permission: str) -> Callable[..., User]:
    """Dependency: the caller's role must hold ``permission`` (403 otherwise)."""

    def check(user: User = Depends(current_user)) -> User:
        if not allowed(user.role, permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not {permission}")
        return user

    return check
