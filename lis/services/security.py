"""Passwords (argon2id) and bearer tokens (random, only the SHA-256 stored)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from lis.models import ApiToken, User, utcnow

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, hours: int) -> str:
    token = secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(ApiToken(user_id=user.id, token_hash=token_digest(token), expires_at=utcnow() + timedelta(hours=hours)))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).first()
    if row is None or row.revoked or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None
