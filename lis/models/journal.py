"""The raw message journal: every byte an analyser sent, committed before it is acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow


class RawMessageStatus:
    """Journal states. ``received`` = committed, not yet parsed (reprocessed at start-up)."""

    RECEIVED = "received"
    PROCESSED = "processed"  # parsed, every observation matched
    UNMATCHED = "unmatched"  # parsed, some observations in the unmatched queue
    QUERY = "query"  # a host query, answered
    DUPLICATE = "duplicate"  # byte-identical resend of an earlier message: no new results
    ERROR = "error"  # could not be parsed: quarantine
    ALL = (RECEIVED, PROCESSED, UNMATCHED, QUERY, DUPLICATE, ERROR)


class RawMessage(SQLModel, table=True):
    """One message exactly as received (or sent): the source every result links back to."""

    __tablename__ = "raw_message"

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=64, index=True)
    protocol: str = Field(max_length=10)  # astm | hl7
    direction: str = Field(default="in", max_length=3)  # in | out
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = 0
    sha256: str = Field(max_length=64, index=True)
    control_id: str = Field(default="", max_length=100)
    peer: str = Field(default="", max_length=200)
    status: str = Field(default=RawMessageStatus.RECEIVED, max_length=12, index=True)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    processed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    duplicate_of_id: int | None = Field(default=None, foreign_key="raw_message.id")
    result_count: int = 0
    # the journal spool entry this row was adopted from (lis.services.spool): adoption is idempotent by it
    spool_key: str | None = Field(default=None, max_length=64, unique=True, index=True)


class MessageAttachment(SQLModel, table=True):
    """Histograms, scattergrams and images that came with a message (ASTM M records, HL7 ED OBX)."""

    __tablename__ = "message_attachment"

    id: int | None = Field(default=None, primary_key=True)
    raw_message_id: int = Field(foreign_key="raw_message.id", index=True)
    accession: str = Field(default="", max_length=64, index=True)
    name: str = Field(max_length=100)
    media_type: str = Field(max_length=100)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
