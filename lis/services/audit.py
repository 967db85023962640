"""The audit trail: append-only and hash-chained, so an edited or deleted row is detectable.

Each event's ``hash`` is SHA-256 over the previous event's hash and the canonical JSON of its own
fields (id, time, actor, action, entity, detail). ``verify_chain`` recomputes the chain; the first
mismatch names the event. Appends are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory transaction lock) so two writers never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from lis.models import AuditEvent, utcnow

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x4C495341  # "LISA"


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "id": event.id,
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "detail": event.detail,
        "prev": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _digest(event: AuditEvent) -> str:
    return hashlib.sha256(event.prev_hash.encode() + _canonical(event)).hexdigest()


def record(
    session: Session,
    actor: str,
    action: str,
    entity_type: str = "",
    entity_id: str | int = "",
    *,
    before: Any = None,
    after: Any = None,
    **extra: Any,
) -> AuditEvent:
    """Append one event inside the caller's transaction (it commits with the change it describes)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    detail: dict[str, Any] = dict(extra)
    if before is not None:
        detail["before"] = before
    if after is not None:
        detail["after"] = after
    at = utcnow()
    event = AuditEvent(
        id=(last.id + 1) if last and last.id else 1,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        detail=json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str),
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    event.hash = _digest(event)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_id: int | None = None
    reason: str = ""


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every hash in id order; report the first event that does not match."""
    prev = GENESIS
    count = 0
    expected_id = 1
    last_id = 0
    while True:
        rows = session.exec(
            select(AuditEvent).where(col(AuditEvent.id) > last_id).order_by(col(AuditEvent.id)).limit(batch)
        ).all()
        if not rows:
            return ChainReport(True, count)
        for event in rows:
            assert event.id is not None
            if event.id != expected_id:
                return ChainReport(False, count, expected_id, f"event {expected_id} is missing (deleted)")
            if event.prev_hash != prev:
                return ChainReport(False, count, event.id, f"event {event.id} does not follow event {event.id - 1}")
            if _digest(event) != event.hash:
                return ChainReport(False, count, event.id, f"event {event.id} was modified after it was written")
            prev = event.hash
            count += 1
            expected_id += 1
            last_id = event.id


def events_between(session: Session, since: datetime | None = None, limit: int = 500) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    return list(session.exec(query).all())
