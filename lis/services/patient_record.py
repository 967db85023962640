"""A patient's record for the web: find by name/CCCD/barcode, orders, cumulative results per test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import Order, OrderTest, Patient, Result, ResultStatus, Specimen
from lis.services.patients import search_patients

# what a clinician may see in the cumulative table: results someone stands behind
REPORTABLE = (ResultStatus.RELEASED, ResultStatus.TECHNICALLY_VALIDATED, ResultStatus.AUTOVERIFIED)


def find_patients(session: Session, query: str, limit: int = 50) -> list[Patient]:
    """Name (accent-insensitive), CCCD, insurance, hospital id, or a specimen barcode."""
    query = query.strip()
    found = search_patients(session, query, limit=limit)
    if query and not found:
        specimen = session.exec(select(Specimen).where(Specimen.barcode == query)).first()
        if specimen is not None:
            order = session.get(Order, specimen.order_id)
            patient = session.get(Patient, order.patient_id) if order else None
            found = [patient] if patient else []
    return found


@dataclass
class CumulativeTable:
    """Tests (rows) × specimens in time order (columns); ``series`` feeds the trend chart."""

    columns: list[tuple[str, datetime]] = field(default_factory=list)  # (barcode, time)
    rows: dict[str, dict[str, Result]] = field(default_factory=dict)  # test -> barcode -> result
    units: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)


def cumulative(session: Session, patient_id: int, *, include_pending: bool = False,
               limit: int = 2000) -> CumulativeTable:
    statuses = list(REPORTABLE) + ([ResultStatus.RECEIVED, ResultStatus.PENDING] if include_pending else [])
    results = session.exec(
        select(Result).where(Result.patient_id == patient_id, col(Result.status).in_(statuses),
                             col(Result.is_qc).is_(False))
        .order_by(col(Result.received_at)).limit(limit)
    ).all()
    table = CumulativeTable()
    seen: dict[str, datetime] = {}
    for r in results:
        code = r.test_code or r.instrument_test_code
        at = r.observed_at or r.received_at
        seen.setdefault(r.accession, at)
        table.rows.setdefault(code, {})[r.accession] = r
        table.units.setdefault(code, r.units)
        if r.value_numeric is not None:
            table.series.setdefault(code, []).append((at, r.value_numeric))
    table.columns = sorted(seen.items(), key=lambda item: item[1])
    return table


@dataclass
class OrderLine:
    order: Order
    specimens: list[Specimen]
    tests: list[str]


def patient_orders(session: Session, patient_id: int, limit: int = 50) -> list[OrderLine]:
    orders = session.exec(select(Order).where(Order.patient_id == patient_id)
                          .order_by(col(Order.created_at).desc()).limit(limit)).all()
    out = []
    for order in orders:
        specimens = list(session.exec(select(Specimen).where(Specimen.order_id == order.id)).all())
        tests = list(session.exec(select(OrderTest.test_code).where(OrderTest.order_id == order.id)).all())
        out.append(OrderLine(order, specimens, tests))
    return out
