"""Orders: create (manual, API, EMR), with the patient upserted by CCCD and panels expanded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, select

from lis.models import Order, OrderTest, Panel, Patient, Specimen, TestDefinition, utcnow
from lis.services import audit
from lis.services.catalog import CatalogSnapshot
from lis.services.patients import PatientData, upsert_patient


class OrderError(ValueError):
    """An order cannot be created as asked; the message says what to fix."""


class OrderConflict(OrderError):
    """The order clashes with existing data (e.g. a specimen barcode already used)."""


@dataclass
class OrderRequest:
    patient: PatientData
    specimen_id: str
    tests: list[str]
    priority: str = "routine"
    placer_number: str | None = None
    ordering_clinician: str = ""
    department: str = ""
    clinical_info: str = ""
    specimen_type: str | None = None
    collected_at: datetime | None = None
    source: str = "api"
    extra_specimens: dict[str, str] = field(default_factory=dict)  # barcode -> specimen type (future)


def expand_tests(catalog: CatalogSnapshot, codes: list[str]) -> list[tuple[str, str | None]]:
    """Order codes → [(test code, panel code)]; panels expand to their members; unknown codes refused."""
    out: dict[str, str | None] = {}
    unknown = []
    for code in codes:
        if code in catalog.panels:
            for member in catalog.panels[code]:
                out.setdefault(member, code)
        elif code in catalog.by_code:
            out.setdefault(code, None)
        else:
            unknown.append(code)
    if unknown:
        raise OrderError(f"unknown test or panel code(s): {', '.join(unknown)}")
    if not out:
        raise OrderError("an order needs at least one test")
    return list(out.items())


def new_filler_number(today: date | None = None) -> str:
    """``L`` + ``yymmdd`` + 8 random hex digits: unguessable, sortable by day (HL7 ORC-3 / OBR-3 filler number)."""
    day = (today or utcnow().date()).strftime("%y%m%d")
    return f"L{day}{secrets.token_hex(4).upper()}"


def unused_filler_number(session: Session) -> str:
    """A filler number no order has yet (random numbers collide now and then: a lab makes thousands a day)."""
    for _ in range(20):
        candidate = new_filler_number()
        if session.exec(select(Order.id).where(Order.filler_number == candidate)).first() is None:
            return candidate
    raise OrderError("could not draw an unused filler number")  # 20 collisions in a row: never in practice


def create_order(session: Session, catalog: CatalogSnapshot, request: OrderRequest, actor: str) -> Order:
    """Create patient (or update), order, specimen and ordered tests in the caller's transaction."""
    if request.priority not in ("routine", "stat"):
        raise OrderError(f"priority must be routine or stat, not {request.priority!r}")
    barcode = request.specimen_id.strip()
    if not barcode or len(barcode) > 64 or any(c in barcode for c in "|\\^&~\r\n"):
        raise OrderError("specimen_id must be 1-64 characters without | \\ ^ & ~ or line breaks")
    items = expand_tests(catalog, request.tests)
    if session.exec(select(Specimen).where(Specimen.barcode == barcode)).first() is not None:
        raise OrderConflict(f"specimen id {barcode!r} is already used by another order")
    patient = upsert_patient(session, request.patient, actor)
    assert patient.id is not None
    order = Order(
        patient_id=patient.id, placer_number=request.placer_number, filler_number=unused_filler_number(session),
        ordering_clinician=request.ordering_clinician, department=request.department, priority=request.priority,
        clinical_info=request.clinical_info, source=request.source, created_by=actor,
    )
    session.add(order)
    session.flush()
    assert order.id is not None
    first_type = catalog.by_code[items[0][0]].specimen_type
    specimen = Specimen(barcode=barcode, order_id=order.id, specimen_type=request.specimen_type or first_type,
                        collected_at=request.collected_at)
    session.add(specimen)
    session.flush()
    for test_code, panel in items:
        session.add(OrderTest(order_id=order.id, specimen_id=specimen.id, test_code=test_code, panel_code=panel))
    audit.record(session, actor, "order.create", "order", order.id,
                 after={"filler_number": order.filler_number, "specimen": barcode, "tests": request.tests,
                        "priority": request.priority, "patient_id": patient.id})
    return order


@dataclass
class OrderView:
    """An order with its patient, specimens and tests, for the API."""

    order: Order
    patient: Patient
    specimens: list[Specimen]
    tests: list[OrderTest]

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.order.id,
            "filler_number": self.order.filler_number,
            "placer_number": self.order.placer_number,
            "priority": self.order.priority,
            "status": self.order.status,
            "ordering_clinician": self.order.ordering_clinician,
            "department": self.order.department,
            "created_at": self.order.created_at.isoformat(),
            "patient": {
                "id": self.patient.id,
                "national_id": self.patient.national_id,
                "name": self.patient.name,
                "sex": self.patient.sex,
                "birth_date": self.patient.birth_date.isoformat() if self.patient.birth_date else None,
            },
            "specimens": [
                {"specimen_id": s.barcode, "type": s.specimen_type, "status": s.status,
                 "received_at": s.received_at.isoformat() if s.received_at else None}
                for s in self.specimens
            ],
            "tests": [{"code": t.test_code, "panel": t.panel_code, "status": t.status} for t in self.tests],
        }


def load_order(session: Session, order_id: int) -> OrderView | None:
    order = session.get(Order, order_id)
    if order is None:
        return None
    patient = session.get(Patient, order.patient_id)
    assert patient is not None
    specimens = list(session.exec(select(Specimen).where(Specimen.order_id == order_id)).all())
    tests = list(session.exec(select(OrderTest).where(OrderTest.order_id == order_id).order_by(OrderTest.id)).all())
    return OrderView(order, patient, specimens, tests)


def known_codes(session: Session) -> set[str]:
    return set(session.exec(select(TestDefinition.code)).all()) | set(session.exec(select(Panel.code)).all())
