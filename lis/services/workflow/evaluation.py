"""Evaluation on arrival: value parsing, unit check, reference range by sex and age at collection, LIS flags,
plausibility, delta check, rerun linking, QC hold, then the autoverification decision (CLSI AUTO10).

Batched: a chunk of results costs a fixed number of queries (results, patients, specimens, previous results
for the delta check, rerun originals, QC holds, calculated inputs) plus one bulk UPDATE and one bulk INSERT,
whatever its size — never one query per result. The rules themselves come from a
:class:`~lis.services.workflow.policies.PolicySnapshot` loaded once per batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from lis.models import CalculatedInput, Patient, Result, ResultEvaluation, ResultStatus, Specimen
from lis.services.values import parse_value
from lis.services.workflow.autoverify import Decision, ResultFacts, RuleSetSpec, decide
from lis.services.workflow.flags import delta_check, interpret, plausible, unit_matches
from lis.services.workflow.policies import PolicySnapshot
from lis.services.workflow.ranges import age_in_days, select_range

HoldQuery = Callable[[Session, Sequence[int]], dict[int, str]]

AUTOVERIFICATION_ACTOR = "autoverification"
CALCULATED_INSTRUMENT = "calculated"
#: results that never serve as "the previous result" of a delta check
NOT_COMPARABLE = (ResultStatus.REJECTED, ResultStatus.AMENDED, ResultStatus.RERUN_REQUESTED,
                  ResultStatus.UNMATCHED)
CHUNK = 2000

_R = Result.__table__  # type: ignore[attr-defined]
_E = ResultEvaluation.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class Evaluated:
    """One result's evaluation: the facts, the decision and the state it moves to."""

    result_id: int
    test_code: str
    specimen_id: int | None
    order_id: int | None
    status: str
    facts: ResultFacts
    decision: Decision
    turnaround_from: datetime
    age_days: int | None = None


@dataclass
class EvaluationBatch:
    evaluated: list[Evaluated] = field(default_factory=list)

    @property
    def released_ids(self) -> list[int]:
        return [e.result_id for e in self.evaluated if e.status == ResultStatus.RELEASED]

    @property
    def order_ids(self) -> set[int]:
        return {e.order_id for e in self.evaluated if e.order_id is not None}

    def count(self, status: str) -> int:
        return sum(1 for e in self.evaluated if e.status == status)


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


