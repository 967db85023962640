"""``/results``, ``/raw-messages``, ``/instruments``, ``/ingest``, ``/audit``: what analysers produced."""

from __future__ import annotations

import base64
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from lis.api.deps import get_ctx, require
from lis.context import LisContext
from lis.models import AuditEvent, Instrument, RawMessage, RawMessageStatus, User
from lis.services import audit
from lis.services.ingest import UnknownInstrument
from lis.services.results import ResultFilter, list_results, result_row

router = APIRouter()


@router.get("/results", tags=["results"])
def get_results(
    ctx: LisContext = Depends(get_ctx), _: User = Depends(require("results:read")),
    specimen_id: str | None = None, status_: list[str] | None = Query(default=None, alias="status"),
    instrument: str | None = None, patient_id: int | None = None, test_code: str | None = None,
    is_qc: bool | None = None, since: datetime | None = None, until: datetime | None = None,
    raw_message_id: int | None = None,
    limit: int = Query(default=500, ge=1, le=5000), offset: int = Query(default=0, ge=0),
) -> list[dict[str, object]]:
    statuses = [s for item in status_ or [] for s in item.split(",") if s]
    flt = ResultFilter(specimen_id=specimen_id, status=statuses or None, instrument=instrument,
                       patient_id=patient_id, test_code=test_code, is_qc=is_qc, since=since, until=until,
                       raw_message_id=raw_message_id)
    with ctx.db.read() as session:
        return list_results(session, flt, limit=limit, offset=offset)


@router.get("/results/{result_id}", tags=["results"])
def get_result(result_id: int, ctx: LisContext = Depends(get_ctx),
               _: User = Depends(require("results:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        row = result_row(session, result_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"result {result_id} not found")
    return row


def _raw_dict(m: RawMessage, with_data: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "id": m.id, "instrument": m.instrument, "protocol": m.protocol, "direction": m.direction,
        "received_at": m.received_at.isoformat(), "size": m.size, "sha256": m.sha256, "control_id": m.control_id,
        "peer": m.peer, "status": m.status, "error": m.error, "result_count": m.result_count,
        "processed_at": m.processed_at.isoformat() if m.processed_at else None, "duplicate_of": m.duplicate_of_id,
    }
    if with_data:
        out["data_base64"] = base64.b64encode(m.data).decode()
        out["data_text"] = m.data.decode("latin-1")
    return out


@router.get("/raw-messages", tags=["journal"])
def get_raw_messages(
    ctx: LisContext = Depends(get_ctx), _: User = Depends(require("raw:read")),
    instrument: str | None = None, status_: str | None = Query(default=None, alias="status"),
    limit: int = Query(default=100, ge=1, le=1000), offset: int = Query(default=0, ge=0),
) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(RawMessage).order_by(col(RawMessage.id).desc()).offset(offset).limit(limit)
        if instrument:
            stmt = stmt.where(RawMessage.instrument == instrument)
        if status_:
            stmt = stmt.where(RawMessage.status == status_)
        return [_raw_dict(m, False) for m in session.exec(stmt).all()]


@router.get("/raw-messages/{raw_id}", tags=["journal"])
def get_raw_message(raw_id: int, ctx: LisContext = Depends(get_ctx),
                    _: User = Depends(require("raw:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        message = session.get(RawMessage, raw_id)
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"raw message {raw_id} not found")
    return _raw_dict(message, True)


@router.post("/raw-messages/{raw_id}/reprocess", tags=["journal"])
def reprocess(raw_id: int, ctx: LisContext = Depends(get_ctx),
              user: User = Depends(require("raw:reprocess"))) -> dict[str, object]:
    with ctx.db.read() as session:
        message = session.get(RawMessage, raw_id)
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"raw message {raw_id} not found")
    if message.direction != "in":
        raise HTTPException(status.HTTP_409_CONFLICT, "only inbound messages can be reprocessed")
    try:
        outcome = ctx.ingest.process(raw_id)
    except UnknownInstrument as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    with ctx.db.write() as session:
        audit.record(session, user.username, "raw.reprocess", "raw_message", raw_id,
                     after={"status": outcome.status, "results": len(outcome.result_ids)})
    return {"id": raw_id, "status": outcome.status, "results": len(outcome.result_ids),
            "unmatched": outcome.unmatched, "error": outcome.error}


@router.post("/ingest/{instrument}", tags=["journal"], status_code=status.HTTP_202_ACCEPTED)
async def post_ingest(instrument: str, request: Request, ctx: LisContext = Depends(get_ctx),
                      user: User = Depends(require("ingest:write"))) -> dict[str, object]:
    """Submit one raw analyser message (e.g. from a gateway PC): journaled, then processed."""
    config = ctx.config.instrument(instrument)
    if config is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"instrument {instrument!r} is not configured")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > config.max_message_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"message larger than {config.max_message_bytes} bytes")
    if not body:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty message")
    raw_id = await run_in_threadpool(ctx.ingest.journal, instrument, bytes(body), peer=f"api:{user.username}")
    outcome = await run_in_threadpool(ctx.ingest.process, raw_id)
    return {"raw_message_id": raw_id, "status": outcome.status, "results": len(outcome.result_ids),
            "unmatched": outcome.unmatched, "error": outcome.error}


@router.get("/instruments", tags=["instruments"])
def get_instruments(ctx: LisContext = Depends(get_ctx),
                    _: User = Depends(require("instruments:read"))) -> list[dict[str, object]]:
    live = ctx.status.snapshot()
    with ctx.db.read() as session:
        rows = {i.name: i for i in session.exec(select(Instrument)).all()}
        counts = dict(session.exec(
            select(RawMessage.instrument, func.count()).where(RawMessage.status == RawMessageStatus.ERROR)
            .group_by(RawMessage.instrument)
        ).all())
    out = []
    for inst in ctx.config.instruments:
        status_ = live.get(inst.name, {})
        row = rows.get(inst.name)
        out.append({
            "name": inst.name, "profile": inst.profile, "protocol": inst.protocol, "transport": inst.transport,
            "model": inst.model, "enabled": inst.enabled, "connection": row.connection if row else "",
            "state": status_.get("state", "stopped"), "peer": status_.get("peer", ""),
            "last_message_at": status_["last_message_at"].isoformat() if status_.get("last_message_at") else None,
            "messages": status_.get("messages", 0), "errors": status_.get("errors", 0),
            "last_error": status_.get("last_error", ""), "quarantined": counts.get(inst.name, 0),
            "backlog": status_.get("backlog", 0),
        })
    return out


@router.get("/audit", tags=["audit"])
def get_audit(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("audit:read")),
              actor: str | None = None, action: str | None = None, since: datetime | None = None,
              limit: int = Query(default=200, ge=1, le=5000)) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
        if actor:
            stmt = stmt.where(AuditEvent.actor == actor)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        if since:
            stmt = stmt.where(col(AuditEvent.at) >= since)
        return [e.model_dump(mode="json") for e in session.exec(stmt).all()]


@router.get("/audit/verify", tags=["audit"])
def get_audit_verify(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("audit:read"))) -> dict[str, object]:
    with ctx.db.read() as session:
        report = audit.verify_chain(session)
    return {"ok": report.ok, "events": report.events, "first_bad_id": report.first_bad_id, "reason": report.reason}
