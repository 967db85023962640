"""Autoverification rule simulator (CLSI AUTO15 validation): replay a rule set over historical results and
compare with what people decided, before the rule set is switched on.

Human decision of a historical result: ``released`` (released by a person), ``corrected`` (released, later
amended), ``not released`` (rejected or rerun). Results auto-released by autoverification carry no human
decision and are left out. The QC state is the one recorded at the original evaluation (a hold has since
been lifted or not, but then it mattered); every other check is recomputed with today's ranges.

Disagreements reported: **would auto-release, a person did not** (the dangerous kind: each must be
explained before go-live) and **would hold, a person released unchanged** (review workload).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import Result, ResultEvaluation, ResultStatus
from lis.services.workflow.autoverify import RuleSetSpec
from lis.services.workflow.evaluation import AUTOVERIFICATION_ACTOR, Evaluator, chunks
from lis.services.workflow.policies import load_policies

HISTORY_STATES = (ResultStatus.RELEASED, ResultStatus.AMENDED, ResultStatus.REJECTED, ResultStatus.RERUN_REQUESTED)


@dataclass
class SimulationReport:
    test_codes: list[str]
    total: int = 0
    would_autoverify: int = 0
    human_released: int = 0
    human_not_released: int = 0
    agree: int = 0
    would_release_human_did_not: list[dict[str, object]] = field(default_factory=list)
    would_hold_human_released: list[dict[str, object]] = field(default_factory=list)
    failed_rules: dict[str, int] = field(default_factory=dict)

    def as_dict(self, sample: int = 200) -> dict[str, object]:
        return {
            "test_codes": self.test_codes, "total": self.total, "would_autoverify": self.would_autoverify,
            "autoverification_rate": round(self.would_autoverify / self.total, 4) if self.total else None,
            "human_released": self.human_released, "human_not_released": self.human_not_released,
            "agree": self.agree,
            "would_release_human_did_not_count": len(self.would_release_human_did_not),
            "would_hold_human_released_count": len(self.would_hold_human_released),
            "would_release_human_did_not": self.would_release_human_did_not[:sample],
            "would_hold_human_released": self.would_hold_human_released[:sample],
            "failed_rules": dict(sorted(self.failed_rules.items(), key=lambda kv: -kv[1])),
        }


def _human_decision(r: Result) -> str | None:
    if r.status == ResultStatus.RELEASED:
        return None if r.released_by == AUTOVERIFICATION_ACTOR else "released"
    if r.status == ResultStatus.AMENDED:
        return "corrected"
    return "not released"


def _recorded_holds(session: Session, ids: list[int]) -> dict[int, str]:
    held: dict[int, str] = {}
    for rid, rules in session.exec(select(ResultEvaluation.result_id, ResultEvaluation.rules)
                                   .where(col(ResultEvaluation.result_id).in_(ids))).all():
        for outcome in json.loads(rules or "[]"):
            if outcome.get("rule") == "qc_accepted" and not outcome.get("passed"):
                held[rid] = outcome.get("detail") or "held by QC"
    return held


def simulate(session: Session, evaluator: Evaluator, rule_sets: dict[str, RuleSetSpec], *,
             since: datetime | None = None, until: datetime | None = None, limit: int = 200_000) -> SimulationReport:
    """Run ``rule_sets`` (test code → rule set) over the historical results of those tests; nothing is written."""
    report = SimulationReport(sorted(rule_sets))
    if not rule_sets:
        return report
    stmt = (select(Result.id).where(col(Result.test_code).in_(list(rule_sets)), col(Result.is_qc).is_(False),
                                    Result.revision == 0, col(Result.status).in_(HISTORY_STATES))
            .order_by(col(Result.id)).limit(limit))
    if since is not None:
        stmt = stmt.where(col(Result.received_at) >= since)
    if until is not None:
        stmt = stmt.where(col(Result.received_at) < until)
    ids = [i for i in session.exec(stmt).all() if i is not None]
    policies = load_policies(session)
    for part in chunks(ids):
        rows = {r.id: r for r in session.exec(select(Result).where(col(Result.id).in_(part))).all()}
        evaluated = evaluator.compute(session, part, policies, only_received=False, rule_sets=rule_sets,
                                      held=_recorded_holds(session, part), link_reruns=False)
        for e in evaluated:
            human = _human_decision(rows[e.result_id])
            if human is None:
                continue
            report.total += 1
            auto = e.decision.autoverified
            report.would_autoverify += auto
            report.human_released += human == "released"
            report.human_not_released += human != "released"
            for failed in e.decision.failed:
                report.failed_rules[failed.rule] = report.failed_rules.get(failed.rule, 0) + 1
            row = {"result_id": e.result_id, "test_code": e.test_code, "value": e.facts.value,
                   "lis_flags": e.facts.lis_flag, "human": human, "failed_rules": [o.rule for o in e.decision.failed],
                   "reasons": e.decision.reasons()}
            if auto and human != "released":
                report.would_release_human_did_not.append(row)
            elif not auto and human == "released":
                report.would_hold_human_released.append(row)
            else:
                report.agree += 1
    return report
