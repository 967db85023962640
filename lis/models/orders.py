"""Orders, ordered tests and specimens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Column, Field, SQLModel

from lis.models.types import UTCDateTime, utcnow


class Order(SQLModel, table=True):
    """A laboratory order (HL7 ORC/OBR): placer number from the EMR, filler number from the LIS."""

    __tablename__ = "lab_order"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    encounter_id: int | None = Field(default=None, foreign_key="encounter.id")
    placer_number: str | None = Field(default=None, max_length=64, index=True)
    filler_number: str = Field(max_length=64, unique=True)
    ordering_clinician: str = Field(default="", max_length=200)
    department: str = Field(default="", max_length=100)
    priority: str = Field(default="routine", max_length=10)  # routine | stat
    status: str = Field(default="ordered", max_length=20, index=True)  # ordered|in_progress|completed|cancelled
    clinical_info: str = Field(default="", max_length=1000)
    source: str = Field(default="manual", max_length=20)  # manual | api | hl7 | fhir
    cancel_reason: str = Field(default="", max_length=400)
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Specimen(SQLModel, table=True):
    """A specimen tube; ``barcode`` is the accession id the analyser reads (ASTM O-3, HL7 SPM-2)."""

    id: int | None = Field(default=None, primary_key=True)
    barcode: str = Field(max_length=64, unique=True)
    order_id: int = Field(foreign_key="lab_order.id", index=True)
    specimen_type: str = Field(default="serum", max_length=40)
    status: str = Field(default="expected", max_length=20)  # expected | received | rejected
    collected_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    received_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    reject_reason: str = Field(default="", max_length=400)


class OrderTest(SQLModel, table=True):
    """One ordered test of an order, on one specimen."""

    __tablename__ = "order_test"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="lab_order.id", index=True)
    specimen_id: int | None = Field(default=None, foreign_key="specimen.id", index=True)
    test_code: str = Field(foreign_key="test_definition.code", max_length=32)
    panel_code: str | None = Field(default=None, max_length=32)
    status: str = Field(default="ordered", max_length=20)  # ordered | resulted | cancelled
    added_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
