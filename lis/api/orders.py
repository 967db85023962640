"""``/orders``, ``/patients``, ``/specimens``, ``/tests``: order entry and lookups."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from lis.api.deps import get_ctx, require
from lis.context import LisContext
from lis.events import OrderReceived
from lis.models import Order, Patient, Specimen, TestDefinition, User
from lis.services.orders import OrderConflict, OrderError, OrderRequest, create_order, load_order
from lis.services.patients import PatientData, PatientError, search_patients

router = APIRouter(tags=["orders"])


class PatientIn(BaseModel):
    national_id: str | None = Field(default=None, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    sex: Literal["M", "F", "U"] = "U"
    birth_date: date | None = None
    insurance_number: str | None = Field(default=None, max_length=20)
    mrn: str | None = Field(default=None, max_length=40)


class OrderIn(BaseModel):
    patient: PatientIn
    specimen_id: str = Field(min_length=1, max_length=64)
    tests: list[str] = Field(min_length=1, max_length=200)
    priority: Literal["routine", "stat"] = "routine"
    placer_number: str | None = Field(default=None, max_length=64)
    ordering_clinician: str = Field(default="", max_length=200)
    department: str = Field(default="", max_length=100)
    clinical_info: str = Field(default="", max_length=1000)
    collected_at: datetime | None = None


@router.post("/orders", status_code=status.HTTP_201_CREATED)
def post_order(body: OrderIn, ctx: LisContext = Depends(get_ctx),
               user: User = Depends(require("orders:write"))) -> dict[str, object]:
    request = OrderRequest(
        patient=PatientData(**body.patient.model_dump()), specimen_id=body.specimen_id, tests=body.tests,
        priority=body.priority, placer_number=body.placer_number, ordering_clinician=body.ordering_clinician,
        department=body.department, clinical_info=body.clinical_info, collected_at=body.collected_at,
        source="api",
    )
    try:
        with ctx.db.write() as session:
            order = create_order(session, ctx.catalog.get(), request, user.username)
            view = load_order(session, order.id or 0)
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (OrderError, PatientError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    assert view is not None
    ctx.bus.publish(OrderReceived(order.id or 0, (body.specimen_id,)))
    return view.as_dict()


@router.get("/orders")
def get_orders(
    ctx: LisContext = Depends(get_ctx), _: User = Depends(require("orders:read")),
    patient_id: int | None = None, status_: str | None = Query(default=None, alias="status"),
    specimen_id: str | None = None, limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(Order.id).order_by(col(Order.id).desc()).offset(offset).limit(limit)
        if patient_id is not None:
            stmt = stmt.where(Order.patient_id == patient_id)
        if status_:
            stmt = stmt.where(Order.status == status_)
        if specimen_id:
            stmt = stmt.join(Specimen, col(Specimen.order_id) == Order.id).where(Specimen.barcode == specimen_id)
        views = [load_order(session, oid) for oid in session.exec(stmt).all() if oid is not None]
    return [v.as_dict() for v in views if v is not None]


@router.get("/orders/{order_id}")
def get_order(order_id: int, ctx: LisContext = Depends(get_ctx),
              _: User = Depends(require("orders:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        view = load_order(session, order_id)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
    return view.as_dict()


@router.get("/specimens/{specimen_id}")
def get_specimen(specimen_id: str, ctx: LisContext = Depends(get_ctx),
                 _: User = Depends(require("orders:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        specimen = session.exec(select(Specimen).where(Specimen.barcode == specimen_id)).first()
        view = load_order(session, specimen.order_id) if specimen else None
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"specimen {specimen_id!r} not found")
    return {"specimen_id": specimen_id, "order": view.as_dict()}


def _patient_dict(p: Patient) -> dict[str, object]:
    return {"id": p.id, "national_id": p.national_id, "insurance_number": p.insurance_number, "mrn": p.mrn,
            "name": p.name, "sex": p.sex, "birth_date": p.birth_date.isoformat() if p.birth_date else None}


@router.get("/patients")
def get_patients(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("patients:read")),
                 q: str = Query(default="", max_length=200),
                 limit: int = Query(default=50, ge=1, le=500)) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return [_patient_dict(p) for p in search_patients(session, q, limit)]


@router.get("/patients/{patient_id}")
def get_patient(patient_id: int, ctx: LisContext = Depends(get_ctx),
                _: User = Depends(require("patients:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        patient = session.get(Patient, patient_id)
    if patient is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient {patient_id} not found")
    return _patient_dict(patient)


@router.get("/tests")
def get_tests(
    ctx: LisContext = Depends(get_ctx), _: User = Depends(require("catalog:read"))
) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        tests = session.exec(select(TestDefinition).order_by(TestDefinition.section, TestDefinition.code)).all()
    return [{"code": t.code, "name": t.name_en, "name_en": t.name_en, "name_vi": t.name_vi, "loinc": t.loinc,
             "unit": t.unit, "section": t.section, "specimen_type": t.specimen_type, "active": t.active}
            for t in tests]
