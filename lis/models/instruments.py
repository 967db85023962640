"""Instruments (analysers) and per-instrument test-code maps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from lis.models.types import UTCDateTime


class Instrument(SQLModel, table=True):
    """An analyser as configured (``[[instruments]]``); synced from the config at start."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    model: str = Field(default="", max_length=100)
    profile: str = Field(max_length=64)
    protocol: str = Field(max_length=10)  # astm | hl7
    transport: str = Field(max_length=20)
    connection: str = Field(default="", max_length=200)  # human-readable: tcp://host:port, /dev/ttyS0@9600-8N1
    enabled: bool = True
    last_message_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class TestCodeMap(SQLModel, table=True):
    """Instrument test code → LIS test, set by the lab (wins over the profile's code map)."""

    __test__ = False  # not a pytest test class

    __tablename__ = "test_code_map"
    __table_args__ = (UniqueConstraint("instrument", "instrument_code"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=64)
    instrument_code: str = Field(max_length=64)
    test_code: str = Field(foreign_key="test_definition.code", max_length=32)