class Evaluator:
    """Evaluates results in batches; ``holds`` is the QC hold query (``lis.services.qc_holds.held_results``)."""

    def __init__(self, holds: HoldQuery) -> None:
        self.holds = holds

    # -- computing (no writes) ----------------------------------------------------------------------------
    def compute(
        self, session: Session, result_ids: Sequence[int], policies: PolicySnapshot, *,
        only_received: bool = True, rule_sets: dict[str, RuleSetSpec] | None = None,
        held: dict[int, str] | None = None, link_reruns: bool = True, lock: bool = False,
    ) -> list[Evaluated]:
        """Facts and decisions for one chunk (the simulator passes other ``rule_sets`` and recorded ``held``).

        ``lock`` (when applying): the rows are read ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two evaluators
        never evaluate the same result and a person's concurrent action waits or is skipped, never lost.
        """
        cols = (_R.c.id, _R.c.test_code, _R.c.instrument, _R.c.value, _R.c.units, _R.c.abnormal_flags,
                _R.c.result_status, _R.c.comment, _R.c.specimen_id, _R.c.patient_id, _R.c.received_at,
                _R.c.observed_at, _R.c.rerun_of_id)
        stmt = select(*cols).where(_R.c.id.in_(list(result_ids)), _R.c.is_qc.is_(False), _R.c.test_code.is_not(None))
        if only_received:
            stmt = stmt.where(_R.c.status == ResultStatus.RECEIVED)
        stmt = stmt.order_by(_R.c.id)
        if lock:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.connection().execute(stmt).all()
        if not rows:
            return []
        patient_ids = {r.patient_id for r in rows if r.patient_id is not None}
        specimen_ids = {r.specimen_id for r in rows if r.specimen_id is not None}
        patients = {p.id: p for p in session.connection().execute(
            select(Patient.id, Patient.sex, Patient.birth_date).where(Patient.id.in_(patient_ids))  # type: ignore[union-attr]
        ).all()} if patient_ids else {}
        specimens = {s.id: s for s in session.connection().execute(
            select(Specimen.id, Specimen.order_id, Specimen.collected_at, Specimen.received_at)
            .where(Specimen.id.in_(specimen_ids))  # type: ignore[union-attr]
        ).all()} if specimen_ids else {}
        previous = self._previous_results(session, rows, policies)
        originals = self._rerun_originals(session, rows) if link_reruns else {}
        if held is None:
            held = self._held(session, [r.id for r in rows], rows)
        rule_sets = policies.rule_sets if rule_sets is None else rule_sets
        out: list[Evaluated] = []
        for r in rows:
            test = policies.tests.get(r.test_code)
            parsed = parse_value(r.value)
            patient = patients.get(r.patient_id)
            specimen = specimens.get(r.specimen_id)
            collected = (specimen.collected_at if specimen is not None else None) or r.observed_at or r.received_at
            age = age_in_days(patient.birth_date, collected) if patient is not None else None
            sex = patient.sex if patient is not None else "U"
            limits = select_range(policies.ranges.get(r.test_code, ()), sex, age, r.instrument)
            interp = interpret(parsed.number, parsed.comparator, r.value, limits)
            unit_ok = test is None or unit_matches(r.units, test.unit)
            delta = None
            spec = policies.delta_rules.get(r.test_code)
            if spec is not None and parsed.number is not None and not parsed.is_censored and r.patient_id:
                prev = _latest_before(previous.get((r.patient_id, r.test_code), ()), r.received_at, r.id,
                                      timedelta(hours=spec.window_hours))
                if prev is not None:
                    delta = delta_check(parsed.number, prev[2], prev[1], spec.abs_limit, spec.pct_limit)
            rerun_of = r.rerun_of_id
            if rerun_of is None and r.specimen_id is not None:
                candidates = [o for o in originals.get((r.specimen_id, r.test_code), ()) if o < r.id]
                rerun_of = max(candidates) if candidates else None
            facts = ResultFacts(
                result_id=r.id, test_code=r.test_code, numeric_test=bool(test and test.numeric), value=r.value,
                number=parsed.number, comparator=parsed.comparator, instrument_flags=r.abnormal_flags,
                result_status=r.result_status, lis_flag=interp.flag, critical=interp.critical, unit_ok=unit_ok,
                unit_detail="" if unit_ok else f"unit {r.units!r} is not the catalogue unit {test.unit!r}"
                if test else "", plausible=plausible(parsed.number, parsed.comparator,
                                                     test.validity_low if test else None,
                                                     test.validity_high if test else None),
                limits=limits, delta=delta, rerun_of_id=rerun_of, comment=r.comment, held_reason=held.get(r.id),
            )
            if age is None:
                facts.notes.append("age unknown: the adult range applies")
            if limits is None:
                facts.notes.append("no reference range applies")
            decision = decide(facts, rule_sets.get(r.test_code))
            out.append(Evaluated(
                r.id, r.test_code, r.specimen_id, specimen.order_id if specimen is not None else None,
                ResultStatus.AUTOVERIFIED if decision.autoverified else ResultStatus.PENDING, facts, decision,
                (specimen.received_at if specimen is not None else None) or r.received_at, age,
            ))
        return out

    def held_for(self, session: Session, results: Sequence[Any]) -> dict[int, str]:
        """QC holds of these results (objects with ``id`` and ``instrument``)."""
        return self._held(session, [r.id for r in results], results) if results else {}

    def _held(self, session: Session, ids: list[int], rows: Sequence[Any]) -> dict[int, str]:
        """QC holds; a calculated result is held when any of its inputs is."""
        held = dict(self.holds(session, ids))
        calc = [r.id for r in rows if r.instrument == CALCULATED_INSTRUMENT]
        if calc:
            links = session.connection().execute(
                select(CalculatedInput.result_id, CalculatedInput.input_result_id)
                .where(CalculatedInput.result_id.in_(calc))  # type: ignore[attr-defined]
            ).all()
            input_held = self.holds(session, sorted({link.input_result_id for link in links}))
            for link in links:
                if link.input_result_id in input_held:
                    held[link.result_id] = f"input result {link.input_result_id}: {input_held[link.input_result_id]}"
        return held

    @staticmethod
    def _previous_results(session: Session, rows: Sequence[Any],
                          policies: PolicySnapshot) -> dict[tuple[int, str], list[tuple[datetime, int, float]]]:
        wanted = [r for r in rows if r.test_code in policies.delta_rules and r.patient_id is not None]
        if not wanted:
            return {}
        longest = max(policies.delta_rules[r.test_code].window_hours for r in wanted)
        since = min(r.received_at for r in wanted) - timedelta(hours=longest)
        found: dict[tuple[int, str], list[tuple[datetime, int, float]]] = {}
        patient_ids = sorted({r.patient_id for r in wanted})
        codes = sorted({r.test_code for r in wanted})
        for part in chunks(patient_ids, 1000):
            for p in session.connection().execute(
                select(_R.c.id, _R.c.patient_id, _R.c.test_code, _R.c.value_numeric, _R.c.received_at).where(
                    _R.c.patient_id.in_(part), _R.c.test_code.in_(codes), _R.c.value_numeric.is_not(None),
                    _R.c.is_qc.is_(False), _R.c.status.not_in(NOT_COMPARABLE), _R.c.received_at >= since)
            ).all():
                found.setdefault((p.patient_id, p.test_code), []).append((p.received_at, p.id, p.value_numeric))
        for series in found.values():
            series.sort()
        return found

    @staticmethod
    def _rerun_originals(session: Session, rows: Sequence[Any]) -> dict[tuple[int, str], list[int]]:
        specimen_ids = sorted({r.specimen_id for r in rows if r.specimen_id is not None})
        if not specimen_ids:
            return {}
        out: dict[tuple[int, str], list[int]] = {}
        for o in session.connection().execute(
            select(_R.c.id, _R.c.specimen_id, _R.c.test_code)
            .where(_R.c.specimen_id.in_(specimen_ids), _R.c.status == ResultStatus.RERUN_REQUESTED)
        ).all():
            out.setdefault((o.specimen_id, o.test_code), []).append(o.id)
        return out

    # -- applying (writes) --------------------------------------------------------------------------------
    def apply(self, session: Session, result_ids: Sequence[int], policies: PolicySnapshot, now: datetime, *,
              set_status: bool = True) -> EvaluationBatch:
        """Evaluate results still ``received`` and store flags, evaluation and new state (one chunk at a time).

        Autoverified results of a section with ``auto_release`` go straight to ``released`` (the caller runs
        the release hooks and publishes ``ResultReleased``); the others wait as ``autoverified``. With
        ``set_status=False`` (an amendment) only flags and evaluation are stored.
        """
        batch = EvaluationBatch()
        for part in chunks(list(result_ids)):
            evaluated = self.compute(session, part, policies, lock=True)
            if not evaluated:
                continue
            params: list[dict[str, Any]] = []
            records: list[dict[str, Any]] = []
            for e in evaluated:
                policy = policies.policy_for_test(e.test_code)
                if e.status == ResultStatus.AUTOVERIFIED and policy.auto_release:
                    e.status = ResultStatus.RELEASED
                released = e.status == ResultStatus.RELEASED
                auto = e.status in (ResultStatus.AUTOVERIFIED, ResultStatus.RELEASED)
                f = e.facts
                params.append({
                    "b_id": e.result_id, "b_status": e.status if set_status else ResultStatus.RECEIVED,
                    "b_flags": f.lis_flag, "b_critical": f.critical,
                    "b_reason": e.decision.reasons() if e.status == ResultStatus.PENDING and set_status else "",
                    "b_rerun_of": f.rerun_of_id,
                    "b_validated_by": AUTOVERIFICATION_ACTOR if auto and set_status else "",
                    "b_validated_at": now if auto and set_status else None,
                    "b_released_by": AUTOVERIFICATION_ACTOR if released and set_status else "",
                    "b_released_at": now if released and set_status else None,
                    "b_tat": (now - e.turnaround_from).total_seconds() if released and set_status else None,
                    "b_now": now,
                })
                records.append({
                    "result_id": e.result_id, "evaluated_at": now,
                    "decision": ResultStatus.AUTOVERIFIED if e.decision.autoverified else ResultStatus.PENDING,
                    "comparator": f.comparator, "unit_ok": f.unit_ok, "plausible": f.plausible,
                    "range_id": f.limits.id if f.limits else None,
                    "range_text": f.limits.describe()[:100] if f.limits else "",
                    "age_days": e.age_days, "delta_previous_id": f.delta.previous_id if f.delta else None,
                    "delta_change": f.delta.change if f.delta else None, "delta_ok": f.delta.ok if f.delta else None,
                    "rules": e.decision.rules_json(),
                    "reasons": "; ".join(x for x in (e.decision.reasons(), *f.notes) if x),
                })
            if not set_status:
                for e in evaluated:
                    e.status = ResultStatus.RECEIVED
            conn = session.connection()
            conn.execute(_UPDATE, params)
            conn.execute(delete(_E).where(_E.c.result_id.in_([e.result_id for e in evaluated])))
            conn.execute(insert(_E), records)
            batch.evaluated.extend(evaluated)
        return batch


def _latest_before(series: Sequence[tuple[datetime, int, float]], at: datetime, result_id: int,
                   window: timedelta) -> tuple[datetime, int, float] | None:
    """The latest (time, id, value) strictly before (at, result_id) and no older than ``window``."""
    i = bisect.bisect_left(series, (at, result_id, float("-inf")))
    while i > 0:
        i -= 1
        candidate = series[i]
        if candidate[1] == result_id:
            continue
        return candidate if candidate[0] >= at - window else None
    return None


_UPDATE = (
    update(_R)
    .where(_R.c.id == bindparam("b_id"), _R.c.status == ResultStatus.RECEIVED)
    .values(
        status=bindparam("b_status"), lis_flags=bindparam("b_flags"), critical=bindparam("b_critical"),
        status_reason=bindparam("b_reason"), rerun_of_id=bindparam("b_rerun_of"),
        validated_by=bindparam("b_validated_by"), validated_at=bindparam("b_validated_at"),
        released_by=bindparam("b_released_by"), released_at=bindparam("b_released_at"),
        turnaround_seconds=bindparam("b_tat"), updated_by=AUTOVERIFICATION_ACTOR, updated_at=bindparam("b_now"),
        version=_R.c.version + 1,
    )
)
