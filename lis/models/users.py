"""Users, roles and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Column, Field, SQLModel

from lis.models.types import UTCDateTime, utcnow


class Role:
    """Roles (issue contract): ``lis user add --role ROLE``."""

    TECHNICIAN = "technician"
    VALIDATOR = "validator"  # pathologist: medical validation and release
    MANAGER = "manager"
    ADMIN = "admin"
    CLINICIAN = "clinician"  # read-only
    INTEGRATION = "integration"  # machine-to-machine token (EMR, gateway)
    ALL = (TECHNICIAN, VALIDATOR, MANAGER, ADMIN, CLINICIAN, INTEGRATION)


class User(SQLModel, table=True):
    __tablename__ = "lis_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    full_name: str = Field(default="", max_length=200)
    role: str = Field(max_length=20)
    password_hash: str = Field(max_length=200)  # argon2id
    active: bool = True
    language: str = Field(default="vi", max_length=2)
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="lis_user.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked: bool = False
