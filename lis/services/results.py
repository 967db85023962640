"""Result queries and the export shape (``lis results export``, ``GET /api/v1/results``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from lis.models import Patient, Result

EXPORT_FIELDS = (
    "specimen_id", "instrument", "instrument_test_code", "test_code", "loinc", "value", "units",
    "reference_range", "abnormal_flags", "result_status", "status", "is_qc", "control_lot", "observed_at",
    "patient_name", "raw_message_id",
)
API_FIELDS = ("id", "version", *EXPORT_FIELDS, "control_material", "control_level", "received_at",
              "unmatched_reason", "value_numeric", "revision", "patient_id")


@dataclass
class ResultFilter:
    specimen_id: str | None = None
    status: Sequence[str] | None = None
    instrument: str | None = None
    patient_id: int | None = None
    test_code: str | None = None
    is_qc: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    raw_message_id: int | None = None


def _query(flt: ResultFilter) -> Any:
    stmt = select(Result, Patient.name).join(Patient, col(Result.patient_id) == Patient.id, isouter=True)
    if flt.specimen_id:
        stmt = stmt.where(Result.accession == flt.specimen_id)
    if flt.status:
        stmt = stmt.where(col(Result.status).in_(list(flt.status)))
    if flt.instrument:
        stmt = stmt.where(Result.instrument == flt.instrument)
    if flt.patient_id is not None:
        stmt = stmt.where(Result.patient_id == flt.patient_id)
    if flt.test_code:
        stmt = stmt.where(Result.test_code == flt.test_code)
    if flt.is_qc is not None:
        stmt = stmt.where(Result.is_qc == flt.is_qc)
    if flt.since is not None:
        stmt = stmt.where(col(Result.received_at) >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(col(Result.received_at) < flt.until)
    if flt.raw_message_id is not None:
        stmt = stmt.where(Result.raw_message_id == flt.raw_message_id)
    return stmt.order_by(col(Result.id))


def as_row(result: Result, patient_name: str | None) -> dict[str, Any]:
    """The export shape (README "Result fields")."""
    return {
        "id": result.id,
        "version": result.version,
        "specimen_id": result.accession,
        "instrument": result.instrument,
        "instrument_test_code": result.instrument_test_code,
        "test_code": result.test_code,
        "loinc": result.loinc,
        "value": result.value,
        "units": result.units,
        "reference_range": result.reference_range,
        "abnormal_flags": result.abnormal_flags,
        "result_status": result.result_status,
        "status": result.status,
        "is_qc": result.is_qc,
        "control_lot": result.control_lot,
        "control_material": result.control_material,
        "control_level": result.control_level,
        "observed_at": result.observed_at.isoformat() if result.observed_at else None,
        "received_at": result.received_at.isoformat(),
        "patient_name": patient_name,
        "patient_id": result.patient_id,
        "raw_message_id": result.raw_message_id,
        "unmatched_reason": result.unmatched_reason,
        "value_numeric": result.value_numeric,
        "revision": result.revision,
    }


def list_results(session: Session, flt: ResultFilter, *, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    rows = session.exec(_query(flt).offset(offset).limit(limit)).all()
    return [{k: v for k, v in as_row(r, name).items() if k in API_FIELDS} for r, name in rows]


def result_row(session: Session, result_id: int) -> dict[str, Any] | None:
    row = session.exec(_query(ResultFilter()).where(Result.id == result_id)).first()
    if row is None:
        return None
    return {k: v for k, v in as_row(row[0], row[1]).items() if k in API_FIELDS}


def iter_export(session: Session, flt: ResultFilter, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching result in id order, streamed in batches."""
    last_id = 0
    while True:
        rows = session.exec(_query(flt).where(col(Result.id) > last_id).limit(batch)).all()
        if not rows:
            return
        for result, name in rows:
            yield {k: v for k, v in as_row(result, name).items() if k in ("id", *EXPORT_FIELDS)}
            last_id = result.id or last_id


def write_export(rows: Iterator[dict[str, Any]], fmt: str, out: io.TextIOBase | Any) -> int:
    """Write rows as a JSON array or CSV; return the count."""
    count = 0
    if fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("," if count else "") + "\n" + json.dumps(row, ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
    else:
        writer = csv.DictWriter(out, fieldnames=("id", *EXPORT_FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count
