"""Order and specimen workflow: specimen reception (barcode scan), order cancellation with a reason,
add-on tests. Each function works in the caller's transaction and writes its audit event."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import Order, OrderTest, Result, ResultStatus, Specimen, utcnow
from lis.services import audit
from lis.services.catalog import CatalogSnapshot
from lis.services.orders import OrderError, expand_tests
from lis.services.workflow.errors import InvalidDefinition, NotFound, TransitionRefused


def receive_specimen(session: Session, barcode: str, actor: str, at: datetime | None = None) -> Specimen:
    """Scan at reception: ``expected`` → ``received`` (a second scan changes nothing)."""
    specimen = session.exec(select(Specimen).where(Specimen.barcode == barcode.strip())).first()
    if specimen is None:
        raise NotFound(f"specimen {barcode!r} is not registered: check the label or enter the order first")
    order = session.get(Order, specimen.order_id)
    if order is not None and order.status == "cancelled":
        raise TransitionRefused(f"specimen {barcode!r} belongs to cancelled order {order.filler_number}: "
                                f"{order.cancel_reason}")
    if specimen.status == "rejected":
        raise TransitionRefused(f"specimen {barcode!r} was rejected: {specimen.reject_reason}")
    if specimen.status == "received":
        return specimen
    when = at or utcnow()
    if when.tzinfo is None:
        raise InvalidDefinition("received_at", "give the time with its UTC offset")
    specimen.status, specimen.received_at = "received", when
    if order is not None and order.status == "ordered":
        order.status = "in_progress"
    session.add(specimen)
    audit.record(session, actor, "specimen.receive", "specimen", barcode, after={"received_at": when.isoformat()})
    return specimen


def cancel_order(session: Session, order_id: int, reason: str, actor: str) -> Order:
    """Cancel an order: its open tests are cancelled, its unreleased results rejected with the reason.

    Refused once a result of the order is released (the report exists: amend or reject results instead).
    """
    if not reason.strip():
        raise InvalidDefinition("reason", "a reason is required to cancel an order")
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    if order.status == "cancelled":
        raise TransitionRefused(f"order {order.filler_number} is already cancelled")
    tests = list(session.exec(select(OrderTest).where(OrderTest.order_id == order_id)).all())
    test_ids = [t.id for t in tests]
    results = list(session.exec(select(Result).where(col(Result.order_test_id).in_(test_ids)))) if test_ids else []
    if any(r.status == ResultStatus.RELEASED for r in results):
        raise TransitionRefused(f"order {order.filler_number} has released results: amend or reject those "
                                "results instead of cancelling the order")
    now = utcnow()
    for t in tests:
        if t.status != "cancelled":
            t.status = "cancelled"
            session.add(t)
    open_states = (ResultStatus.RECEIVED, ResultStatus.PENDING, ResultStatus.AUTOVERIFIED,
                   ResultStatus.TECHNICALLY_VALIDATED, ResultStatus.RERUN_REQUESTED)
    rejected = []
    for r in results:
        if r.status in open_states:
            r.status, r.status_reason = ResultStatus.REJECTED, f"order cancelled: {reason.strip()}"[:2000]
            r.version += 1
            r.updated_by, r.updated_at = actor, now
            session.add(r)
            rejected.append(r.id)
    order.status, order.cancel_reason = "cancelled", reason.strip()[:400]
    session.add(order)
    audit.record(session, actor, "order.cancel", "order", order_id, after={"reason": order.cancel_reason,
                                                                          "rejected_results": rejected})
    return order


def add_tests(session: Session, catalog: CatalogSnapshot, order_id: int, codes: list[str],
              actor: str) -> list[OrderTest]:
    """Add-on tests (or panels) to an existing order, on its specimen; tests already ordered are skipped."""
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    if order.status == "cancelled":
        raise TransitionRefused(f"order {order.filler_number} is cancelled: create a new order")
    try:
        items = expand_tests(catalog, codes)
    except OrderError as exc:
        raise InvalidDefinition("tests", str(exc)) from exc
    existing = {t.test_code for t in session.exec(select(OrderTest).where(OrderTest.order_id == order_id)).all()
                if t.status != "cancelled"}
    specimen = session.exec(select(Specimen).where(Specimen.order_id == order_id).order_by(col(Specimen.id))).first()
    added = []
    for code, panel in items:
        if code in existing:
            continue
        test = OrderTest(order_id=order_id, specimen_id=specimen.id if specimen else None, test_code=code,
                         panel_code=panel)
        session.add(test)
        added.append(test)
    if added and order.status == "completed":
        order.status = "in_progress"
        session.add(order)
    session.flush()
    audit.record(session, actor, "order.add_tests", "order", order_id, after={"tests": [t.test_code for t in added]})
    return added
