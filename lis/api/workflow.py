"""Result workflow API: actions on results (the issue-6 contract), batch validation, critical notifications,
the validation queue, and the order/specimen steps (reception, cancellation, add-on tests).

Contract (kept stable for outside acceptance tests, documented in README):
``POST /api/v1/results/{id}/actions`` ``{"action": "validate"|"release"|"rerun"|"reject"|"amend", "version": N,
"reason": "...", "value": "..."}`` → 200 with the result's new state and version (amend: the new revision);
409 ``{"detail": reason}`` when the transition is not allowed; 403 when the role may not.
``POST /api/v1/results/{id}/critical-notification`` ``{"notified": "name", "method": "phone", "read_back": true}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from lis.api.deps import get_ctx, require
from lis.context import LisContext
from lis.models import Patient, Result, ResultEvaluation, ResultStatus, TestDefinition, User
from lis.services.order_workflow import add_tests, cancel_order, receive_specimen
from lis.services.orders import load_order
from lis.services.results import result_row
from lis.services.workflow import ActionNotPermitted, InvalidDefinition, NotFound, WorkflowError

router = APIRouter(tags=["workflow"])

WORKFLOW_FIELDS = ("lis_flags", "critical", "status_reason", "rerun_of_id", "supersedes_id", "validated_by",
                   "validated_at", "released_by", "released_at", "turnaround_seconds", "updated_by", "updated_at")


def workflow_error_status(exc: WorkflowError) -> int:
    """Domain error → HTTP status: 404 not found, 403 role, 422 bad input (field named), 409 refused transition."""
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, ActionNotPermitted):
        return status.HTTP_403_FORBIDDEN
    if isinstance(exc, InvalidDefinition):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    return status.HTTP_409_CONFLICT  # TransitionRefused and any other refusal


async def workflow_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Registered once on the app (lis.api.app): every route raises the domain error, this answers it;
    the transaction was already rolled back by ``Database.write``."""
    assert isinstance(exc, WorkflowError)
    return JSONResponse({"detail": str(exc)}, status_code=workflow_error_status(exc))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def workflow_row(session: Session, result_id: int) -> dict[str, Any]:
    """The result as ``GET /results/{id}`` shows it, plus the workflow fields."""
    row = result_row(session, result_id)
    result = session.get(Result, result_id)
    if row is None or result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"result {result_id} not found")
    row.update({name: _iso(getattr(result, name)) for name in WORKFLOW_FIELDS})
    row["status"], row["version"] = result.status, result.version
    return row


class ActionIn(BaseModel):
    action: Literal["validate", "release", "rerun", "reject", "amend"]
    version: int
    reason: str = Field(default="", max_length=2000)
    value: str | None = Field(default=None, max_length=200)


@router.post("/results/{result_id}/actions")
def post_action(result_id: int, body: ActionIn, ctx: LisContext = Depends(get_ctx),
                user: User = Depends(require("results:read"))) -> dict[str, Any]:
    """Validate, release, rerun, reject or amend one result (optimistic ``version`` check)."""
    outcome = ctx.workflow.act(result_id, body.action, body.version, actor=user.username, role=user.role,
                               reason=body.reason, value=body.value)
    with ctx.db.read() as session:
        return workflow_row(session, outcome.result.id or 0)


class BatchIn(BaseModel):
    action: Literal["validate", "release"]
    result_ids: list[int] | None = Field(default=None, max_length=5000)
    specimen_id: str | None = Field(default=None, max_length=64)
    status: list[str] | None = None
    test_code: str | None = None
    instrument: str | None = None
    versions: dict[int, int] | None = None
    confirm_critical: bool = False
    confirm_held: bool = False


@router.post("/results/batch-actions")
def post_batch(body: BatchIn, ctx: LisContext = Depends(get_ctx),
               user: User = Depends(require("results:read"))) -> dict[str, Any]:
    """Validate or release a specimen, a list of ids or a filtered worklist in one transaction."""
    if body.result_ids is None and not (body.specimen_id or body.status or body.test_code or body.instrument):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "result_ids: give result_ids, a specimen_id or a filter (status, test_code, instrument)")
    if body.status and any(s not in ResultStatus.ALL for s in body.status):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"status: states are {', '.join(ResultStatus.ALL)}")
    ids = body.result_ids
    if ids is None:
        with ctx.db.read() as session:
            ids = ctx.workflow.batch_ids(session, specimen_id=body.specimen_id, status=body.status,
                                         test_code=body.test_code, instrument=body.instrument)
    outcome = ctx.workflow.batch(body.action, ids, actor=user.username, role=user.role, versions=body.versions,
                                 confirm_critical=body.confirm_critical, confirm_held=body.confirm_held)
    return {"action": body.action,
            "done": [{"id": r.id, "status": r.status, "version": r.version} for r in outcome.done],
            "skipped": [{"id": i, "reason": why} for i, why in outcome.skipped]}


class NotificationIn(BaseModel):
    notified: str = Field(min_length=1, max_length=200)
    method: str = Field(min_length=1, max_length=40)
    read_back: bool
    notified_at: datetime | None = None
    comment: str = Field(default="", max_length=400)


