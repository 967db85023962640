"""Searching the audit trail (the web audit viewer); verification is :func:`lis.services.audit.verify_chain`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from lis.models import AuditEvent


@dataclass
class AuditQuery:
    actor: str = ""
    action: str = ""  # prefix: "result." finds every result action
    entity_type: str = ""
    entity_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


def search(session: Session, query: AuditQuery, *, limit: int = 50, offset: int = 0) -> tuple[list[AuditEvent], int]:
    """Newest first, with the total for paging."""
    conditions = []
    if query.actor:
        conditions.append(AuditEvent.actor == query.actor)
    if query.action:
        conditions.append(col(AuditEvent.action).startswith(query.action))
    if query.entity_type:
        conditions.append(AuditEvent.entity_type == query.entity_type)
    if query.entity_id:
        conditions.append(AuditEvent.entity_id == query.entity_id)
    if query.since is not None:
        conditions.append(col(AuditEvent.at) >= query.since)
    if query.until is not None:
        conditions.append(col(AuditEvent.at) < query.until)
    stmt = select(AuditEvent).where(*conditions).order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
    return list(session.exec(stmt).all()), int(total)


def actions(session: Session) -> list[str]:
    return sorted(session.exec(select(AuditEvent.action).distinct()).all())
