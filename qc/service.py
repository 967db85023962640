"""QC service: evaluation on arrival (issue 5 §2, §4, §5 and "Bad input"), on the tables of ``lis.models.qc``.

Flow. Ingest publishes ``ResultsIngested`` after its commit; :meth:`QcService.process` takes its QC result
ids (manual entry calls the same method) and, in one transaction per call:

1. **Resolves** each observation's material, lot and target (:mod:`qc.resolve`: material = the result's
   ``control_material`` or else its QC specimen id; lot = the one sent or else the newest in use); what
   prevents an evaluation (unknown material, no target, SD ≤ 0, ``<0.1``...) is stored as its ``flag``.
2. **Groups** observations into runs per instrument × analyte: an observation joins the open run when it is
   within ``run_window`` (default 30 min) of the run's first observation and its material is not in the run
   yet, or when it names the run explicitly (``run_key``). Otherwise the open run is closed (evaluated) and
   a new one starts.
3. **Evaluates a run as soon as it is complete** — every material with a target for that analyte and
   instrument (lot in use, not expired) is present — or when its window has passed (periodic check) or the
   next run starts. Engine: :func:`qc.rules.evaluate_new_run` with the stored history: the runs of the pair
   after its last rejected run (``reset_on_reject``), kept in memory and rebuilt from the tables when
   another process has evaluated since (or after a restart). A new lot starts a fresh history (the engine
   keys the history by lot).
4. **Decides**: ``accept`` / ``warning`` / ``reject`` from the engine; ``cannot_evaluate`` when any
   observation is flagged (fail closed: a hold is opened, see :mod:`qc.holds`); ``establishing`` when the
   run only holds observations for lab targets being established (:mod:`qc.establish` activates them
   after ``n_establish`` runs). QC results of an analyte with no target and no rule set on that
   instrument are stored in a ``cannot_evaluate`` run that opens no hold (the analyte is not under QC).
5. **Stores** the decision, the violations with rule, scope, severity and the result ids involved, opens or
   lifts holds (audited), and after commit publishes :class:`QcRunEvaluated` on the bus.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from lis.config import DEFAULT_TIMEZONE
from lis.db import Database
from lis.events import EventBus, QcHoldsChanged, QcRunEvaluated, ResultsIngested
from lis.models import (
    ControlLot,
    ControlMaterial,
    QcDecision,
    QcHold,
    QcHoldReason,
    QcRun,
    QcRunObservation,
    QcTarget,
    QcViolation,
    Result,
    ResultStatus,
    utcnow,
)
from lis.services import audit
from lis.services.values import numeric_or_none
from qc.errors import QcConflict, QcNotFound
from qc.establish import establish_targets
from qc.holds import (
    SYSTEM_ACTOR,
    HoldChanges,
    lift_after_accepted_run,
    lock_pair,
    open_failure_hold,
    open_interval_holds,
    record_corrective_action,
)
from qc.model import QcInputError, QcObservation, RuleSet
from qc.resolve import resolve_observation
from qc.rules import QcHistory, evaluate_new_run, history_from_runs
from qc.setup import effective_rules

log = logging.getLogger(__name__)

Pair = tuple[str, str]
HISTORY_RUNS = 100  # runs read back to rebuild a history (the engine keeps at most 12 per material)


@dataclass(frozen=True, slots=True)
class QcSettings:
    """Service settings (not in ``lis.toml`` yet). ``run_window``: observations of one run;
    ``check_every``: seconds between periodic checks (due runs, QC interval holds); the QC interval itself
    is per rule set (``max_interval_hours``, default 24 h)."""

    run_window: timedelta = timedelta(minutes=30)
    check_every: float = 60.0
    timezone: str = DEFAULT_TIMEZONE  # the lab's calendar, for lot expiry dates

    def local_date(self, at: datetime) -> date:
        return at.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True, slots=True)
class _Cached:
    last_run_id: int
    rules: RuleSet
    history: QcHistory


class _Tx:
    """What one transaction did: events to publish after the commit."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.events: list[QcRunEvaluated] = []
        self.touched: list[int] = []


def _when(result: Result) -> datetime:
    return result.observed_at or result.received_at


