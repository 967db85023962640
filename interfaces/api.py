"""REST routes of the EMR side (mounted under ``/api/v1`` by ``interfaces.wiring.install``).

* ``GET /outbox`` (filters: status, destination, order_id), ``GET /outbox/summary``, ``GET /outbox/{id}``,
  ``POST /outbox/{id}/retry`` (dead letter → queued again, audited);
* ``GET /results/{id}/deliveries``: delivery status of one result at every destination;
* ``GET /reports?order_id=``, ``GET /reports/{id}/pdf``: signed report versions (Circular 13/2025);
* ``GET /emr/inbound`` (status=needs_attention...), ``POST /emr/inbound/{id}/reprocess``;
* ``POST /fhir/ServiceRequest``: an order from the EMR as FHIR R4 (201 + the ServiceRequest with the LIS
  filler identifier; OperationOutcome on error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from interfaces import outbox
from interfaces.fhir_orders import (
    FhirOrderError,
    operation_outcome,
    parse_service_request,
    read_service_request,
    validate_service_request,
)
from interfaces.orders_in import InboundHandler
from lis.api.deps import current_user, get_ctx, require
from lis.context import LisContext
from lis.models import EmrInbound, Order, OutboxMessage, Role, SignedReport, User

FHIR_SOURCE = "fhir-api"
FHIR_JSON = "application/fhir+json"
_OPERATORS = (Role.TECHNICIAN, Role.VALIDATOR, Role.MANAGER, Role.ADMIN)

router = APIRouter(tags=["emr"])


def operators(user: User = Depends(current_user)) -> User:
    """Lab staff may retry deliveries and reprocess EMR messages."""
    if user.role not in _OPERATORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not retry EMR deliveries")
    return user


def _wake(request: Request) -> Callable[[], None]:
    worker = getattr(request.app.state, "outbox_worker", None)
    return worker.wake if worker is not None else (lambda: None)


@router.get("/outbox")
def get_outbox(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("results:read")),
               status_: str | None = Query(default=None, alias="status"), destination: str | None = None,
               order_id: int | None = None, limit: int = Query(default=200, ge=1, le=2000),
               offset: int = Query(default=0, ge=0)) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        rows = outbox.list_outbox(session, status=status_, destination=destination, order_id=order_id,
                                  limit=limit, offset=offset)
    return [outbox.outbox_dict(r) for r in rows]


@router.get("/outbox/summary")
def get_outbox_summary(ctx: LisContext = Depends(get_ctx),
                       _: User = Depends(require("results:read"))) -> dict[str, dict[str, int]]:
    with ctx.db.read() as session:
        return outbox.status_counts(session)


@router.get("/outbox/{outbox_id}")
def get_outbox_row(outbox_id: int, ctx: LisContext = Depends(get_ctx),
                   _: User = Depends(require("results:read"))) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = session.get(OutboxMessage, outbox_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"outbox message {outbox_id} not found")
    return outbox.outbox_dict(row, with_payload=True)


@router.post("/outbox/{outbox_id}/retry")
def post_outbox_retry(outbox_id: int, request: Request, ctx: LisContext = Depends(get_ctx),
                      user: User = Depends(operators)) -> dict[str, Any]:
    try:
        with ctx.db.write() as session:
            row = outbox.retry(session, outbox_id, user.username)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except outbox.OutboxRetryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    _wake(request)()
    return outbox.outbox_dict(row)


@router.get("/results/{result_id}/deliveries")
def get_result_deliveries(result_id: int, ctx: LisContext = Depends(get_ctx),
                          _: User = Depends(require("results:read"))) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return outbox.deliveries_of_result(session, result_id)


@router.get("/reports")
def get_reports(order_id: int, ctx: LisContext = Depends(get_ctx),
                _: User = Depends(require("results:read"))) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        rows = session.exec(select(SignedReport.id, SignedReport.version, SignedReport.correction,
                                   SignedReport.signer, SignedReport.certificate_subject, SignedReport.signed_at,
                                   SignedReport.sha256).where(SignedReport.order_id == order_id)
                            .order_by(col(SignedReport.version))).all()
    return [{"id": r[0], "version": r[1], "correction": r[2], "signer": r[3], "certificate_subject": r[4],
             "signed_at": r[5].isoformat(), "sha256": r[6], "pdf": f"/api/v1/reports/{r[0]}/pdf"} for r in rows]


@router.get("/reports/{report_id}/pdf")
def get_report_pdf(report_id: int, ctx: LisContext = Depends(get_ctx),
                   _: User = Depends(require("results:read"))) -> Response:
    with ctx.db.read() as session:
        report = session.get(SignedReport, report_id)
        order = session.get(Order, report.order_id) if report else None
    if report is None or order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"report {report_id} not found")
    name = f"{order.filler_number}-v{report.version}.pdf"
    return Response(report.pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/emr/inbound")
def get_inbound(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("orders:read")),
                status_: str | None = Query(default=None, alias="status"),
                limit: int = Query(default=200, ge=1, le=2000)) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        stmt = select(EmrInbound).order_by(col(EmrInbound.id).desc()).limit(limit)
        if status_:
            stmt = stmt.where(EmrInbound.status == status_)
        rows = session.exec(stmt).all()
    return [{"id": r.id, "source": r.source, "message_type": r.message_type, "control_id": r.control_id,
             "received_at": r.received_at.isoformat(), "status": r.status, "error": r.error,
             "order_id": r.order_id} for r in rows]


def _handler(ctx: LisContext, source: str) -> InboundHandler:
    parser = parse_service_request if source == FHIR_SOURCE else None
    return InboundHandler(ctx.db, ctx.catalog.get, ctx.bus, source, ctx.config.site.timezone, parser=parser)


@router.post("/emr/inbound/{inbound_id}/reprocess")
def post_inbound_reprocess(inbound_id: int, ctx: LisContext = Depends(get_ctx),
                           _: User = Depends(operators)) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = session.get(EmrInbound, inbound_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"inbound message {inbound_id} not found")
    result = _handler(ctx, row.source).reprocess(inbound_id)
    return {"id": inbound_id, "status": result.status, "ack": result.ack_code, "detail": result.text,
            "order_ids": list(result.order_ids)}


def _fhir_error(exc: FhirOrderError) -> JSONResponse:
    code = "invalid" if exc.status == 400 else "processing"
    return JSONResponse(operation_outcome(str(exc), code, expression=exc.expression), status_code=exc.status,
                        media_type=FHIR_JSON)


@router.post("/fhir/ServiceRequest", status_code=status.HTTP_201_CREATED)
async def post_service_request(request: Request, ctx: LisContext = Depends(get_ctx),
                               _: User = Depends(require("orders:write"))) -> Response:
    body = await request.body()
    try:
        data = validate_service_request(body)
        _message, key = read_service_request(data)
    except FhirOrderError as exc:
        return _fhir_error(exc)
    result = await run_in_threadpool(_handler(ctx, FHIR_SOURCE).process, body, key)
    if result.ack_code != "AA":
        return JSONResponse(operation_outcome(result.text, "processing", expression=result.where or None),
                            status_code=422, media_type=FHIR_JSON)
    with ctx.db.read() as session:
        order = session.get(Order, result.order_ids[0]) if result.order_ids else None
    if order is None:
        return JSONResponse(operation_outcome("the request was accepted but created no order", "processing"),
                            status_code=422, media_type=FHIR_JSON)
    out = dict(data)
    out["id"] = order.filler_number
    out["identifier"] = [*data.get("identifier", []), {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL"}]},
        "system": "urn:openlis:filler", "value": order.filler_number}]
    code = status.HTTP_200_OK if result.status == "duplicate" else status.HTTP_201_CREATED
    return JSONResponse(out, status_code=code, media_type=FHIR_JSON,
                        headers={"Location": f"/api/v1/fhir/ServiceRequest/{order.filler_number}"})
