"""Patients and encounters (visits)."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Column, Field, SQLModel

from lis.models.types import UTCDateTime, utcnow


class Patient(SQLModel, table=True):
    """A patient. ``national_id`` is the CCCD citizen id (Circular 13/2025 links records to it)."""

    id: int | None = Field(default=None, primary_key=True)
    national_id: str | None = Field(default=None, max_length=20, index=True, unique=True)
    insurance_number: str | None = Field(default=None, max_length=20, index=True)  # BHYT card
    mrn: str | None = Field(default=None, max_length=40, index=True, unique=True)  # hospital patient id
    name: str = Field(max_length=200)  # with Vietnamese diacritics, as written
    name_search: str = Field(default="", max_length=200, index=True)  # folded: "nong thi hoa"
    sex: str = Field(default="U", max_length=1)  # M | F | U
    birth_date: date | None = None
    phone: str = Field(default="", max_length=40)
    address: str = Field(default="", max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Encounter(SQLModel, table=True):
    """A visit; ``visit_code`` is MA_LK of the insurance XML tables (Decision 130/QĐ-BYT)."""

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    visit_code: str = Field(max_length=100, unique=True)
    kind: str = Field(default="outpatient", max_length=20)  # outpatient | inpatient | emergency
    department: str = Field(default="", max_length=100)
    started_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