class QcService:
    """Evaluates QC runs as they arrive and keeps the holds; thread-safe (one QC transaction at a time)."""

    def __init__(self, db: Database, bus: EventBus, settings: QcSettings | None = None) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings or QcSettings()
        self._lock = threading.RLock()
        self._histories: dict[Pair, _Cached] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # -- entry points -----------------------------------------------------------------------------
    def subscribe(self) -> None:
        """Evaluate QC observations on ``ResultsIngested`` (ARCHITECTURE.md principle 5)."""
        self.unsubscribe()
        self._unsubscribe = self.bus.subscribe(ResultsIngested, self.on_results_ingested)

    def unsubscribe(self) -> None:
        """Stop listening (the periodic catch-up still finds what arrives meanwhile)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_results_ingested(self, event: ResultsIngested) -> None:
        if event.qc_result_ids:
            self.process(event.qc_result_ids)

    def process(self, result_ids: Iterable[int], *, run_key: str | None = None,
                now: datetime | None = None) -> list[int]:
        """Put QC results into runs and evaluate the runs that are complete; returns the run ids touched.

        Idempotent: a result already in a run is skipped (reprocessed journal entries, repeated events).
        """
        ids = sorted(set(result_ids))
        if not ids:
            return []
        with self._lock:
            with self.db.write() as session:
                tx = _Tx(session, now or utcnow())
                rows = list(session.exec(select(Result).where(
                    col(Result.id).in_(ids), col(Result.is_qc).is_(True), col(Result.test_code).is_not(None),
                    Result.status != ResultStatus.UNMATCHED)).all())
                by_pair: dict[Pair, list[Result]] = {}
                for r in sorted(rows, key=lambda r: (_when(r), r.id or 0)):
                    by_pair.setdefault((r.instrument, r.test_code or ""), []).append(r)
                for pair in sorted(by_pair):  # in one order: two processes never deadlock
                    self._lock_pair(session, pair)
                done = set(session.exec(  # read after the locks: another process may just have done them
                    select(QcRunObservation.result_id).where(col(QcRunObservation.result_id).in_(ids))).all())
                for _, results in sorted(by_pair.items()):
                    for result in results:
                        if result.id not in done:
                            self._assign(tx, result, run_key)
            self._publish(tx)
        return sorted(set(tx.touched))

    def close_due_runs(self, now: datetime | None = None) -> list[int]:
        """Evaluate open runs whose window has passed (a level did not come): returns their ids."""
        now = now or utcnow()
        with self._lock:
            with self.db.write() as session:
                tx = _Tx(session, now)
                due = session.exec(select(QcRun).where(
                    QcRun.status == "open", col(QcRun.opened_at) <= now - self.settings.run_window)).all()
                for run in due:
                    self._lock_pair(session, (run.instrument, run.test_code))
                    session.refresh(run)
                    if run.status == "open":
                        self._evaluate(tx, run)
            self._publish(tx)
        return [e.run_id for e in tx.events]

    def check_intervals(self, now: datetime | None = None) -> list[int]:
        """Open ``no_qc_in_interval`` holds where no accepted run came within the interval (fail closed)."""
        changes = HoldChanges()
        with self._lock, self.db.write() as session:
            open_interval_holds(session, now or utcnow(), changes)
        if changes.opened:
            self.bus.publish(QcHoldsChanged(opened=tuple(changes.opened)))
        return changes.opened

    def catch_up(self, limit: int = 10_000) -> int:
        """Process QC results stored but never put into a run (an event missed by a crash)."""
        with self.db.read() as session:
            ids = [i for i in session.exec(
                select(Result.id).outerjoin(QcRunObservation, col(QcRunObservation.result_id) == Result.id)
                .where(col(Result.is_qc).is_(True), col(Result.test_code).is_not(None),
                       Result.status != ResultStatus.UNMATCHED, col(QcRunObservation.id).is_(None))
                .order_by(col(Result.id)).limit(limit)).all() if i is not None]
        self.process(ids)
        return len(ids)

    def record_corrective_action(self, hold_id: int, action: str, actor: str,
                                 now: datetime | None = None) -> dict[str, object]:
        """A validator's corrective action: the hold then waits for the next accepted run (see qc.holds)."""
        with self._lock, self.db.write() as session:
            hold = session.get(QcHold, hold_id)
            if hold is not None:  # not concurrently with an evaluation of the same pair
                self._lock_pair(session, (hold.instrument, hold.test_code))
                session.refresh(hold)
            entry = record_corrective_action(session, hold_id, action, actor, now or utcnow())
            return {"id": entry.id, "hold_id": entry.hold_id, "action": entry.action,
                    "recorded_by": entry.recorded_by, "recorded_at": entry.recorded_at.isoformat()}

    def enter_manual(self, *, actor: str, instrument: str, test_code: str, material_id: int, value: str,
                     lot_number: str | None = None, observed_at: datetime | None = None,
                     run_key: str | None = None, now: datetime | None = None) -> tuple[int, QcRun]:
        """A QC value typed by a technician: stored as a QC result, then the same path as analyser QC."""
        value = value.strip()
        if not value:
            raise QcInputError("a QC value is required")
        if observed_at is not None and observed_at.tzinfo is None:
            raise QcInputError("observed_at needs a time zone")
        now = now or utcnow()
        with self._lock:
            with self.db.write() as session:
                material = session.get(ControlMaterial, material_id)
                if material is None:
                    raise QcNotFound(f"control material {material_id} does not exist")
                if run_key:
                    existing = session.exec(select(QcRun).where(
                        QcRun.instrument == instrument, QcRun.test_code == test_code,
                        QcRun.run_key == run_key)).first()
                    if existing is not None and existing.status != "open":
                        raise QcConflict(f"QC run {run_key!r} of {test_code} on {instrument} was already evaluated")
                    if existing is not None and session.exec(select(QcRunObservation.id).where(
                            QcRunObservation.run_id == existing.id,
                            QcRunObservation.material_id == material_id)).first() is not None:
                        raise QcConflict(f"control {material.code!r} is already in QC run {run_key!r}")
                result = Result(instrument=instrument, accession=material.code[:64], test_code=test_code,
                                instrument_test_code=test_code, value=value, value_numeric=numeric_or_none(value),
                                is_qc=True, control_material=material.code[:100], control_lot=(lot_number or "")[:64],
                                control_level=material.level[:20], observed_at=observed_at or now, received_at=now,
                                result_status="F", status=ResultStatus.RECEIVED, updated_by=actor, updated_at=now,
                                comment="manual QC entry")
                session.add(result)
                session.flush()
                assert result.id is not None
                audit.record(session, actor, "qc.observation.manual", "result", result.id,
                             after={"instrument": instrument, "test_code": test_code, "material": material.code,
                                    "lot": lot_number or "", "value": value, "run_key": run_key or ""})
                result_id = result.id
            self.process([result_id], run_key=run_key, now=now)
        with self.db.read() as session:
            run = session.exec(select(QcRun).join(QcRunObservation, col(QcRunObservation.run_id) == QcRun.id)
                               .where(QcRunObservation.result_id == result_id)).one()
        return result_id, run

    # -- grouping ---------------------------------------------------------------------------------
    @staticmethod
    def _lock_pair(session: Session, pair: Pair) -> None:
        lock_pair(session, *pair)

    def _assign(self, tx: _Tx, result: Result, run_key: str | None) -> None:
        session = tx.session
        assert result.id is not None and result.test_code is not None
        at = _when(result)
        resolved = resolve_observation(session, result, at, self.settings.local_date(at))
        pair = (result.instrument, result.test_code)
        run = session.exec(select(QcRun).where(QcRun.instrument == pair[0], QcRun.test_code == pair[1],
                                               QcRun.status == "open").order_by(col(QcRun.id))).first()
        if run_key:
            named = session.exec(select(QcRun).where(QcRun.instrument == pair[0], QcRun.test_code == pair[1],
                                                     QcRun.run_key == run_key)).first()
            if named is not None and named.status != "open":
                raise QcConflict(f"QC run {run_key!r} of {pair[1]} on {pair[0]} was already evaluated")
            if named is None and run is not None:
                self._evaluate(tx, run)
            run = named
        elif run is not None and not self._fits(session, run, at, resolved.key):
            self._evaluate(tx, run)
            run = None
        if run is None:
            run = QcRun(instrument=pair[0], test_code=pair[1], run_key=(run_key or f"auto-{result.id}")[:100],
                        run_at=at, opened_at=tx.now)
            session.add(run)
            session.flush()
        assert run.id is not None
        target = resolved.target
        status = "flagged" if resolved.flags else ("establishing" if target and target.state != "active"
                                                   else "evaluated")
        z = None
        if status == "evaluated" and target is not None and resolved.value is not None:
            z = float((resolved.value - Decimal(target.mean or 0)) / Decimal(target.sd or 1))
        stored_value = str(resolved.value) if resolved.value is not None else result.value.strip()[:100]
        session.add(QcRunObservation(
            run_id=run.id, result_id=result.id, material_id=resolved.material.id if resolved.material else None,
            lot_id=resolved.lot.id if resolved.lot else None, target_id=target.id if target else None,
            material_key=resolved.key[:100], lot_number=resolved.lot.lot_number if resolved.lot else "",
            value=stored_value, target_mean=target.mean if target else None,
            target_sd=target.sd if target else None, z=z, observed_at=at, status=status,
            flag="; ".join(resolved.flags)[:200]))
        session.flush()
        tx.touched.append(run.id)
        if self._complete(session, run):
            self._evaluate(tx, run)

    def _fits(self, session: Session, run: QcRun, at: datetime, key: str) -> bool:
        if abs(at - run.run_at) > self.settings.run_window:
            return False
        keys = session.exec(select(QcRunObservation.material_key).where(QcRunObservation.run_id == run.id)).all()
        return key not in keys

    def _complete(self, session: Session, run: QcRun) -> bool:
        """Complete when every material with a target (lot in use, not expired) for the pair is present."""
        day = self.settings.local_date(run.run_at)
        expected = set(session.exec(
            select(ControlLot.material_id).join(QcTarget, col(QcTarget.lot_id) == ControlLot.id)
            .join(ControlMaterial, col(ControlMaterial.id) == ControlLot.material_id)
            .where(QcTarget.instrument == run.instrument, QcTarget.test_code == run.test_code,
                   col(ControlLot.in_use).is_(True), col(ControlMaterial.active).is_(True),
                   (col(ControlLot.expires_on).is_(None)) | (col(ControlLot.expires_on) >= day))
        ).all())
        present = set(session.exec(select(QcRunObservation.material_id).where(
            QcRunObservation.run_id == run.id)).all())
        return expected <= present

    # -- evaluation -------------------------------------------------------------------------------
    def _evaluate(self, tx: _Tx, run: QcRun) -> None:
        session = tx.session
        assert run.id is not None
        pair = (run.instrument, run.test_code)
        members = list(session.exec(select(QcRunObservation).where(QcRunObservation.run_id == run.id)
                                    .order_by(col(QcRunObservation.id))).all())
        eff = effective_rules(session, *pair)
        configured = eff.stored is not None or session.exec(select(QcTarget.id).where(
            QcTarget.instrument == pair[0], QcTarget.test_code == pair[1]).limit(1)).first() is not None
        run.status = "evaluated"
        run.evaluated_at = tx.now
        run.rules = eff.describe()
        flagged = [m for m in members if m.status == "flagged"]
        evaluable = [m for m in members if m.status == "evaluated"]
        changes = HoldChanges()
        if not configured:
            run.decision = QcDecision.CANNOT_EVALUATE
            run.reason = f"no QC target or rule set for {pair[1]} on {pair[0]}: not under QC, nothing held"
        elif flagged:
            run.decision = QcDecision.CANNOT_EVALUATE
            run.reason = "; ".join(f"result {m.result_id}: {m.flag}" for m in flagged)
        elif not evaluable:
            run.decision = QcDecision.ESTABLISHING
            run.reason = "observations collected to establish lab targets"
        else:
            try:
                decision = self._run_engine(session, run, evaluable, eff.rules)
            except QcInputError as exc:
                run.decision = QcDecision.CANNOT_EVALUATE
                run.reason = str(exc)
            else:
                run.decision = decision
        session.add(run)
        session.flush()
        establish_targets(session, members, tx.now)
        if run.decision == QcDecision.REJECT:
            open_failure_hold(session, run, QcHoldReason.REJECTED_RUN, tx.now, changes)
        elif run.decision == QcDecision.CANNOT_EVALUATE and configured:
            open_failure_hold(session, run, QcHoldReason.CANNOT_EVALUATE, tx.now, changes)
        elif run.decision in QcDecision.ACCEPTING:
            lift_after_accepted_run(session, run, tx.now, changes)
        audit.record(session, SYSTEM_ACTOR, "qc.run.evaluated", "qc_run", run.id,
                     after={"instrument": run.instrument, "test_code": run.test_code, "run_key": run.run_key,
                            "decision": run.decision, "reason": run.reason[:500]})
        log.info("QC run %d (%s on %s): %s", run.id, run.test_code, run.instrument, run.decision)
        tx.touched.append(run.id)
        tx.events.append(QcRunEvaluated(run.id, run.instrument, run.test_code, run.decision or "",
                                        tuple(changes.opened), tuple(changes.lifted)))

    def _run_engine(self, session: Session, run: QcRun, members: Sequence[QcRunObservation], rules: RuleSet) -> str:
        assert run.id is not None
        pair = (run.instrument, run.test_code)
        history = self._history(session, pair, rules, run.id)
        obs = [_observation(run, m) for m in members]
        decision, new_history = evaluate_new_run(history, obs, rules)
        for v in decision.violations:
            material_id = int(v.material[1:]) if v.material and v.material.startswith("m") else None
            session.add(QcViolation(run_id=run.id, rule=v.rule, scope=v.scope.value, severity=v.severity.value,
                                    material_id=material_id, result_ids=json.dumps([int(i) for i in v.observations])))
        self._histories[pair] = _Cached(run.id, rules, new_history)
        return decision.decision.value

    def _history(self, session: Session, pair: Pair, rules: RuleSet, current: int) -> QcHistory:
        """The pair's history: from memory when this process made the last decision, else from the tables."""
        last = session.exec(select(QcRun.id).where(
            QcRun.instrument == pair[0], QcRun.test_code == pair[1], QcRun.id != current,
            col(QcRun.decision).in_(QcDecision.EVALUATED)).order_by(col(QcRun.id).desc()).limit(1)).first()
        cached = self._histories.get(pair)
        if cached is not None and cached.last_run_id == last and cached.rules == rules:
            return cached.history
        if last is None:
            return QcHistory(pair[1])
        recent = session.exec(select(QcRun).where(
            QcRun.instrument == pair[0], QcRun.test_code == pair[1], QcRun.id != current,
            col(QcRun.decision).in_(QcDecision.EVALUATED)).order_by(col(QcRun.id).desc()).limit(HISTORY_RUNS)).all()
        kept: list[QcRun] = []
        for r in recent:
            if r.decision == QcDecision.REJECT and rules.reset_on_reject:
                break  # the across-run history restarts after a rejected run
            kept.append(r)
        kept.reverse()
        if not kept:
            return QcHistory(pair[1])
        by_run: dict[int, list[QcRunObservation]] = {}
        for m in session.exec(select(QcRunObservation).where(
                col(QcRunObservation.run_id).in_([r.id for r in kept]), QcRunObservation.status == "evaluated")
                .order_by(col(QcRunObservation.id))).all():
            by_run.setdefault(m.run_id, []).append(m)
        runs = [[_observation(r, m) for m in by_run[r.id]] for r in kept if r.id in by_run]
        return history_from_runs(runs, rules, pair[1])

    def _publish(self, tx: _Tx) -> None:
        for event in tx.events:
            self.bus.publish(event)


def _observation(run: QcRun, m: QcRunObservation) -> QcObservation:
    return QcObservation(run=str(run.id), material=m.material_key, lot=m.lot_number, value=Decimal(m.value),
                         mean=Decimal(m.target_mean or "0"), sd=Decimal(m.target_sd or "0"), analyte=run.test_code,
                         obs_id=m.result_id)

