"""Workflow configuration API (lab manager / admin): autoverification rule sets and their simulator (CLSI
AUTO10 / AUTO15), delta-check limits, section validation policies, reflex rules; and the TAT report.

Invalid definitions are refused with 422 and a ``detail`` that starts with the field name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from lis.api.deps import get_ctx, require
from lis.context import LisContext
from lis.models import AutoverificationRuleSet, DeltaCheckRule, ReflexRule, User
from lis.models.workflow import AUTOVERIFICATION_RULES
from lis.services.workflow import policies

router = APIRouter(tags=["workflow rules"])


def _rule_set_dict(row: AutoverificationRuleSet) -> dict[str, Any]:
    return {"test_code": row.test_code, "enabled": row.enabled, "av_low": row.av_low, "av_high": row.av_high,
            "rules": [r for r in row.rules.split(",") if r], "error_flags": row.error_flags,
            "updated_by": row.updated_by, "updated_at": row.updated_at.isoformat()}


class RuleSetIn(BaseModel):
    enabled: bool = True
    av_low: float | None = None
    av_high: float | None = None
    rules: list[str] | None = Field(default=None, description=f"subset of {', '.join(AUTOVERIFICATION_RULES)}")
    error_flags: str | None = Field(default=None, max_length=200)


@router.get("/workflow/autoverification-rules")
def get_rule_sets(ctx: LisContext = Depends(get_ctx),
                  _: User = Depends(require("workflow:read"))) -> dict[str, Any]:
    with ctx.db.read() as session:
        rows = session.exec(select(AutoverificationRuleSet).order_by(col(AutoverificationRuleSet.test_code))).all()
    return {"known_rules": list(AUTOVERIFICATION_RULES), "rule_sets": [_rule_set_dict(r) for r in rows]}


@router.put("/workflow/autoverification-rules/{test_code}")
def put_rule_set(test_code: str, body: RuleSetIn, ctx: LisContext = Depends(get_ctx),
                 user: User = Depends(require("workflow:configure"))) -> dict[str, Any]:
    with ctx.db.write() as session:
        row = policies.put_rule_set(session, test_code, user.username, **body.model_dump())
        out = _rule_set_dict(row)
    return out


@router.delete("/workflow/autoverification-rules/{test_code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule_set(test_code: str, ctx: LisContext = Depends(get_ctx),
                    user: User = Depends(require("workflow:configure"))) -> Response:
    with ctx.db.write() as session:
        policies.delete_rule_set(session, test_code, user.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class SimulateIn(BaseModel):
    rule_sets: dict[str, RuleSetIn] = Field(default_factory=dict)
    test_codes: list[str] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None


@router.post("/workflow/autoverification-rules/simulate")
def post_simulate(body: SimulateIn, ctx: LisContext = Depends(get_ctx),
                  _: User = Depends(require("workflow:read"))) -> dict[str, object]:
    """AUTO15: how many historical results the rule sets would have auto-released, and where they differ
    from what people decided."""
    if not body.rule_sets and not body.test_codes:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "rule_sets: give rule_sets or test_codes")
    report = ctx.workflow.simulate({k: v.model_dump() for k, v in body.rule_sets.items()}, body.test_codes,
                                   since=body.since, until=body.until)
    return report.as_dict()


class PolicyIn(BaseModel):
    two_level: bool = True
    self_validation: bool = False
    auto_release: bool = False


@router.get("/workflow/section-policies")
def get_policies(ctx: LisContext = Depends(get_ctx),
                 _: User = Depends(require("workflow:read"))) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return [{"section": p.section, "two_level": p.two_level, "self_validation": p.self_validation,
                 "auto_release": p.auto_release} for p in policies.list_section_policies(session)]


@router.put("/workflow/section-policies/{section}")
def put_policy(section: str, body: PolicyIn, ctx: LisContext = Depends(get_ctx),
               user: User = Depends(require("workflow:configure"))) -> dict[str, object]:
    with ctx.db.write() as session:
        row = policies.put_section_policy(session, section, user.username, **body.model_dump())
        out = {"section": row.section, "two_level": row.two_level, "self_validation": row.self_validation,
               "auto_release": row.auto_release}
    return out


class DeltaIn(BaseModel):
    window_hours: int = 168
    abs_limit: float | None = None
    pct_limit: float | None = None


def _delta_dict(row: DeltaCheckRule) -> dict[str, object]:
    return {"test_code": row.test_code, "window_hours": row.window_hours, "abs_limit": row.abs_limit,
            "pct_limit": row.pct_limit}


@router.get("/workflow/delta-rules")
def get_delta_rules(ctx: LisContext = Depends(get_ctx),
                    _: User = Depends(require("workflow:read"))) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return [_delta_dict(r) for r in session.exec(select(DeltaCheckRule).order_by(col(DeltaCheckRule.test_code)))]


@router.put("/workflow/delta-rules/{test_code}")
def put_delta_rule(test_code: str, body: DeltaIn, ctx: LisContext = Depends(get_ctx),
                   user: User = Depends(require("workflow:configure"))) -> dict[str, object]:
    with ctx.db.write() as session:
        out = _delta_dict(policies.put_delta_rule(session, test_code, user.username, **body.model_dump()))
    return out


@router.delete("/workflow/delta-rules/{test_code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_delta_rule(test_code: str, ctx: LisContext = Depends(get_ctx),
                      user: User = Depends(require("workflow:configure"))) -> Response:
    with ctx.db.write() as session:
        policies.delete_delta_rule(session, test_code, user.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ReflexIn(BaseModel):
    test_code: str = Field(min_length=1, max_length=32)
    condition: str = Field(min_length=1, max_length=20)
    add_test: str = Field(min_length=1, max_length=32)
    threshold: float | None = None
    enabled: bool = True


def _reflex_dict(row: ReflexRule) -> dict[str, object]:
    return {"id": row.id, "test_code": row.test_code, "condition": row.condition, "threshold": row.threshold,
            "add_test": row.add_test, "enabled": row.enabled}


@router.get("/workflow/reflex-rules")
def get_reflex_rules(ctx: LisContext = Depends(get_ctx),
                     _: User = Depends(require("workflow:read"))) -> list[dict[str, object]]:
    with ctx.db.read() as session:
        return [_reflex_dict(r) for r in session.exec(select(ReflexRule).order_by(col(ReflexRule.id)))]


@router.post("/workflow/reflex-rules", status_code=status.HTTP_201_CREATED)
def post_reflex_rule(body: ReflexIn, ctx: LisContext = Depends(get_ctx),
                     user: User = Depends(require("workflow:configure"))) -> dict[str, object]:
    with ctx.db.write() as session:
        out = _reflex_dict(policies.add_reflex_rule(session, user.username, **body.model_dump()))
    return out


@router.delete("/workflow/reflex-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_reflex_rule(rule_id: int, ctx: LisContext = Depends(get_ctx),
                       user: User = Depends(require("workflow:configure"))) -> Response:
    with ctx.db.write() as session:
        policies.delete_reflex_rule(session, rule_id, user.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/reports/tat", tags=["reports"])
def get_tat(ctx: LisContext = Depends(get_ctx), _: User = Depends(require("workflow:read")),
            since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Turnaround time (specimen received → released): median and p90 minutes per test and section, per day."""
    return ctx.workflow.tat_report(since, until)
