"""What one released report says: an order, its patient and visit, and its released results, read once.

The HL7 ORU^R01, the FHIR Bundle, the signed PDF and the XML4 export are all built from a
:class:`ReportData`, so they cannot disagree. Results are never edited in place after release (an amendment
is a new revision), so building a report again from the same result ids gives the same content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, col, select

from lis.models import Encounter, Order, OrderTest, Patient, Result, Specimen, TestDefinition, User, utcnow


class ReportDataError(LookupError):
    """The report cannot be assembled (order or results missing): a data problem to fix, not a retry."""


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One analyte of the report (one OBX / Observation / PDF row / XML4 record)."""

    result_id: int
    revision: int
    test_code: str
    panel_code: str | None
    loinc: str
    name_vi: str
    name_en: str
    value: str
    value_numeric: float | None
    units: str
    reference_range: str
    flags: str
    corrected: bool
    observed_at: datetime | None
    released_at: datetime | None
    comment: str
    specimen_barcode: str
    validator: str


@dataclass(frozen=True, slots=True)
class SpecimenInfo:
    barcode: str
    specimen_type: str
    collected_at: datetime | None
    received_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report needs; ``version`` > 1 means amended or corrected."""

    order_id: int
    placer_number: str | None
    filler_number: str
    priority: str
    ordering_clinician: str
    department: str
    ordered_at: datetime
    patient_id: int
    patient_name: str
    national_id: str | None
    insurance_number: str | None
    mrn: str | None
    sex: str
    birth_date: date | None
    address: str
    visit_code: str | None
    visit_kind: str | None
    version: int
    correction: bool
    validator: str
    validator_name: str
    released_at: datetime
    specimens: tuple[SpecimenInfo, ...]
    lines: tuple[ReportLine, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        """FHIR DiagnosticReport.status: final, then amended (added results) or corrected (changed ones)."""
        if self.correction:
            return "corrected"
        return "final" if self.version == 1 else "amended"


def validator_of(result: Result) -> str:
    """The user responsible for the released value (the workflow's releasing validator when it records one)."""
    for attr in ("released_by", "validated_by", "updated_by"):
        value = getattr(result, attr, None)
        if value:
            return str(value)
    return ""


def released_time(result: Result) -> datetime | None:
    for attr in ("released_at", "updated_at"):
        value = getattr(result, attr, None)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return None


def order_of_result(session: Session, result: Result) -> int | None:
    """The order a result belongs to: through its ordered test, else its specimen."""
    if result.order_test_id is not None:
        ot = session.get(OrderTest, result.order_test_id)
        if ot is not None:
            return ot.order_id
    if result.specimen_id is not None:
        sp = session.get(Specimen, result.specimen_id)
        if sp is not None:
            return sp.order_id
    return None


def released_results_of_order(session: Session, order_id: int, released_status: str = "released") -> list[Result]:
    """The current released, non-QC results of an order (one per test: the newest revision)."""
    stmt = (
        select(Result)
        .join(OrderTest, col(Result.order_test_id) == OrderTest.id)
        .where(OrderTest.order_id == order_id, Result.status == released_status, col(Result.is_qc).is_(False))
        .order_by(col(Result.id))
    )
    return list(session.exec(stmt).all())


def load_report(
    session: Session,
    order_id: int,
    result_ids: Iterable[int],
    *,
    corrected_ids: Iterable[int] = (),
    version: int = 1,
    correction: bool = False,
) -> ReportData:
    """Assemble the report of ``order_id`` carrying ``result_ids`` (raises :class:`ReportDataError`)."""
    order = session.get(Order, order_id)
    if order is None:
        raise ReportDataError(f"order {order_id} does not exist")
    patient = session.get(Patient, order.patient_id)
    if patient is None:
        raise ReportDataError(f"patient {order.patient_id} of order {order.filler_number} does not exist")
    ids = sorted(set(result_ids))
    results = list(session.exec(select(Result).where(col(Result.id).in_(ids)).order_by(col(Result.id))).all())
    if not results:
        raise ReportDataError(f"order {order.filler_number}: no results to report")
    corrected = set(corrected_ids)
    codes = {r.test_code for r in results if r.test_code}
    tests = {t.code: t for t in session.exec(select(TestDefinition).where(col(TestDefinition.code).in_(codes))).all()}
    ots = {
        ot.id: ot
        for ot in session.exec(select(OrderTest).where(OrderTest.order_id == order_id)).all()
    }
    specimens = list(session.exec(select(Specimen).where(Specimen.order_id == order_id).order_by(col(Specimen.id))))
    barcode_by_id = {s.id: s.barcode for s in specimens}
    encounter = session.get(Encounter, order.encounter_id) if order.encounter_id else None
    lines = []
    for r in results:
        test = tests.get(r.test_code or "")
        ot = ots.get(r.order_test_id) if r.order_test_id else None
        lines.append(ReportLine(
            result_id=r.id or 0, revision=r.revision, test_code=r.test_code or r.instrument_test_code,
            panel_code=ot.panel_code if ot else None, loinc=r.loinc or (test.loinc if test else ""),
            name_vi=test.name_vi if test else (r.test_code or ""),
            name_en=test.name_en if test else (r.test_code or ""),
            value=r.value, value_numeric=r.value_numeric, units=r.units or (test.unit if test else ""),
            reference_range=r.reference_range, flags=r.abnormal_flags, corrected=(r.id in corrected),
            observed_at=r.observed_at, released_at=released_time(r), comment=r.comment,
            specimen_barcode=barcode_by_id.get(r.specimen_id, r.accession) if r.specimen_id else r.accession,
            validator=validator_of(r),
        ))
    validators = [line.validator for line in lines if line.validator]
    validator = validators[-1] if validators else ""
    user = session.exec(select(User).where(User.username == validator)).first() if validator else None
    released = [t for t in (line.released_at for line in lines) if t is not None]
    return ReportData(
        order_id=order_id, placer_number=order.placer_number, filler_number=order.filler_number,
        priority=order.priority, ordering_clinician=order.ordering_clinician, department=order.department,
        ordered_at=order.created_at, patient_id=patient.id or 0, patient_name=patient.name,
        national_id=patient.national_id, insurance_number=patient.insurance_number, mrn=patient.mrn,
        sex=patient.sex, birth_date=patient.birth_date, address=patient.address,
        visit_code=encounter.visit_code if encounter else None, visit_kind=encounter.kind if encounter else None,
        version=version, correction=correction, validator=validator,
        validator_name=(user.full_name or user.username) if user else validator,
        released_at=max(released) if released else utcnow(),
        specimens=tuple(SpecimenInfo(s.barcode, s.specimen_type, s.collected_at, s.received_at) for s in specimens),
        lines=tuple(lines),
    )
