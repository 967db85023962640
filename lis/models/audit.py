"""The append-only, hash-chained audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    """Who did what, when, with before/after. ``hash`` = SHA-256(prev_hash + canonical row)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=64, index=True)
    action: str = Field(max_length=64, index=True)
    entity_type: str = Field(default="", max_length=40)
    entity_id: str = Field(default="", max_length=64)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON before/after
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
