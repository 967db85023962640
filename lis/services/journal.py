"""The raw message journal and the unmatched queue, as the instruments page shows them.

Reprocessing goes through :meth:`lis.services.ingest.IngestService.process` (idempotent);
:func:`assign_to_specimen` files an unmatched observation under a registered specimen by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from lis.models import Order, OrderTest, RawMessage, RawMessageStatus, Result, ResultStatus, Specimen, utcnow
from lis.services import audit


class AssignError(ValueError):
    """The observation cannot be filed under that specimen; the message says why."""


@dataclass(frozen=True)
class RawSummary:
    id: int
    instrument: str
    protocol: str
    direction: str
    received_at: datetime
    size: int
    status: str
    error: str
    result_count: int
    control_id: str


def _summary(m: RawMessage) -> RawSummary:
    assert m.id is not None
    return RawSummary(m.id, m.instrument, m.protocol, m.direction, m.received_at, m.size, m.status, m.error,
                      m.result_count, m.control_id)


def list_raw(session: Session, *, instrument: str | None = None, statuses: tuple[str, ...] = (),
             limit: int = 100, offset: int = 0) -> tuple[list[RawSummary], int]:
    """Newest first, with the total count for paging (the data bytes are not loaded)."""
    stmt = select(RawMessage)
    count = select(func.count()).select_from(RawMessage)
    if instrument:
        stmt = stmt.where(RawMessage.instrument == instrument)
        count = count.where(RawMessage.instrument == instrument)
    if statuses:
        stmt = stmt.where(col(RawMessage.status).in_(statuses))
        count = count.where(col(RawMessage.status).in_(statuses))
    rows = session.exec(stmt.order_by(col(RawMessage.id).desc()).offset(offset).limit(limit)).all()
    return [_summary(m) for m in rows], int(session.exec(count).one())


def raw_data(session: Session, raw_id: int) -> tuple[RawSummary, bytes] | None:
    message = session.get(RawMessage, raw_id)
    return None if message is None else (_summary(message), message.data)


def quarantine_counts(session: Session) -> dict[str, int]:
    """Instrument → journal entries in error (quarantined)."""
    rows = session.exec(select(RawMessage.instrument, func.count()).where(
        RawMessage.status == RawMessageStatus.ERROR).group_by(RawMessage.instrument)).all()
    return {name: int(n) for name, n in rows}


def unmatched_results(session: Session, limit: int = 200) -> list[Result]:
    return list(session.exec(select(Result).where(Result.status == ResultStatus.UNMATCHED)
                             .order_by(col(Result.id).desc()).limit(limit)).all())


def assign_to_specimen(session: Session, result_id: int, barcode: str, actor: str) -> Result:
    """File an unmatched patient observation under a registered specimen whose order has that test."""
    result = session.get(Result, result_id)
    if result is None:
        raise AssignError(f"result {result_id} does not exist")
    if result.status != ResultStatus.UNMATCHED or result.is_qc:
        raise AssignError(f"result {result_id} is not an unmatched patient result")
    if result.test_code is None:
        raise AssignError(f"instrument code {result.instrument_test_code!r} is not mapped to a LIS test: "
                          "add a test code map first")
    specimen = session.exec(select(Specimen).where(Specimen.barcode == barcode.strip())).first()
    if specimen is None:
        raise AssignError(f"specimen {barcode.strip()!r} is not registered")
    order = session.get(Order, specimen.order_id)
    assert order is not None
    order_test = session.exec(select(OrderTest).where(
        OrderTest.order_id == order.id, OrderTest.test_code == result.test_code,
        OrderTest.status != "cancelled")).first()
    if order_test is None:
        raise AssignError(f"test {result.test_code} was not ordered for specimen {specimen.barcode}")
    before = {"accession": result.accession, "status": result.status, "reason": result.unmatched_reason}
    result.accession, result.specimen_id, result.patient_id = specimen.barcode, specimen.id, order.patient_id
    result.order_test_id, result.status, result.unmatched_reason = order_test.id, ResultStatus.RECEIVED, ""
    result.version += 1
    result.updated_by, result.updated_at = actor, utcnow()
    if order_test.status == "ordered":
        order_test.status = "resulted"
    if specimen.status == "expected":
        specimen.status, specimen.received_at = "received", utcnow()
    session.add(result)
    audit.record(session, actor, "result.assign", "result", result_id, before=before,
                 after={"accession": specimen.barcode, "status": result.status})
    return result
