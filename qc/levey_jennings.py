"""Levey-Jennings data (issue 5 §6): per analyte × instrument × lot (the lot fixes the material, i.e. the level).

Points are the lot's QC observations on that instrument in time order: time, value, z against the lot's
current target (so that points and the mean ±1/2/3 SD lines agree), the run and its decision, the
observation's status/flag and the Westgard rules whose violations involve it. Statistics of the numeric
values (:mod:`qc.stats`): n, mean, SD, CV %, cumulative mean/SD/CV after each point, and the comparison with
the target (bias, bias %, SD ratio, z of the observed mean).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from lis.models import ControlLot, ControlMaterial, QcRun, QcRunObservation, QcTarget, QcViolation
from qc.errors import QcNotFound
from qc.model import QcInputError
from qc.stats import Summary, compare_to_target, cumulative, summarize


def _f(x: Decimal | None) -> float | None:
    return float(x) if x is not None else None


def _summary(s: Summary) -> dict[str, object]:
    return {"n": s.n, "mean": _f(s.mean), "sd": _f(s.sd), "cv_pct": _f(s.cv_pct)}


@dataclass(frozen=True, slots=True)
class LeveyJennings:
    """Chart data, ready for JSON."""

    header: dict[str, object]
    lines: dict[str, float] | None
    points: list[dict[str, object]]
    statistics: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        return {**self.header, "lines": self.lines, "points": self.points, "statistics": self.statistics}


def levey_jennings(session: Session, *, instrument: str, test_code: str, lot_id: int,
                   since: datetime | None = None, until: datetime | None = None,
                   limit: int = 1000) -> LeveyJennings:
    """Chart data of ``test_code`` on ``instrument`` for control lot ``lot_id`` (newest ``limit`` points)."""
    lot = session.get(ControlLot, lot_id)
    if lot is None:
        raise QcNotFound(f"lot {lot_id} does not exist")
    material = session.get(ControlMaterial, lot.material_id)
    assert material is not None
    target = session.exec(select(QcTarget).where(QcTarget.lot_id == lot_id, QcTarget.instrument == instrument,
                                                 QcTarget.test_code == test_code)).first()
    stmt = (select(QcRunObservation, QcRun).join(QcRun, col(QcRun.id) == QcRunObservation.run_id)
            .where(QcRunObservation.lot_id == lot_id, QcRun.instrument == instrument, QcRun.test_code == test_code))
    if since is not None:
        stmt = stmt.where(col(QcRunObservation.observed_at) >= since)
    if until is not None:
        stmt = stmt.where(col(QcRunObservation.observed_at) <= until)
    rows = list(session.exec(stmt.order_by(col(QcRunObservation.observed_at).desc(),
                                           col(QcRunObservation.id).desc()).limit(limit)).all())
    rows.reverse()
    run_ids = sorted({run.id for _, run in rows if run.id is not None})
    rules_of: dict[int, set[str]] = {}
    if run_ids:
        for v in session.exec(select(QcViolation).where(col(QcViolation.run_id).in_(run_ids))).all():
            for rid in json.loads(v.result_ids):
                rules_of.setdefault(int(rid), set()).add(v.rule)
    mean = Decimal(target.mean) if target is not None and target.mean is not None else None
    sd = Decimal(target.sd) if target is not None and target.sd is not None else None
    points: list[dict[str, object]] = []
    numeric: list[Decimal] = []
    for m, run in rows:
        value: Decimal | None
        try:
            value = Decimal(m.value)  # numeric values are stored as exact decimal text
        except ArithmeticError:
            value = None
        if value is not None and not value.is_finite():
            value = None
        z = float((value - mean) / sd) if value is not None and mean is not None and sd else None
        if value is not None:
            numeric.append(value)
        points.append({"time": m.observed_at.isoformat(), "value": _f(value), "value_text": m.value, "z": z,
                       "result_id": m.result_id, "run_id": run.id, "run_key": run.run_key,
                       "decision": run.decision, "status": m.status, "flag": m.flag,
                       "rules": sorted(rules_of.get(m.result_id, ()))})
    lines = None
    if mean is not None and sd is not None:
        lines = {"mean": float(mean), **{f"{sign}{k}sd": float(mean + (sd * k if sign == "+" else -sd * k))
                                         for k in (1, 2, 3) for sign in ("+", "-")}}
    stats: dict[str, object] = {"n": len(numeric), "mean": None, "sd": None, "cv_pct": None, "cumulative": [],
                                "versus_target": None}
    if numeric:
        stats.update(_summary(summarize(numeric)))
        stats["cumulative"] = [_summary(s) for s in cumulative(numeric)]
        if mean is not None and sd is not None:
            try:
                cmp = compare_to_target(numeric, mean, sd)
            except QcInputError:
                cmp = None
            if cmp is not None:
                stats["versus_target"] = {"bias": float(cmp.bias), "bias_pct": float(cmp.bias_pct),
                                          "sd_ratio": _f(cmp.sd_ratio), "mean_z": float(cmp.mean_z)}
    header: dict[str, object] = {
        "instrument": instrument, "test_code": test_code, "lot_id": lot_id, "lot_number": lot.lot_number,
        "material": {"id": material.id, "code": material.code, "name": material.name, "level": material.level},
        "target": None if target is None else {"id": target.id, "mean": target.mean, "sd": target.sd,
                                               "unit": target.unit, "source": target.source, "state": target.state},
    }
    return LeveyJennings(header, lines, points, stats)
