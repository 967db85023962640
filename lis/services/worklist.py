"""The validation worklist query: results waiting for a person, grouped by specimen, paged on the server.

One page costs three queries whatever the size of the backlog (the count, the page with its joins —
patient, order priority, test, evaluation, previous result — and the QC holds of the page's rows), so a
backlog of 10,000+ results opens as fast as one of ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, case, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from lis.models import Order, OrderTest, Patient, Result, ResultEvaluation, ResultStatus, TestDefinition
from lis.services.qc_holds import held_results

#: what "waiting for a person" means: not finished (``received`` = arrived, evaluation under way)
OPEN_STATUSES = (ResultStatus.RECEIVED, ResultStatus.PENDING, ResultStatus.AUTOVERIFIED,
                 ResultStatus.TECHNICALLY_VALIDATED, ResultStatus.RERUN_REQUESTED)
#: a technician's default view: what still needs technical validation (release is a validator's step)
TECHNICIAN_STATUSES = (ResultStatus.RECEIVED, ResultStatus.PENDING, ResultStatus.RERUN_REQUESTED)
NORMAL_INSTRUMENT_FLAGS = ("", "N")  # ASTM R-7 / HL7 OBX-8 "N" = normal
#: results never shown as "the previous result"
NOT_PREVIOUS = (ResultStatus.REJECTED, ResultStatus.AMENDED, ResultStatus.RERUN_REQUESTED, ResultStatus.UNMATCHED)
FLAG_FILTERS = ("abnormal", "critical", "delta", "instrument")


@dataclass
class WorklistFilter:
    statuses: Sequence[str] = OPEN_STATUSES
    section: str = ""
    instrument: str = ""
    priority: str = ""  # "" | stat | routine
    flag: str = ""  # "" | abnormal | critical | delta | instrument
    specimen: str = ""
    since: datetime | None = None
    until: datetime | None = None
    stat_first: bool = True


@dataclass
class WorklistRow:
    id: int
    version: int
    status: str
    status_reason: str
    specimen: str
    patient_id: int | None
    patient_name: str
    priority: str
    section: str
    test_code: str
    test_name_vi: str
    test_name_en: str
    instrument: str
    value: str
    units: str
    reference_range: str
    lis_flags: str
    instrument_flags: str
    critical: bool
    received_at: datetime
    comment: str
    reasons: str = ""
    previous_value: str | None = None
    previous_at: datetime | None = None
    delta_change: float | None = None
    delta_ok: bool | None = None
    held: str | None = None
    validated_by: str = ""
    revision: int = 0
    value_numeric: float | None = None


@dataclass
class WorklistPage:
    rows: list[WorklistRow] = field(default_factory=list)
    total: int = 0
    offset: int = 0
    limit: int = 100


def _conditions(flt: WorklistFilter) -> list[object]:
    conditions: list[object] = [col(Result.is_qc).is_(False), col(Result.status).in_(list(flt.statuses))]
    if flt.section:
        conditions.append(TestDefinition.section == flt.section)
    if flt.instrument:
        conditions.append(Result.instrument == flt.instrument)
    if flt.priority:
        conditions.append(Order.priority == flt.priority)
    if flt.specimen:
        conditions.append(Result.accession == flt.specimen.strip())
    if flt.since is not None:
        conditions.append(col(Result.received_at) >= flt.since)
    if flt.until is not None:
        conditions.append(col(Result.received_at) < flt.until)
    if flt.flag == "abnormal":
        conditions.append(or_(Result.lis_flags != "", col(Result.critical)))
    elif flt.flag == "critical":
        conditions.append(col(Result.critical))
    elif flt.flag == "delta":
        conditions.append(col(ResultEvaluation.delta_ok).is_(False))
    elif flt.flag == "instrument":
        conditions.append(col(Result.abnormal_flags).not_in(NORMAL_INSTRUMENT_FLAGS))
    return conditions


def _joined(stmt: object, flt: WorklistFilter) -> object:
    stmt = stmt.join(TestDefinition, col(Result.test_code) == TestDefinition.code, isouter=True)  # type: ignore[attr-defined]
    stmt = stmt.join(OrderTest, col(Result.order_test_id) == OrderTest.id, isouter=True)
    stmt = stmt.join(Order, col(OrderTest.order_id) == Order.id, isouter=True)
    if flt.flag == "delta":
        stmt = stmt.join(ResultEvaluation, col(ResultEvaluation.result_id) == Result.id, isouter=True)
    return stmt


def count(session: Session, flt: WorklistFilter) -> int:
    stmt = _joined(select(func.count()).select_from(Result), flt)
    return int(session.exec(stmt.where(*_conditions(flt))).one())  # type: ignore[attr-defined]


def page(session: Session, flt: WorklistFilter, *, offset: int = 0, limit: int = 100) -> WorklistPage:
    """One page of the worklist: STAT first (optional), then specimens in arrival order, tests in order."""
    previous = aliased(Result)
    stmt = select(Result, Patient.name, Order.priority, TestDefinition.section, TestDefinition.name_vi,
                  TestDefinition.name_en, ResultEvaluation.reasons, ResultEvaluation.delta_change,
                  ResultEvaluation.delta_ok, ResultEvaluation.range_text, previous.value, previous.received_at)
    stmt = stmt.select_from(Result)
    stmt = _joined(stmt, WorklistFilter(**{**flt.__dict__, "flag": ""}))
    stmt = stmt.join(Patient, col(Result.patient_id) == Patient.id, isouter=True)  # type: ignore[attr-defined]
    stmt = stmt.join(ResultEvaluation, col(ResultEvaluation.result_id) == Result.id, isouter=True)
    stmt = stmt.join(previous, and_(col(previous.id) == ResultEvaluation.delta_previous_id), isouter=True)
    order = [Result.accession, col(Result.id)]
    first_seen = func.min(Result.received_at).over(partition_by=Result.accession)
    order = [first_seen, *order]
    if flt.stat_first:
        order.insert(0, case((Order.priority == "stat", 0), else_=1))
    stmt = stmt.where(*_conditions(flt)).order_by(*order).offset(offset).limit(limit)
    out = WorklistPage(total=count(session, flt), offset=offset, limit=limit)
    for (r, name, priority, section, name_vi, name_en, reasons, delta_change, delta_ok, range_text, prev_value,
         prev_at) in session.exec(stmt).all():  # type: ignore[call-overload]
        assert r.id is not None
        out.rows.append(WorklistRow(
            id=r.id, version=r.version, status=r.status, status_reason=r.status_reason, specimen=r.accession,
            patient_id=r.patient_id, patient_name=name or "", priority=priority or "routine", section=section or "",
            test_code=r.test_code or r.instrument_test_code, test_name_vi=name_vi or "", test_name_en=name_en or "",
            instrument=r.instrument, value=r.value, units=r.units, reference_range=range_text or r.reference_range,
            lis_flags=r.lis_flags, instrument_flags=r.abnormal_flags, critical=r.critical, received_at=r.received_at,
            comment=r.comment, reasons=reasons or "", previous_value=prev_value, previous_at=prev_at,
            delta_change=delta_change, delta_ok=delta_ok, validated_by=r.validated_by, revision=r.revision,
            value_numeric=r.value_numeric))
    held = held_results(session, [row.id for row in out.rows]) if out.rows else {}
    for row in out.rows:
        row.held = held.get(row.id)
    _fill_previous(session, out.rows)
    return out


def _fill_previous(session: Session, rows: list[WorklistRow]) -> None:
    """The patient's previous result of the same test beside each value (whether or not the test has a delta
    rule); the delta is the evaluation's when it made one, else the plain difference. One query per page."""
    wanted = [r for r in rows if r.patient_id is not None and r.previous_value is None]
    if not wanted:
        return
    patients = sorted({r.patient_id for r in wanted if r.patient_id is not None})
    codes = sorted({r.test_code for r in wanted})
    series: dict[tuple[int, str], list[tuple[datetime, int, str, float | None]]] = {}
    for pid, code, rid, value, number, at in session.exec(
        select(Result.patient_id, Result.test_code, Result.id, Result.value, Result.value_numeric, Result.received_at)
        .where(col(Result.patient_id).in_(patients), col(Result.test_code).in_(codes), col(Result.is_qc).is_(False),
               col(Result.status).not_in(NOT_PREVIOUS))
    ).all():
        series.setdefault((int(pid), str(code)), []).append((at, int(rid), str(value), number))
    for row in wanted:
        earlier = [item for item in series.get((row.patient_id or 0, row.test_code), ())
                   if (item[0], item[1]) < (row.received_at, row.id)]
        if not earlier:
            continue
        at, _, value, number = max(earlier)
        row.previous_value, row.previous_at = value, at
        if row.delta_change is None and number is not None and row.value_numeric is not None:
            row.delta_change = row.value_numeric - number


