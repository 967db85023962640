"""Pending orders for analyser host queries and order downloads (the LIS side; no driver knowledge here).

An analyser asks "what do I run on specimen X?" (ASTM LIS2-A2 Q record, HL7 ``QBP^Q11`` / ``QRY^Q02``) or the
LIS pushes work orders to it. This module answers with what the LIS knows: for each known specimen its patient,
priority and the tests still to be done, as **LIS test codes**, plus the lab's own instrument code for each test
when a :class:`~lis.models.TestCodeMap` row exists for that instrument. Translating the remaining LIS codes into
instrument codes through the analyser profile is the drivers' business (ARCHITECTURE.md: ``lis`` never imports
``drivers``).

A test is pending when its order test is ``ordered`` (not resulted, not cancelled) and its order is neither
``completed`` nor ``cancelled``; a specimen that is ``rejected`` has nothing pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, col, select

from lis.models import Order, OrderTest, Patient, Specimen, TestCodeMap

_CLOSED_ORDERS = ("completed", "cancelled")


@dataclass(frozen=True, slots=True)
class PendingTest:
    """One test to run: the LIS code and, when the lab mapped it for this instrument, the instrument code."""

    test_code: str
    instrument_code: str | None = None


@dataclass(frozen=True, slots=True)
class PendingSpecimen:
    """A specimen with tests still to run, and what an order download needs about its patient."""

    specimen_id: str
    tests: tuple[PendingTest, ...]
    patient_id: str = ""  # hospital MRN, else CCCD, else the LIS patient number
    patient_name: str = ""
    sex: str = "U"
    birth_date: date | None = None
    priority: str = "R"  # LIS2-A2 O-6 / HL7 TQ1-9: S stat, R routine
    specimen_type: str = ""
    collected_at: datetime | None = None


@dataclass(slots=True)
class PendingOrders:
    """The answer to one host query: known specimens (possibly with no test left) and unknown specimen ids."""

    found: list[PendingSpecimen] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _lab_codes(session: Session, instrument_name: str) -> dict[str, str]:
    """LIS test code -> the lab's instrument code for ``instrument_name`` (first mapping wins)."""
    rows = session.exec(
        select(TestCodeMap.test_code, TestCodeMap.instrument_code)
        .where(TestCodeMap.instrument == instrument_name)
        .order_by(col(TestCodeMap.id))
    ).all()
    found: dict[str, str] = {}
    for test_code, instrument_code in rows:
        found.setdefault(test_code, instrument_code)
    return found


def _patient_id(patient: Patient) -> str:
    return patient.mrn or patient.national_id or str(patient.id or "")


def pending_orders(session: Session, instrument_name: str, specimen_ids: Sequence[str]) -> PendingOrders:
    """Pending tests of each queried specimen id (in the order asked; duplicates and blanks dropped)."""
    wanted = list(dict.fromkeys(s.strip() for s in specimen_ids if s and s.strip()))
    result = PendingOrders()
    if not wanted:
        return result
    specimens = {s.barcode: s for s in session.exec(select(Specimen).where(col(Specimen.barcode).in_(wanted))).all()}
    lab_codes = _lab_codes(session, instrument_name)
    for barcode in wanted:
        specimen = specimens.get(barcode)
        if specimen is None:
            result.unknown.append(barcode)
            continue
        result.found.append(_describe(session, specimen, lab_codes))
    return result


def _describe(session: Session, specimen: Specimen, lab_codes: dict[str, str]) -> PendingSpecimen:
    order = session.get(Order, specimen.order_id)
    patient = session.get(Patient, order.patient_id) if order is not None else None
    tests: list[PendingTest] = []
    if order is not None and order.status not in _CLOSED_ORDERS and specimen.status != "rejected":
        rows = session.exec(
            select(OrderTest).where(OrderTest.order_id == order.id, OrderTest.status == "ordered")
            .order_by(col(OrderTest.id))
        ).all()
        seen: set[str] = set()
        for ot in rows:
            if ot.specimen_id not in (None, specimen.id) or ot.test_code in seen:
                continue
            seen.add(ot.test_code)
            tests.append(PendingTest(ot.test_code, lab_codes.get(ot.test_code)))
    return PendingSpecimen(
        specimen_id=specimen.barcode,
        tests=tuple(tests),
        patient_id=_patient_id(patient) if patient is not None else "",
        patient_name=patient.name if patient is not None else "",
        sex=(patient.sex if patient is not None else "U") or "U",
        birth_date=patient.birth_date if patient is not None else None,
        priority="S" if order is not None and order.priority == "stat" else "R",
        specimen_type=specimen.specimen_type,
        collected_at=specimen.collected_at,
    )


def pending_specimen_ids(session: Session, limit: int = 100) -> list[str]:
    """Specimen ids (oldest order first) that still have at least one test to run: for push mode and simulators."""
    rows = session.exec(
        select(Specimen.barcode)
        .join(Order, col(Order.id) == Specimen.order_id)
        .join(OrderTest, col(OrderTest.order_id) == Order.id)
        .where(col(Order.status).not_in(_CLOSED_ORDERS), OrderTest.status == "ordered",
               Specimen.status != "rejected")
        .group_by(col(Specimen.id), col(Specimen.barcode))
        .order_by(col(Specimen.id))
        .limit(limit)
    ).all()
    return list(rows)


def unknown_specimens(session: Session, specimen_ids: Sequence[str]) -> list[str]:
    """The ids among ``specimen_ids`` that no specimen in the LIS carries (for HL7 AE on unknown specimens)."""
    wanted = list(dict.fromkeys(s for s in specimen_ids if s))
    if not wanted:
        return []
    known = set(session.exec(select(Specimen.barcode).where(col(Specimen.barcode).in_(wanted))).all())
    return [s for s in wanted if s not in known]
