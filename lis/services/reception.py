"""Specimen reception (barcode scan at the lab counter) and the recent-orders list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from lis.models import Order, OrderTest, Patient, Specimen, utcnow
from lis.services import audit


class ReceptionError(ValueError):
    """The scanned specimen cannot be received; the message says why."""


def receive_specimen(session: Session, barcode: str, actor: str) -> Specimen:
    """Mark a registered specimen as received in the lab (idempotent: a second scan changes nothing)."""
    barcode = barcode.strip()
    if not barcode:
        raise ReceptionError("scan or type a specimen barcode")
    specimen = session.exec(select(Specimen).where(Specimen.barcode == barcode)).first()
    if specimen is None:
        raise ReceptionError(f"specimen {barcode!r} is not registered: create the order first")
    if specimen.status == "rejected":
        raise ReceptionError(f"specimen {barcode!r} was rejected: {specimen.reject_reason}")
    if specimen.status != "received":
        specimen.status, specimen.received_at = "received", utcnow()
        session.add(specimen)
        audit.record(session, actor, "specimen.receive", "specimen", barcode)
    return specimen


@dataclass
class OrderSummary:
    order: Order
    patient: Patient
    barcodes: list[str]
    specimen_status: list[str]
    tests: list[str]


def recent_orders(session: Session, limit: int = 50) -> list[OrderSummary]:
    rows = session.exec(select(Order, Patient).join(Patient, col(Order.patient_id) == Patient.id)
                        .order_by(col(Order.id).desc()).limit(limit)).all()
    ids = [o.id for o, _ in rows]
    specimens: dict[int, list[Specimen]] = {}
    for s in session.exec(select(Specimen).where(col(Specimen.order_id).in_(ids))).all():
        specimens.setdefault(s.order_id, []).append(s)
    tests: dict[int, list[str]] = {}
    for order_id, code in session.exec(select(OrderTest.order_id, OrderTest.test_code)
                                       .where(col(OrderTest.order_id).in_(ids))).all():
        tests.setdefault(order_id, []).append(code)
    out = []
    for order, patient in rows:
        assert order.id is not None
        specs = specimens.get(order.id, [])
        out.append(OrderSummary(order, patient, [s.barcode for s in specs], [s.status for s in specs],
                                tests.get(order.id, [])))
    return out
