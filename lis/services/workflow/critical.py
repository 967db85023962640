"""Critical values (CLSI GP47): a critical result is released only after a notification with read-back
is recorded — who was told, how, when, by whom. Results still waiting for theirs are listed for the lab."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import CriticalNotification, Patient, Result, ResultStatus, utcnow
from lis.services import audit
from lis.services.workflow.errors import InvalidDefinition, NotFound, TransitionRefused

METHODS = ("phone", "in_person", "sms", "emr_message", "pager", "other")
#: states in which a critical result still needs someone to act on it
OPEN_STATES = (ResultStatus.PENDING, ResultStatus.TECHNICALLY_VALIDATED, ResultStatus.RERUN_REQUESTED,
               ResultStatus.AUTOVERIFIED)


def notified_ids(session: Session, result_ids: Sequence[int]) -> set[int]:
    """Results among ``result_ids`` with a notification whose read-back was confirmed."""
    if not result_ids:
        return set()
    return set(session.exec(
        select(CriticalNotification.result_id).where(col(CriticalNotification.result_id).in_(list(result_ids)),
                                                     col(CriticalNotification.read_back))
    ).all())


def record_notification(session: Session, result_id: int, actor: str, *, notified: str, method: str,
                        read_back: bool, notified_at: datetime | None = None,
                        comment: str = "") -> CriticalNotification:
    """Record that a critical result was communicated; an attempt without read-back is kept but does not
    allow the release."""
    result = session.get(Result, result_id)
    if result is None or result.is_qc:
        raise NotFound(f"result {result_id} not found")
    if not result.critical:
        raise TransitionRefused(f"result {result_id} ({result.test_code} {result.value}) is not a critical value: "
                                "no notification is needed")
    who = notified.strip()
    if not who:
        raise InvalidDefinition("notified", "say who was notified (name and role of the person told)")
    if method not in METHODS:
        raise InvalidDefinition("method", f"must be one of {', '.join(METHODS)}, not {method!r}")
    at = notified_at or utcnow()
    if at.tzinfo is None:
        raise InvalidDefinition("notified_at", "give the time with its UTC offset")
    row = CriticalNotification(result_id=result_id, notified=who[:200], method=method, read_back=read_back,
                               notified_at=at, recorded_by=actor, comment=comment[:400])
    session.add(row)
    session.flush()
    audit.record(session, actor, "result.critical_notification", "result", result_id,
                 after={"notified": row.notified, "method": method, "read_back": read_back,
                        "notified_at": at.isoformat(), "value": result.value, "flag": result.lis_flags})
    return row


@dataclass
class PendingCritical:
    result_id: int
    version: int
    status: str
    test_code: str | None
    value: str
    flag: str
    specimen_id: str
    patient_id: int | None
    patient_name: str | None
    received_at: datetime
    attempts: int

    def as_dict(self) -> dict[str, object]:
        return {"result_id": self.result_id, "version": self.version, "status": self.status,
                "test_code": self.test_code, "value": self.value, "lis_flags": self.flag,
                "specimen_id": self.specimen_id, "patient_id": self.patient_id, "patient_name": self.patient_name,
                "received_at": self.received_at.isoformat(), "attempts_without_read_back": self.attempts}


def pending_criticals(session: Session, limit: int = 500) -> list[PendingCritical]:
    """Critical results not yet notified with read-back, oldest first."""
    rows = session.exec(
        select(Result, Patient.name).join(Patient, col(Result.patient_id) == Patient.id, isouter=True)
        .where(col(Result.critical), col(Result.status).in_(OPEN_STATES), col(Result.is_qc).is_(False))
        .order_by(col(Result.received_at), col(Result.id)).limit(limit)
    ).all()
    ids = [r.id for r, _ in rows if r.id is not None]
    done = notified_ids(session, ids)
    attempts: dict[int, int] = {}
    if ids:
        for rid in session.exec(select(CriticalNotification.result_id).where(
                col(CriticalNotification.result_id).in_(ids), col(CriticalNotification.read_back).is_(False))).all():
            attempts[rid] = attempts.get(rid, 0) + 1
    return [PendingCritical(r.id or 0, r.version, r.status, r.test_code, r.value, r.lis_flags, r.accession,
                            r.patient_id, name, r.received_at, attempts.get(r.id or 0, 0))
            for r, name in rows if r.id not in done]
