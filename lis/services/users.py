"""Users: creation with role checks, login with lock-out after repeated failures."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from lis.models import Role, User, utcnow
from lis.services import audit
from lis.services.security import hash_password, verify_password

MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15


class UserError(ValueError):
    pass


def add_user(session: Session, username: str, role: str, password: str, *, full_name: str = "",
             language: str = "vi", actor: str = "system") -> User:
    if role not in Role.ALL:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(Role.ALL)}")
    if not username or len(username) > 64 or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise UserError("username must be 1-64 letters, digits, '.', '_' or '-'")
    if len(password) < 4:
        raise UserError("password must be at least 4 characters")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(username=username, role=role, full_name=full_name or username, language=language,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", username, after={"role": role, "full_name": user.full_name})
    return user


def authenticate(session: Session, username: str, password: str) -> tuple[User | None, str]:
    """Check the password: (user, "") or (None, reason). Five consecutive failures lock the account for
    15 minutes. Returns instead of raising so the caller's transaction commits the failure count."""
    user = session.exec(select(User).where(User.username == username)).first()
    now = utcnow()
    if user is None or not user.active:
        return None, "wrong username or password"
    if user.locked_until is not None and user.locked_until > now:
        return None, "account locked after repeated failures; try again later"
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
            audit.record(session, username, "user.locked", "user", username)
        return None, "wrong username or password"
    user.failed_logins = 0
    user.locked_until = None
    return user, ""