def sections(session: Session) -> list[str]:
    return sorted(s for s in session.exec(select(TestDefinition.section).distinct()).all() if s)


def released(session: Session, *, limit: int = 100, specimen: str = "") -> list[WorklistRow]:
    """Recently released results (for amendment after release)."""
    flt = WorklistFilter(statuses=(ResultStatus.RELEASED,), specimen=specimen, stat_first=False)
    return page(session, flt, limit=limit).rows


def normal_ids(session: Session, flt: WorklistFilter, limit: int = 5000) -> list[tuple[int, int, str]]:
    """(id, version, status) of every result matching the filter with no flag at all: the "validate all normal" set."""
    unflagged = WorklistFilter(**{**flt.__dict__, "flag": ""})
    stmt = _joined(select(Result.id, Result.version, Result.status).select_from(Result), unflagged)
    stmt = stmt.join(ResultEvaluation, col(ResultEvaluation.result_id) == Result.id, isouter=True)  # type: ignore[attr-defined]
    stmt = stmt.where(*_conditions(unflagged), Result.lis_flags == "",
                      col(Result.critical).is_(False),
                      col(Result.abnormal_flags).in_(NORMAL_INSTRUMENT_FLAGS),
                      or_(col(ResultEvaluation.delta_ok).is_(None), col(ResultEvaluation.delta_ok).is_(True)))
    rows = [(int(i), int(v), str(s)) for i, v, s in session.exec(stmt.order_by(col(Result.id)).limit(limit)).all()]
    held = held_results(session, [i for i, _, _ in rows])
    return [row for row in rows if row[0] not in held]
