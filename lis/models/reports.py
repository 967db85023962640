"""Signed laboratory reports (Circular 13/2025/TT-BYT): one PDF per released version of an order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from lis.models.types import UTCDateTime, utcnow


class SignedReport(SQLModel, table=True):
    """A PAdES-signed PDF report. An amendment is a new row with the next ``version``; none is ever replaced."""

    __tablename__ = "signed_report"
    __table_args__ = (UniqueConstraint("order_id", "version", name="uq_signed_report_version"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="lab_order.id", index=True)
    version: int = 1
    correction: bool = False
    signer: str = Field(max_length=64)  # username of the validator whose certificate signed
    certificate_subject: str = Field(default="", max_length=400)
    signed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    sha256: str = Field(max_length=64)
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
