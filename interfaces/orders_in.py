"""Orders and demographics from the EMR (issue 7.4): HL7 OML^O21 / ORM^O01 / ADT^A01/A04/A08, FHIR ServiceRequest.

Every message is kept (``emr_inbound``) with what became of it, in the same transaction as the orders it
created, and acknowledged only after that commit (STANDARDS.md: "ACK only after the message is committed").

* Accepted: orders created through :func:`lis.services.orders.create_order` (patient upserted by CCCD), one per
  specimen, ready for analyser host queries; ``AA``.
* An unknown test code: ``AE`` naming the code; nothing half-created; the message is kept with status
  ``needs_attention`` so the lab can map the code and reprocess it (``POST /api/v1/emr/inbound/{id}/reprocess``).
* Invalid data (a birth date that is not a date, a malformed CCCD): ``AE`` naming the field; status ``rejected``.
* A retransmission (same sender and MSH-10): the same answer again, nothing created twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from interfaces.hl7_ack_build import build_ack, fallback_ack
from interfaces.hl7_inbound import InboundError, InboundMessage, OrderGroup, TestRef, parse_inbound, read_msh
from lis.db import Database
from lis.events import EventBus, OrderReceived
from lis.models import EmrInbound, Encounter, Order, Specimen, utcnow
from lis.services import audit
from lis.services.catalog import CatalogSnapshot
from lis.services.orders import OrderConflict, OrderError, OrderRequest, create_order
from lis.services.patients import PatientError, upsert_patient

log = logging.getLogger(__name__)

ACCEPTED, NEEDS_ATTENTION, REJECTED = "accepted", "needs_attention", "rejected"


class UnknownTestCode(InboundError):
    def __init__(self, codes: list[str]) -> None:
        super().__init__(f"unknown test code(s): {', '.join(codes)} (OBR-4); the order is kept for the lab to map",
                         103, "OBR-4")
        self.codes = codes


@dataclass(frozen=True, slots=True)
class InboundResult:
    status: str  # accepted | needs_attention | rejected | duplicate
    ack_code: str  # AA | AE | AR
    text: str
    inbound_id: int | None = None
    order_ids: tuple[int, ...] = ()
    error_code: int = 0
    where: str = ""


def resolve_test(catalog: CatalogSnapshot, ref: TestRef) -> str | None:
    """OBR-4 → LIS test or panel code: LOINC when the system is LN, the local code, then the alternate."""
    candidates = [(ref.code, ref.system), (ref.alt_code, ref.alt_system)]
    for code, system in candidates:
        if not code:
            continue
        if system == "LN" and code in catalog.by_loinc:
            return catalog.by_loinc[code].code
        if code in catalog.panels or code in catalog.by_code:
            return code
    return None


def apply_message(session: Session, catalog: CatalogSnapshot, message: InboundMessage, actor: str
                  ) -> list[int]:
    """Create/update what the message says inside the caller's transaction; returns the order ids created."""
    patient = None
    if message.patient is not None:
        try:
            patient = upsert_patient(session, message.patient, actor)
        except PatientError as exc:
            raise InboundError(f"PID: {exc}", 102, "PID-3") from exc
    encounter = None
    if message.visit is not None and patient is not None:
        encounter = session.exec(select(Encounter).where(Encounter.visit_code == message.visit.visit_code)).first()
        if encounter is None:
            encounter = Encounter(patient_id=patient.id or 0, visit_code=message.visit.visit_code,
                                  kind=message.visit.kind, department=message.visit.department)
            session.add(encounter)
            session.flush()
        elif encounter.patient_id != patient.id:
            raise InboundError(f"PV1-19 visit {message.visit.visit_code} belongs to another patient", 205, "PV1-19")
    created: list[int] = []
    unknown = sorted({t.code or t.alt_code for g in message.orders for t in g.tests
                      if resolve_test(catalog, t) is None})
    if unknown:
        raise UnknownTestCode(unknown)
    for group in message.orders:
        if group.control == "CA":
            created += _cancel(session, group, actor)
            continue
        if group.control not in ("NW", "SN", ""):
            raise InboundError(f"ORC-1 order control {group.control!r} is not supported (NW, CA)", 103, "ORC-1")
        order_id = _create(session, catalog, message, group, actor)
        if order_id is not None:
            if encounter is not None:
                order = session.get(Order, order_id)
                assert order is not None
                order.encounter_id = encounter.id
                order.department = order.department or encounter.department
                session.add(order)
            created.append(order_id)
    return created


def _create(session: Session, catalog: CatalogSnapshot, message: InboundMessage, group: OrderGroup,
            actor: str) -> int | None:
    assert message.patient is not None
    codes = [c for c in (resolve_test(catalog, t) for t in group.tests) if c]
    existing = session.exec(select(Specimen).where(Specimen.barcode == group.specimen_id)).first()
    if existing is not None:
        order = session.get(Order, existing.order_id)
        if order is not None and order.placer_number == group.placer_number:
            return None  # the same order sent again (new MSH-10): nothing to create
        raise InboundError(f"specimen id {group.specimen_id} is already used by order "
                           f"{order.filler_number if order else '?'}", 205, "SPM-2")
    request = OrderRequest(
        patient=message.patient, specimen_id=group.specimen_id, tests=codes, priority=group.priority,
        placer_number=group.placer_number, ordering_clinician=group.ordering_clinician,
        department=message.visit.department if message.visit else "", clinical_info=group.clinical_info[:1000],
        specimen_type=group.specimen_type, collected_at=group.collected_at,
        source="fhir" if message.msh.message_code == "FHIR" else "hl7",
    )
    try:
        with session.begin_nested():
            order = create_order(session, catalog, request, actor)
    except OrderConflict as exc:
        raise InboundError(str(exc), 205, "SPM-2") from exc
    except (OrderError, PatientError) as exc:
        raise InboundError(str(exc), 207, "OBR") from exc
    return order.id


