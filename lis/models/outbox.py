"""The EMR outbox: one delivery row per destination per released report, written in the release transaction.

Rows move ``pending → delivered`` or ``pending → dead`` (dead letter); a dead row can be put back to
``pending`` from the API. ``payload`` is built once (HL7 ORU^R01 bytes or a FHIR Bundle) and re-sent
unchanged on every retry, with the same ``message_id`` (MSH-10 / Bundle identifier), so a receiver can
recognise a retransmission (ARCHITECTURE.md principle 3). Inbound EMR messages (orders, demographics) are
kept in ``emr_inbound`` with what became of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, UniqueConstraint
from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow


class OutboxStatus:
    """Delivery states of an outbox row."""

    PENDING = "pending"  # waiting for its turn, or for the next attempt after a failure
    DELIVERED = "delivered"  # acknowledged by the destination (MSA-1 AA / HTTP 2xx)
    DEAD = "dead"  # rejected (AE/AR, OperationOutcome) or out of attempts: a person decides
    ALL = (PENDING, DELIVERED, DEAD)


class OutboxMessage(SQLModel, table=True):
    """One report (an order's released results) to deliver to one destination."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("destination", "order_id", "report_version", name="uq_outbox_report"),
        Index("ix_outbox_due", "destination", "status", "patient_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    destination: str = Field(max_length=64)  # EmrConfig.name, or "report-signing"
    kind: str = Field(max_length=20)  # hl7-mllp | fhir | signed-report
    message_id: str = Field(max_length=40, unique=True)  # MSH-10 / Bundle.identifier
    order_id: int = Field(foreign_key="lab_order.id", index=True)
    patient_id: int = Field(foreign_key="patient.id")
    report_version: int = 1  # 1 = first release of the order; later = amended / corrected
    correction: bool = False
    status: str = Field(default=OutboxStatus.PENDING, max_length=12, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    payload_type: str = Field(default="", max_length=60)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    ack_code: str = Field(default="", max_length=10)  # AA AE AR, or HTTP status
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class OutboxResult(SQLModel, table=True):
    """Which results an outbox row carries: delivery status per result and destination."""

    __tablename__ = "outbox_result"

    outbox_id: int = Field(foreign_key="outbox_message.id", primary_key=True)
    result_id: int = Field(foreign_key="result.id", primary_key=True, index=True)
    corrected: bool = False  # this result is a correction (OBX-11 C)


class EmrInbound(SQLModel, table=True):
    """One message received from an EMR (HL7 OML/ORM/ADT over MLLP, FHIR ServiceRequest) and its outcome."""

    __tablename__ = "emr_inbound"
    __table_args__ = (UniqueConstraint("source", "control_id", name="uq_emr_inbound_control"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)  # EmrConfig.name or "fhir-api"
    message_type: str = Field(default="", max_length=20)  # OML^O21, ORM^O01, ADT^A08, ServiceRequest
    control_id: str = Field(max_length=100)
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="accepted", max_length=20, index=True)  # accepted | needs_attention | rejected
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    order_id: int | None = Field(default=None, foreign_key="lab_order.id")
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
