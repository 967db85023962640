"""``/qc`` REST routes (mounted under ``/api/v1`` by :func:`qc.wiring.install`).

Permissions (``lis.permissions``): ``qc:read`` staff and clinicians; ``qc:write`` (manual QC values)
staff; ``qc:corrective`` validators, managers, admins; ``qc:config`` (materials, lots, targets, rule sets)
managers and admins. Bad data → 422, unknown ids → 404, conflicts (duplicates, lifted hold, evaluated run)
→ 409, each with a one-line ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from lis.api.deps import get_ctx, require
from lis.context import LisContext
from lis.models import (
    ControlLot,
    ControlMaterial,
    QcCorrectiveAction,
    QcHold,
    QcHoldState,
    QcRuleSet,
    QcRun,
    QcRunObservation,
    QcTarget,
    QcViolation,
    User,
    utcnow,
)
from qc import setup
from qc.errors import QcConflict, QcNotFound
from qc.holds import hold_dict
from qc.levey_jennings import levey_jennings
from qc.model import QcInputError
from qc.service import QcService
from qc.status import qc_status

router = APIRouter(prefix="/qc", tags=["qc"])

Decimalish = float | str


def get_service(request: Request) -> QcService:
    service = getattr(request.app.state, "qc", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the QC service is not installed")
    return service


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except QcInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except QcNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except QcConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


def _dump(row: object) -> dict[str, object]:
    return row.model_dump(mode="json")  # type: ignore[attr-defined, no-any-return]


# -- materials and lots -------------------------------------------------------------------------------
class MaterialIn(BaseModel):
    code: str = Field(min_length=1, max_length=100, description="what the analyser sends (QC specimen id)")
    name: str = Field(min_length=1, max_length=200)
    level: str = Field(default="", max_length=20)
    manufacturer: str = Field(default="", max_length=200)


@router.get("/materials")
def get_materials(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read"))) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return [_dump(m) for m in session.exec(select(ControlMaterial).order_by(ControlMaterial.code)).all()]


@router.post("/materials", status_code=status.HTTP_201_CREATED)
def post_material(body: MaterialIn, ctx: LisContext = Depends(get_ctx),
                  user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors(), ctx.db.write() as session:
        return _dump(setup.create_material(session, user.username, **body.model_dump()))


class LotIn(BaseModel):
    material_id: int
    lot_number: str = Field(min_length=1, max_length=64)
    expires_on: date | None = None
    in_use: bool = True


class LotPatch(BaseModel):
    in_use: bool | None = None
    expires_on: date | None = None


@router.get("/lots")
def get_lots(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
             material_id: int | None = None) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(ControlLot).order_by(col(ControlLot.id))
        if material_id is not None:
            stmt = stmt.where(ControlLot.material_id == material_id)
        return [_dump(lot) for lot in session.exec(stmt).all()]


@router.post("/lots", status_code=status.HTTP_201_CREATED)
def post_lot(body: LotIn, ctx: LisContext = Depends(get_ctx),
             user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors(), ctx.db.write() as session:
        return _dump(setup.create_lot(session, user.username, **body.model_dump()))


@router.patch("/lots/{lot_id}")
def patch_lot(lot_id: int, body: LotPatch, ctx: LisContext = Depends(get_ctx),
              user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors(), ctx.db.write() as session:
        return _dump(setup.update_lot(session, user.username, lot_id, **body.model_dump()))


# -- targets ----------------------------------------------------------------------------------------
class TargetIn(BaseModel):
    lot_id: int
    instrument: str = Field(min_length=1, max_length=64)
    test_code: str = Field(min_length=1, max_length=32)
    mean: Decimalish | None = None
    sd: Decimalish | None = None
    unit: str = Field(default="", max_length=40)
    source: Literal["manufacturer", "lab"] = "manufacturer"
    n_establish: int = Field(default=20, ge=2, le=500)
    tea_pct: float | None = Field(default=None, gt=0, le=100)
    bias_pct: float | None = Field(default=None, ge=-100, le=100)


class TargetPatch(BaseModel):
    mean: Decimalish | None = None
    sd: Decimalish | None = None
    unit: str | None = Field(default=None, max_length=40)
    tea_pct: float | None = Field(default=None, gt=0, le=100)
    bias_pct: float | None = Field(default=None, ge=-100, le=100)


@router.get("/targets")
def get_targets(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
                instrument: str | None = None, test_code: str | None = None,
                lot_id: int | None = None) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(QcTarget).order_by(col(QcTarget.id))
        if instrument:
            stmt = stmt.where(QcTarget.instrument == instrument)
        if test_code:
            stmt = stmt.where(QcTarget.test_code == test_code)
        if lot_id is not None:
            stmt = stmt.where(QcTarget.lot_id == lot_id)
        return [_dump(t) for t in session.exec(stmt).all()]


@router.post("/targets", status_code=status.HTTP_201_CREATED)
def post_target(body: TargetIn, ctx: LisContext = Depends(get_ctx),
                user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors():
        if ctx.catalog.get().by_code.get(body.test_code) is None:
            raise QcInputError(f"test {body.test_code!r} is not in the catalogue")
        with ctx.db.write() as session:
            return _dump(setup.create_target(session, user.username, **body.model_dump()))


@router.patch("/targets/{target_id}")
def patch_target(target_id: int, body: TargetPatch, ctx: LisContext = Depends(get_ctx),
                 user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors(), ctx.db.write() as session:
        return _dump(setup.update_target(session, user.username, target_id, **body.model_dump()))


# -- rule sets ----------------------------------------------------------------------------------------
class RuleSetIn(BaseModel):
    instrument: str = Field(min_length=1, max_length=64)
    test_code: str = Field(min_length=1, max_length=32)
    rejection_rules: list[str] = Field(min_length=1, max_length=20)
    warning_rules: list[str] = Field(default_factory=lambda: ["1_2s", "7_T"], max_length=20)
    reset_on_reject: bool = True
    max_interval_hours: float = Field(default=24.0, gt=0, le=744)
    source: Literal["manual", "sigma proposal"] = "manual"


@router.get("/rule-sets")
def get_rule_sets(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
                  instrument: str | None = None, test_code: str | None = None) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(QcRuleSet).order_by(QcRuleSet.instrument, QcRuleSet.test_code)
        if instrument:
            stmt = stmt.where(QcRuleSet.instrument == instrument)
        if test_code:
            stmt = stmt.where(QcRuleSet.test_code == test_code)
        return [_dump(r) for r in session.exec(stmt).all()]


@router.get("/rule-sets/proposal")
def get_rule_set_proposal(
    instrument: str, test_code: str, ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
    levels: int | None = Query(default=None, ge=2, le=3), tea_pct: float | None = Query(default=None, gt=0),
    bias_pct: float | None = None, cv_pct: float | None = Query(default=None, gt=0),
) -> dict[str, object]:
    """Sigma-metric PROPOSAL (labelled ``proposal``, ``confirmed: false``); confirm it with PUT /qc/rule-sets."""
    with _errors(), ctx.db.read() as session:
        return setup.propose_rule_set(session, instrument, test_code, levels=levels, tea_pct=tea_pct,
                                      bias_pct=bias_pct, cv_pct=cv_pct).as_dict()


@router.put("/rule-sets")
def put_rule_set(body: RuleSetIn, ctx: LisContext = Depends(get_ctx),
                 user: User = Depends(require("qc:config"))) -> dict[str, object]:
    with _errors(), ctx.db.write() as session:
        return _dump(setup.set_rule_set(session, user.username, **body.model_dump()))


# -- runs, holds, corrective actions ---------------------------------------------------------------------
@router.get("/runs")
def get_runs(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
             instrument: str | None = None, test_code: str | None = None, decision: str | None = None,
             limit: int = Query(default=100, ge=1, le=1000)) -> list[dict[str, object]]:
    """Newest first, each with its observations and violations."""
    with ctx.db.read() as session:
        stmt = select(QcRun).order_by(col(QcRun.id).desc()).limit(limit)
        if instrument:
            stmt = stmt.where(QcRun.instrument == instrument)
        if test_code:
            stmt = stmt.where(QcRun.test_code == test_code)
        if decision:
            stmt = stmt.where(QcRun.decision == decision)
        runs = list(session.exec(stmt).all())
        ids = [r.id for r in runs]
        obs: dict[int, list[dict[str, object]]] = {}
        for m in session.exec(select(QcRunObservation).where(col(QcRunObservation.run_id).in_(ids))
                              .order_by(col(QcRunObservation.id))).all():
            obs.setdefault(m.run_id, []).append(_dump(m))
        violations: dict[int, list[dict[str, object]]] = {}
        for v in session.exec(select(QcViolation).where(col(QcViolation.run_id).in_(ids))
                              .order_by(col(QcViolation.id))).all():
            violations.setdefault(v.run_id, []).append(
                {"rule": v.rule, "scope": v.scope, "severity": v.severity, "material_id": v.material_id,
                 "result_ids": json.loads(v.result_ids)})
    return [{**_dump(r), "observations": obs.get(r.id or 0, []), "violations": violations.get(r.id or 0, [])}
            for r in runs]


@router.get("/holds")
def get_holds(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
              instrument: str | None = None, test_code: str | None = None, open_only: bool = True,
              limit: int = Query(default=200, ge=1, le=2000)) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(QcHold).order_by(col(QcHold.id).desc()).limit(limit)
        if open_only:
            stmt = stmt.where(QcHold.state != QcHoldState.LIFTED)
        if instrument:
            stmt = stmt.where(QcHold.instrument == instrument)
        if test_code:
            stmt = stmt.where(QcHold.test_code == test_code)
        return [hold_dict(h) for h in session.exec(stmt).all()]


class CorrectiveActionIn(BaseModel):
    action: str = Field(min_length=3, max_length=4000)


@router.post("/holds/{hold_id}/corrective-action", status_code=status.HTTP_201_CREATED)
def post_corrective_action(hold_id: int, body: CorrectiveActionIn, service: QcService = Depends(get_service),
                           user: User = Depends(require("qc:corrective"))) -> dict[str, object]:
    """Record the corrective action; the hold is lifted by the next accepted run (state ``awaiting_run``)."""
    with _errors():
        return service.record_corrective_action(hold_id, body.action, user.username)


@router.get("/corrective-actions")
def get_corrective_actions(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
                           hold_id: int | None = None) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        stmt = select(QcCorrectiveAction).order_by(col(QcCorrectiveAction.id).desc())
        if hold_id is not None:
            stmt = stmt.where(QcCorrectiveAction.hold_id == hold_id)
        return [_dump(a) for a in session.exec(stmt).all()]


# -- manual entry, Levey-Jennings, status -----------------------------------------------------------------
class ManualObservationIn(BaseModel):
    instrument: str = Field(min_length=1, max_length=64)
    test_code: str = Field(min_length=1, max_length=32)
    material_id: int
    value: str = Field(min_length=1, max_length=100)
    lot_number: str | None = Field(default=None, max_length=64)
    observed_at: datetime | None = None
    run_key: str | None = Field(default=None, min_length=1, max_length=100)


@router.post("/observations", status_code=status.HTTP_201_CREATED)
def post_observation(body: ManualObservationIn, ctx: LisContext = Depends(get_ctx),
                     service: QcService = Depends(get_service),
                     user: User = Depends(require("qc:write"))) -> dict[str, object]:
    """A QC value typed by a technician: the same evaluation path as analyser QC."""
    with _errors():
        if ctx.config.instrument(body.instrument) is None:
            raise QcInputError(f"instrument {body.instrument!r} is not configured")
        if ctx.catalog.get().by_code.get(body.test_code) is None:
            raise QcInputError(f"test {body.test_code!r} is not in the catalogue")
        result_id, run = service.enter_manual(actor=user.username, **body.model_dump())
    return {"result_id": result_id, "run": _dump(run)}


@router.get("/levey-jennings")
def get_levey_jennings(
    instrument: str, test_code: str, lot_id: int, ctx: LisContext = Depends(get_ctx),
    _: User = Depends(require("qc:read")), since: datetime | None = None, until: datetime | None = None,
    limit: int = Query(default=1000, ge=1, le=10000),
) -> dict[str, object]:
    with _errors(), ctx.db.read() as session:
        return levey_jennings(session, instrument=instrument, test_code=test_code, lot_id=lot_id, since=since,
                              until=until, limit=limit).as_dict()


@router.get("/status")
def get_status(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("qc:read")),
               instrument: str | None = None) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return qc_status(session, utcnow(), instrument)