def _cancel(session: Session, group: OrderGroup, actor: str) -> list[int]:
    order = session.exec(select(Order).where(Order.placer_number == group.placer_number)).first() \
        if group.placer_number else None
    if order is None:
        raise InboundError(f"cannot cancel: no order with placer number {group.placer_number}", 204, "ORC-2")
    if order.status == "cancelled":
        return []
    if order.status == "completed":
        raise InboundError(f"order {order.filler_number} is already reported and cannot be cancelled", 207, "ORC-1")
    order.status, order.cancel_reason = "cancelled", "cancelled by the EMR (ORC-1 CA)"
    session.add(order)
    audit.record(session, actor, "order.cancel", "order", order.id or "", after={"reason": order.cancel_reason})
    return []


class InboundHandler:
    """Turns one inbound HL7 message into database changes and the ACK bytes to send back."""

    def __init__(self, db: Database, catalog: Callable[[], CatalogSnapshot], bus: EventBus | None, source: str,
                 timezone: str, parser: Callable[[bytes], InboundMessage] | None = None) -> None:
        self.parser = parser or (lambda raw: parse_inbound(raw, timezone))
        self.db = db
        self.catalog = catalog
        self.bus = bus
        self.source = source
        self.timezone = timezone

    def handle(self, raw: bytes) -> tuple[bytes, InboundResult]:
        now = utcnow()
        try:
            msh = read_msh(raw.decode("utf-8", errors="replace"))
        except InboundError as exc:
            return fallback_ack(str(exc), now=now, timezone=self.timezone), InboundResult(REJECTED, "AR", str(exc))
        result = self.process(raw, msh.control_id or f"sha:{hash(raw)}")
        ack = build_ack(msh, result.ack_code, result.text, error_code=result.error_code, where=result.where,
                        now=now, timezone=self.timezone)
        return ack, result

    def process(self, raw: bytes, control_id: str, *, again: int | None = None) -> InboundResult:
        """Process one message; ``again`` is the id of a kept (not accepted) row being reprocessed."""
        actor = f"emr:{self.source}"
        with self.db.read() as session:
            seen = session.exec(select(EmrInbound).where(EmrInbound.source == self.source,
                                                         EmrInbound.control_id == control_id)).first()
        if seen is not None and seen.id != again:
            code = "AA" if seen.status == ACCEPTED else "AE"
            return InboundResult("duplicate", code, seen.error or "already received", seen.id,
                                 (seen.order_id,) if seen.order_id else ())
        try:
            message = self.parser(raw)
        except InboundError as exc:
            return self._keep(raw, control_id, "", REJECTED, exc, again)
        try:
            with self.db.write() as session:
                order_ids = apply_message(session, self.catalog(), message, actor)
                row = (session.get(EmrInbound, again) if again else None) or EmrInbound(
                    source=self.source, message_type=message.msh.message_type, control_id=control_id, data=raw)
                row.status, row.error, row.order_id = ACCEPTED, "", order_ids[0] if order_ids else None
                session.add(row)
                session.flush()
                inbound_id = row.id
                barcodes = {oid: [s.barcode for s in session.exec(select(Specimen).where(Specimen.order_id == oid))]
                            for oid in order_ids}
        except UnknownTestCode as exc:
            return self._keep(raw, control_id, message.msh.message_type, NEEDS_ATTENTION, exc, again)
        except InboundError as exc:
            return self._keep(raw, control_id, message.msh.message_type, REJECTED, exc, again)
        log.info("%s %s from %s accepted: %d order(s)", message.msh.message_type, control_id, self.source,
                 len(order_ids))
        if self.bus is not None:
            for oid in order_ids:
                self.bus.publish(OrderReceived(oid, tuple(barcodes[oid])))
        return InboundResult(ACCEPTED, "AA", "", inbound_id, tuple(order_ids))

    def _keep(self, raw: bytes, control_id: str, message_type: str, status: str, exc: InboundError,
              again: int | None = None) -> InboundResult:
        with self.db.write() as session:
            row = (session.get(EmrInbound, again) if again else None) or EmrInbound(
                source=self.source, message_type=message_type[:20], control_id=control_id, data=raw)
            row.status, row.error = status, str(exc)
            session.add(row)
            session.flush()
            inbound_id = row.id
        log.warning("%s %s from %s %s: %s", message_type or "message", control_id, self.source, status, exc)
        return InboundResult(status, "AE", str(exc), inbound_id, error_code=exc.code, where=exc.where)

    def reprocess(self, inbound_id: int) -> InboundResult:
        """Process a kept message again (after the catalogue was fixed); accepted rows are left alone."""
        with self.db.read() as session:
            row = session.get(EmrInbound, inbound_id)
        if row is None:
            raise LookupError(f"inbound message {inbound_id} not found")
        if row.status == ACCEPTED:
            return InboundResult("duplicate", "AA", "already accepted", row.id)
        if row.source != self.source:
            raise LookupError(f"inbound message {inbound_id} came from {row.source}, not {self.source}")
        return self.process(row.data, row.control_id, again=inbound_id)
