"""Patients: upsert by national id (CCCD) or hospital id, accent-insensitive search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, and_, col, or_, select

from lis.models import Patient, utcnow
from lis.services import audit
from lis.textfold import search_key


class PatientError(ValueError):
    pass


@dataclass
class PatientData:
    name: str
    national_id: str | None = None
    sex: str = "U"
    birth_date: date | None = None
    insurance_number: str | None = None
    mrn: str | None = None
    phone: str = ""
    address: str = ""


def validate(data: PatientData) -> None:
    if not data.name.strip():
        raise PatientError("patient name is required")
    if data.sex not in ("M", "F", "U"):
        raise PatientError(f"sex must be M, F or U, not {data.sex!r}")
    if data.national_id is not None and not (data.national_id.isdigit() and len(data.national_id) in (9, 12)):
        raise PatientError("national_id (CCCD) must be 12 digits (or a 9-digit old identity card number)")
    if data.birth_date is not None and data.birth_date > utcnow().date():
        raise PatientError("birth_date is in the future")


def upsert_patient(session: Session, data: PatientData, actor: str) -> Patient:
    """Find the patient by CCCD, then hospital id; create or update demographics."""
    validate(data)
    patient = None
    if data.national_id:
        patient = session.exec(select(Patient).where(Patient.national_id == data.national_id)).first()
    if patient is None and data.mrn:
        patient = session.exec(select(Patient).where(Patient.mrn == data.mrn)).first()
    fields = {
        "name": data.name.strip(), "name_search": search_key(data.name), "sex": data.sex,
        "birth_date": data.birth_date, "national_id": data.national_id, "insurance_number": data.insurance_number,
        "mrn": data.mrn, "phone": data.phone, "address": data.address,
    }
    if patient is None:
        patient = Patient(**fields)
        session.add(patient)
        session.flush()
        audit.record(session, actor, "patient.create", "patient", patient.id or "")
        return patient
    before = {k: str(getattr(patient, k)) for k in fields if fields[k] not in (None, "")}
    changed = False
    for key, value in fields.items():
        if value not in (None, "") and getattr(patient, key) != value:
            setattr(patient, key, value)
            changed = True
    if changed:
        patient.updated_at = utcnow()
        audit.record(session, actor, "patient.update", "patient", patient.id or "", before=before)
    return patient


def search_patients(session: Session, query: str, limit: int = 50) -> list[Patient]:
    """By CCCD / insurance / hospital id (exact) or name (accent-insensitive, every word)."""
    query = query.strip()
    stmt = select(Patient).order_by(Patient.name).limit(limit)
    if query:
        conditions = [Patient.national_id == query, Patient.insurance_number == query, Patient.mrn == query]
        words = search_key(query).split()
        if words:
            conditions.append(and_(*[col(Patient.name_search).contains(w) for w in words]))
        stmt = stmt.where(or_(*conditions))
    return list(session.exec(stmt).all())
