"""Test catalogue: tests, panels and reference ranges."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class TestDefinition(SQLModel, table=True):
    """One orderable/reportable analyte (LIS code, LOINC, UCUM unit)."""

    __test__ = False  # not a pytest test class

    __tablename__ = "test_definition"

    code: str = Field(primary_key=True, max_length=32)
    name_en: str = Field(max_length=200)
    name_vi: str = Field(max_length=200)
    loinc: str = Field(default="", max_length=20, index=True)
    unit: str = Field(default="", max_length=40)  # UCUM
    decimals: int = 2
    section: str = Field(default="chemistry", max_length=40, index=True)
    specimen_type: str = Field(default="serum", max_length=40)
    result_type: str = Field(default="numeric", max_length=20)  # numeric | text | coded
    validity_low: float | None = None  # plausibility limits: outside them a value is not credible
    validity_high: float | None = None
    active: bool = True


class Panel(SQLModel, table=True):
    """An orderable group of tests (CBC, lipid profile)."""

    code: str = Field(primary_key=True, max_length=32)
    name_en: str = Field(max_length=200)
    name_vi: str = Field(max_length=200)
    loinc: str = Field(default="", max_length=20)


class PanelMember(SQLModel, table=True):
    __tablename__ = "panel_member"

    panel_code: str = Field(foreign_key="panel.code", primary_key=True, max_length=32)
    test_code: str = Field(foreign_key="test_definition.code", primary_key=True, max_length=32)
    position: int = 0


class ReferenceRange(SQLModel, table=True):
    """Reference and critical limits by sex and age band, optionally per instrument.

    The most specific matching range wins (instrument over none, sex over any, narrower age band).
    Ages are in days so neonatal bands can be expressed.
    """

    __tablename__ = "reference_range"

    id: int | None = Field(default=None, primary_key=True)
    test_code: str = Field(foreign_key="test_definition.code", index=True, max_length=32)
    sex: str = Field(default="U", max_length=1)  # M | F | U (any)
    age_min_days: int = 0
    age_max_days: int | None = None  # exclusive; None = no upper bound
    instrument: str | None = Field(default=None, max_length=64)
    low: float | None = None
    high: float | None = None
    critical_low: float | None = None
    critical_high: float | None = None
    text: str = Field(default="", max_length=100)  # qualitative normal, e.g. "Negative"