@router.post("/results/{result_id}/critical-notification")
def post_critical_notification(result_id: int, body: NotificationIn, ctx: LisContext = Depends(get_ctx),
                               user: User = Depends(require("results:critical"))) -> dict[str, Any]:
    """Record who was told of a critical value, how, when, and whether they read it back."""
    row = ctx.workflow.notify_critical(result_id, actor=user.username, notified=body.notified,
                                       method=body.method, read_back=body.read_back,
                                       notified_at=body.notified_at, comment=body.comment)
    return {"id": row.id, "result_id": result_id, "notified": row.notified, "method": row.method,
            "read_back": row.read_back, "notified_at": row.notified_at.isoformat(), "recorded_by": row.recorded_by,
            "allows_release": row.read_back}


@router.get("/critical-notifications/pending")
def get_pending_criticals(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("results:read")),
                          limit: int = Query(default=500, ge=1, le=5000)) -> list[dict[str, object]]:
    """Critical results still waiting for a notification with read-back, oldest first."""
    return [p.as_dict() for p in ctx.workflow.pending_criticals(limit)]


@router.get("/results/{result_id}/evaluation")
def get_evaluation(result_id: int, ctx: LisContext = Depends(get_ctx),
                   _: User = Depends(require("results:read"))) -> dict[str, Any]:
    """Which autoverification rules passed or failed, the range applied, the delta check."""
    with ctx.db.read() as session:
        row = session.get(ResultEvaluation, result_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"result {result_id} has no evaluation")
    out = row.model_dump(mode="json")
    out["rules"] = json.loads(row.rules)
    return out


@router.get("/workflow/queue")
def get_queue(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("results:read")),
              status_: list[str] | None = Query(default=None, alias="status"), section: str | None = None,
              limit: int = Query(default=500, ge=1, le=5000)) -> list[dict[str, Any]]:
    """The validation queue: results waiting for a person, with the reasons they were not autoverified."""
    wanted = [s for item in status_ or [] for s in item.split(",") if s] or [
        ResultStatus.PENDING, ResultStatus.AUTOVERIFIED, ResultStatus.TECHNICALLY_VALIDATED,
        ResultStatus.RERUN_REQUESTED]
    with ctx.db.read() as session:
        stmt = (select(Result, Patient.name, TestDefinition.section)
                .join(Patient, col(Result.patient_id) == Patient.id, isouter=True)
                .join(TestDefinition, col(TestDefinition.code) == Result.test_code, isouter=True)
                .where(col(Result.status).in_(wanted), col(Result.is_qc).is_(False))
                .order_by(col(Result.critical).desc(), col(Result.received_at), col(Result.id)).limit(limit))
        if section:
            stmt = stmt.where(TestDefinition.section == section)
        rows = session.exec(stmt).all()
    return [{"id": r.id, "version": r.version, "status": r.status, "specimen_id": r.accession,
             "test_code": r.test_code, "value": r.value, "units": r.units, "abnormal_flags": r.abnormal_flags,
             "lis_flags": r.lis_flags, "critical": r.critical, "reasons": r.status_reason, "section": sec,
             "patient_name": name, "rerun_of_id": r.rerun_of_id, "validated_by": r.validated_by,
             "received_at": r.received_at.isoformat()} for r, name, sec in rows]


# -- orders and specimens -------------------------------------------------------------------------------------
class ReceiveIn(BaseModel):
    received_at: datetime | None = None


@router.post("/specimens/{barcode}/receive", tags=["orders"])
def post_receive(barcode: str, body: ReceiveIn | None = None, ctx: LisContext = Depends(get_ctx),
                 user: User = Depends(require("specimens:receive"))) -> dict[str, Any]:
    """Reception scan: the specimen is in the laboratory (TAT starts here)."""
    with ctx.db.write() as session:
        specimen = receive_specimen(session, barcode, user.username, body.received_at if body else None)
    return {"specimen_id": specimen.barcode, "status": specimen.status,
            "received_at": specimen.received_at.isoformat() if specimen.received_at else None,
            "order_id": specimen.order_id}


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=400)


@router.post("/orders/{order_id}/cancel", tags=["orders"])
def post_cancel(order_id: int, body: CancelIn, ctx: LisContext = Depends(get_ctx),
                user: User = Depends(require("orders:write"))) -> dict[str, object]:
    with ctx.db.write() as session:
        cancel_order(session, order_id, body.reason, user.username)
        view = load_order(session, order_id)
    assert view is not None
    return {**view.as_dict(), "cancel_reason": view.order.cancel_reason}


class AddTestsIn(BaseModel):
    tests: list[str] = Field(min_length=1, max_length=200)


@router.post("/orders/{order_id}/tests", tags=["orders"])
def post_add_tests(order_id: int, body: AddTestsIn, ctx: LisContext = Depends(get_ctx),
                   user: User = Depends(require("orders:write"))) -> dict[str, object]:
    """Add-on tests on an existing order (same specimen); already-ordered tests are skipped."""
    with ctx.db.write() as session:
        added = add_tests(session, ctx.catalog.get(), order_id, body.tests, user.username)
        codes = [t.test_code for t in added]
        view = load_order(session, order_id)
    assert view is not None
    return {"added": codes, "order": view.as_dict()}


@router.post("/workflow/evaluate", tags=["workflow"])
async def post_evaluate(ctx: LisContext = Depends(get_ctx),
                        _: User = Depends(require("workflow:configure"))) -> dict[str, object]:
    """Evaluate every result still ``received`` now (what the start-up catch-up does)."""
    count = await run_in_threadpool(ctx.workflow.evaluate_received)
    return {"evaluated": count}
