"""``/auth``: exchange username and password for a bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from lis.api.deps import current_user, get_ctx
from lis.context import LisContext
from lis.models import User
from lis.services import audit
from lis.services.security import issue_token
from lis.services.users import authenticate

router = APIRouter(tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=512)


@router.post("/auth/token")
def login(body: Credentials, ctx: LisContext = Depends(get_ctx)) -> dict[str, object]:
    with ctx.db.write() as session:
        user, reason = authenticate(session, body.username, body.password)
        if user is not None:
            token = issue_token(session, user, ctx.config.web.token_hours)
            audit.record(session, user.username, "auth.token", "user", user.username)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, reason)
    return {"access_token": token, "token_type": "bearer", "expires_in": ctx.config.web.token_hours * 3600,
            "role": user.role, "username": user.username}


@router.get("/auth/me")
def me(user: User = Depends(current_user)) -> dict[str, object]:
    return {"username": user.username, "full_name": user.full_name, "role": user.role, "language": user.language}
