"""User administration (the admin page): list, change role, activate/deactivate, unlock. All audited."""

from __future__ import annotations

from sqlmodel import Session, select

from lis.models import Role, User
from lis.services import audit
from lis.services.users import UserError


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.username)).all())


def _get(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise UserError(f"user {username!r} does not exist")
    return user


def set_role(session: Session, username: str, role: str, actor: str) -> User:
    if role not in Role.ALL:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(Role.ALL)}")
    user = _get(session, username)
    if username == actor and role != user.role:
        raise UserError("you cannot change your own role")
    before = user.role
    user.role = role
    audit.record(session, actor, "user.role", "user", username, before={"role": before}, after={"role": role})
    return user


def set_active(session: Session, username: str, active: bool, actor: str) -> User:
    user = _get(session, username)
    if username == actor and not active:
        raise UserError("you cannot deactivate yourself")
    user.active = active
    audit.record(session, actor, "user.activate" if active else "user.deactivate", "user", username)
    return user


def unlock(session: Session, username: str, actor: str) -> User:
    user = _get(session, username)
    user.locked_until, user.failed_logins = None, 0
    audit.record(session, actor, "user.unlock", "user", username)
    return user
