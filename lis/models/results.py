"""Results: one row per observation (patient result or QC observation) and per revision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow


class ResultStatus:
    """LIS workflow states (ARCHITECTURE.md principle 6)."""

    RECEIVED = "received"
    UNMATCHED = "unmatched"  # unknown specimen, unmapped code, or test not ordered: a person decides
    PENDING = "pending"
    AUTOVERIFIED = "autoverified"
    TECHNICALLY_VALIDATED = "technically_validated"
    RELEASED = "released"
    RERUN_REQUESTED = "rerun_requested"
    REJECTED = "rejected"
    AMENDED = "amended"  # superseded by a newer revision
    ALL = (RECEIVED, UNMATCHED, PENDING, AUTOVERIFIED, TECHNICALLY_VALIDATED, RELEASED, RERUN_REQUESTED,
           REJECTED, AMENDED)


class Result(SQLModel, table=True):
    """One observation. ``accession`` is the specimen id exactly as the analyser sent it.

    ``(raw_message_id, sequence, revision)`` is unique: re-processing a journal entry never creates a
    second row. ``version`` is the optimistic-lock counter; ``revision`` counts amendments.
    """

    __table_args__ = (
        UniqueConstraint("raw_message_id", "sequence", "revision", name="uq_result_source"),
        Index("ix_result_status_instrument", "status", "instrument"),
    )

    id: int | None = Field(default=None, primary_key=True)
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id", index=True)
    sequence: int = 0
    revision: int = 0
    version: int = 1
    instrument: str = Field(default="", max_length=64)
    accession: str = Field(default="", max_length=64, index=True)
    specimen_id: int | None = Field(default=None, foreign_key="specimen.id", index=True)
    order_test_id: int | None = Field(default=None, foreign_key="order_test.id", index=True)
    patient_id: int | None = Field(default=None, foreign_key="patient.id", index=True)
    test_code: str | None = Field(default=None, max_length=32, index=True)
    instrument_test_code: str = Field(default="", max_length=64)
    loinc: str = Field(default="", max_length=20)
    value: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    value_numeric: float | None = None
    units: str = Field(default="", max_length=40)
    reference_range: str = Field(default="", max_length=100)
    abnormal_flags: str = Field(default="", max_length=40)
    result_status: str = Field(default="", max_length=2)  # as sent: F C P X
    status: str = Field(default=ResultStatus.RECEIVED, max_length=24)
    unmatched_reason: str = Field(default="", max_length=200)
    is_qc: bool = Field(default=False, index=True)
    control_material: str = Field(default="", max_length=100)
    control_lot: str = Field(default="", max_length=64)
    control_level: str = Field(default="", max_length=20)
    observed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    supersedes_id: int | None = Field(default=None, foreign_key="result.id")
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # -- result workflow (issue 6): evaluation, validation, release; see lis/services/workflow/ --------
    lis_flags: str = Field(default="", max_length=8)  # L H LL HH A from the LIS's own ranges (beside abnormal_flags)
    critical: bool = False  # outside a critical limit: release needs a recorded notification
    status_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # why pending/rejected
    rerun_of_id: int | None = Field(default=None, foreign_key="result.id")  # the original this rerun repeats
    validated_by: str = Field(default="", max_length=64)  # technical validation (or "autoverification")
    validated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    released_by: str = Field(default="", max_length=64)
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    turnaround_seconds: float | None = None  # specimen (or result) received -> released
