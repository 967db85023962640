"""The persistent EMR outbox (issue 7.1): delivery rows written in the release transaction.

:func:`enqueue_release` is the release hook: the workflow calls it *inside* the transaction that releases
results, so a report is queued if and only if the release commits (transactional outbox). It writes, per
released order (one report grouping that order's released results) and per configured destination, one
:class:`~lis.models.OutboxMessage` plus links to the results it carries (:class:`~lis.models.OutboxResult`),
and one ``report-signing`` row that produces the signed PDF (Circular 13/2025/TT-BYT).

The rows are delivered by :class:`interfaces.worker.OutboxWorker`; this module also holds the queries the
API shows (status per result and destination) and the manual retry of a dead letter.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from interfaces.report_data import order_of_result, released_results_of_order
from lis.config import EmrConfig
from lis.models import Order, OutboxMessage, OutboxResult, OutboxStatus, Result, utcnow
from lis.services import audit

log = logging.getLogger(__name__)

REPORT_SIGNING = "report-signing"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where reports go: an ``[[emr]]`` entry (hl7-mllp | fhir) or the local report signer."""

    name: str
    kind: str  # hl7-mllp | fhir | signed-report


_destinations: tuple[Destination, ...] = (Destination(REPORT_SIGNING, "signed-report"),)


def configure(emr: Sequence[EmrConfig], *, sign_reports: bool = True) -> tuple[Destination, ...]:
    """Set the destinations :func:`enqueue_release` writes rows for (called by ``interfaces.wiring.install``)."""
    global _destinations
    dests = [Destination(REPORT_SIGNING, "signed-report")] if sign_reports else []
    dests += [Destination(e.name, e.kind) for e in emr if e.enabled]
    _destinations = tuple(dests)
    return _destinations


def destinations() -> tuple[Destination, ...]:
    return _destinations


def new_message_id() -> str:
    """A message id unique across processes and databases: MSH-10 (at most 20 characters) and Bundle.identifier."""
    return uuid.uuid4().hex[:20].upper()


def enqueue_release(session: Session, results: Sequence[Result], correction: bool) -> list[OutboxMessage]:
    """Release hook: queue one report per released order for every configured destination.

    Runs in the caller's (release) transaction. ``results`` are the results released now; the report carries
    every currently released result of their order, and marks the ones released now as corrections when
    ``correction`` is true (HL7 OBX-11 ``C``, FHIR ``corrected``).
    """
    return enqueue(session, results, correction, _destinations)


def enqueue(
    session: Session, results: Sequence[Result], correction: bool, dests: Iterable[Destination]
) -> list[OutboxMessage]:
    """:func:`enqueue_release` with explicit destinations."""
    dests = list(dests)
    if not dests or not results:
        return []
    session.flush()
    by_order: dict[int, list[Result]] = {}
    for result in results:
        if result.is_qc:
            continue
        order_id = order_of_result(session, result)
        if order_id is None:
            log.warning("released result %s has no order: not reported to the EMR", result.id)
            continue
        by_order.setdefault(order_id, []).append(result)
    rows: list[OutboxMessage] = []
    for order_id, released_now in sorted(by_order.items()):
        carried = {r.id: r for r in released_results_of_order(session, order_id)}
        carried.update({r.id: r for r in released_now})
        patient_id = next((r.patient_id for r in carried.values() if r.patient_id is not None), None)
        if patient_id is None:
            order = session.get(Order, order_id)
            patient_id = order.patient_id if order else None
        if patient_id is None:
            continue
        last = session.exec(
            select(func.max(OutboxMessage.report_version)).where(OutboxMessage.order_id == order_id)
        ).one()
        version = int(last or 0) + 1
        corrected_ids = {r.id for r in released_now} if correction else set()
        for dest in dests:
            row = OutboxMessage(
                destination=dest.name, kind=dest.kind, message_id=new_message_id(), order_id=order_id,
                patient_id=patient_id, report_version=version, correction=correction,
            )
            session.add(row)
            session.flush()
            for result_id in sorted(i for i in carried if i is not None):
                session.add(OutboxResult(outbox_id=row.id or 0, result_id=result_id,
                                         corrected=result_id in corrected_ids))
            rows.append(row)
    session.flush()
    return rows


def outbox_dict(row: OutboxMessage, *, with_payload: bool = False) -> dict[str, Any]:
    """The API shape of an outbox row."""
    out: dict[str, Any] = {
        "id": row.id, "destination": row.destination, "kind": row.kind, "message_id": row.message_id,
        "order_id": row.order_id, "patient_id": row.patient_id, "report_version": row.report_version,
        "correction": row.correction, "status": row.status, "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.status == OutboxStatus.PENDING else None,
        "last_error": row.last_error, "ack_code": row.ack_code, "created_at": row.created_at.isoformat(),
        "last_attempt_at": row.last_attempt_at.isoformat() if row.last_attempt_at else None,
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
    }
    if with_payload and row.payload is not None:
        out["payload_type"] = row.payload_type
        out["payload"] = row.payload.decode("utf-8", errors="replace")
    return out


def list_outbox(
    session: Session, *, status: str | None = None, destination: str | None = None, order_id: int | None = None,
    limit: int = 200, offset: int = 0,
) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).offset(offset).limit(limit)
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if destination:
        stmt = stmt.where(OutboxMessage.destination == destination)
    if order_id is not None:
        stmt = stmt.where(OutboxMessage.order_id == order_id)
    return list(session.exec(stmt).all())


def deliveries_of_result(session: Session, result_id: int) -> list[dict[str, Any]]:
    """Delivery status of one result at every destination (newest report version first)."""
    stmt = (
        select(OutboxMessage, OutboxResult.corrected)
        .join(OutboxResult, col(OutboxResult.outbox_id) == OutboxMessage.id)
        .where(OutboxResult.result_id == result_id)
        .order_by(col(OutboxMessage.id).desc())
    )
    return [{**outbox_dict(row), "result_corrected": corrected} for row, corrected in session.exec(stmt).all()]


def status_counts(session: Session) -> dict[str, dict[str, int]]:
    """destination -> status -> count."""
    rows = session.exec(
        select(OutboxMessage.destination, OutboxMessage.status, func.count()).group_by(
            OutboxMessage.destination, OutboxMessage.status)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for dest, status, count in rows:
        out.setdefault(dest, {})[status] = count
    return out


class OutboxRetryError(ValueError):
    """A retry was asked for a row that is not a dead letter."""


def retry(session: Session, outbox_id: int, actor: str, *, now: datetime | None = None) -> OutboxMessage:
    """Put a dead letter back in the queue (attempts reset), audited. Delivered rows are never re-sent."""
    row = session.get(OutboxMessage, outbox_id)
    if row is None:
        raise LookupError(f"outbox message {outbox_id} not found")
    if row.status != OutboxStatus.DEAD:
        raise OutboxRetryError(f"outbox message {outbox_id} is {row.status}: only dead letters can be retried")
    before = {"status": row.status, "attempts": row.attempts, "last_error": row.last_error}
    row.status = OutboxStatus.PENDING
    row.attempts = 0
    row.next_attempt_at = now or utcnow()
    if row.kind == "signed-report" or row.last_error.startswith("cannot build"):
        row.payload = None  # rebuilt: the cause (a missing key, a catalogue gap) may have been fixed
    session.add(row)
    audit.record(session, actor, "outbox.retry", "outbox_message", outbox_id, before=before,
                 after={"status": row.status})
    return row
