"""The result-workflow service: one object the API, the web pages and the composition root use.

* :meth:`WorkflowService.evaluate` — evaluation + autoverification of newly arrived results (subscribed to
  ``ResultsIngested`` by :meth:`subscribe`; :meth:`evaluate_received` catches up at start-up).
* :meth:`act` / :meth:`batch` — validate, release, rerun, reject, amend (one transaction each).
* :attr:`release_hooks` — callables ``(session, released_results, correction)`` run inside every release
  transaction (manual, batch, auto-release, amendment); ``ResultReleased`` is published after the commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from lis.db import Database
from lis.events import EventBus, ResultsIngested
from lis.models import Result, ResultStatus, SectionPolicy, utcnow
from lis.services.catalog import CatalogCache
from lis.services.workflow import critical, simulator, tat
from lis.services.workflow.actions import ActionOutcome, BatchOutcome, perform, perform_batch
from lis.services.workflow.autoverify import RuleSetSpec
from lis.services.workflow.calculated import compute_calculated
from lis.services.workflow.evaluation import AUTOVERIFICATION_ACTOR, EvaluationBatch, Evaluator, HoldQuery
from lis.services.workflow.policies import load_policies, validate_rule_set
from lis.services.workflow.reflex import ReflexAddition, apply_reflex
from lis.services.workflow.release import ReleaseHook, publish_released, run_release_hooks

log = logging.getLogger(__name__)


@dataclass
class EvaluationSummary:
    evaluated: int = 0
    autoverified: int = 0
    pending: int = 0
    released: list[int] = field(default_factory=list)
    calculated: list[int] = field(default_factory=list)
    reflex: list[ReflexAddition] = field(default_factory=list)

    def add(self, batch: EvaluationBatch) -> None:
        self.evaluated += len(batch.evaluated)
        self.autoverified += batch.count(ResultStatus.AUTOVERIFIED) + batch.count(ResultStatus.RELEASED)
        self.pending += batch.count(ResultStatus.PENDING)
        self.released += batch.released_ids


def _default_holds() -> HoldQuery:
    from lis.services.qc_holds import held_results

    return held_results  # type: ignore[return-value]


class WorkflowService:
    """Result workflow over one database and event bus."""

    def __init__(self, db: Database, bus: EventBus, catalog: CatalogCache | None = None,
                 holds: HoldQuery | None = None, chunk: int = 2000) -> None:
        self.db = db
        self.bus = bus
        self.catalog = catalog or CatalogCache(db)
        self.evaluator = Evaluator(holds or _default_holds())
        self.release_hooks: list[ReleaseHook] = []
        self.chunk = chunk
        self._unsubscribe: Callable[[], None] | None = None
        self._lock = threading.Lock()

    # -- wiring -----------------------------------------------------------------------------------------------
    def add_release_hook(self, hook: ReleaseHook) -> Callable[[], None]:
        """Register ``hook(session, released_results, correction)``; returns a function that removes it."""
        self.release_hooks.append(hook)

        def remove() -> None:
            if hook in self.release_hooks:
                self.release_hooks.remove(hook)

        return remove

    def subscribe(self) -> None:
        """Evaluate every patient result on arrival (``ResultsIngested``, published after the ingest commit)."""
        with self._lock:
            if self._unsubscribe is None:
                self._unsubscribe = self.bus.subscribe(ResultsIngested, self.on_results_ingested)

    def unsubscribe(self) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def on_results_ingested(self, event: ResultsIngested) -> None:
        if event.result_ids:
            self.evaluate(event.result_ids)

    # -- evaluation -------------------------------------------------------------------------------------------
    def _durable(self) -> bool:
        """Evaluation is redone from ``received`` after a crash (not durable) unless it may auto-release."""
        with self.db.read() as session:
            return session.exec(select(SectionPolicy.section).where(col(SectionPolicy.auto_release))).first() \
                is not None

    def evaluate(self, result_ids: Sequence[int]) -> EvaluationSummary:
        """Evaluate and autoverify results still ``received`` (others are skipped): one transaction per chunk."""
        summary = EvaluationSummary()
        ids = sorted(set(result_ids))
        if not ids:
            return summary
        durable = self._durable()
        for start in range(0, len(ids), self.chunk):
            part = ids[start:start + self.chunk]
            released: list[Result] = []
            orders: list[int] = []
            with self.db.write(durable=durable) as session:
                now = utcnow()
                policies = load_policies(session)
                batch = self.evaluator.apply(session, part, policies, now)
                summary.reflex += apply_reflex(session, batch.evaluated, policies)
                calculated = compute_calculated(session, batch.order_ids, policies, now)
                if calculated:
                    more = self.evaluator.apply(session, calculated, policies, now)
                    summary.calculated += calculated
                    batch.evaluated += more.evaluated
                summary.add(batch)
                if batch.released_ids:
                    released = list(session.exec(select(Result).where(col(Result.id).in_(batch.released_ids))).all())
                    orders = run_release_hooks(session, self.release_hooks, released, False)
            publish_released(self.bus, released, orders, False, AUTOVERIFICATION_ACTOR)
        log.info("evaluated %d results: %d autoverified, %d pending, %d released", summary.evaluated,
                 summary.autoverified, summary.pending, len(summary.released))
        return summary

    def evaluate_received(self, limit: int = 1_000_000) -> int:
        """Catch up: evaluate patient results left ``received`` (missed event, crash). Returns the count."""
        with self.db.read() as session:
            ids = [i for i in session.exec(
                select(Result.id).where(Result.status == ResultStatus.RECEIVED, col(Result.is_qc).is_(False),
                                        col(Result.test_code).is_not(None)).order_by(col(Result.id)).limit(limit)
            ).all() if i is not None]
        return self.evaluate(ids).evaluated if ids else 0

    # -- human actions ----------------------------------------------------------------------------------------
    def act(self, result_id: int, action: str, version: int, *, actor: str, role: str, reason: str = "",
            value: str | None = None) -> ActionOutcome:
        """One action (validate | release | rerun | reject | amend) on one result, with the version check."""
        with self.db.write() as session:
            outcome = perform(session, self.evaluator, result_id=result_id, action=action, version=version,
                              actor=actor, role=role, reason=reason, value=value, now=utcnow())
            orders = run_release_hooks(session, self.release_hooks, outcome.released, outcome.correction)
        publish_released(self.bus, outcome.released, orders, outcome.correction, actor)
        return outcome

    def batch(self, action: str, result_ids: Sequence[int], *, actor: str, role: str,
              versions: dict[int, int] | None = None, confirm_critical: bool = False,
              confirm_held: bool = False) -> BatchOutcome:
        """Validate or release many results in one transaction; the skipped ones come back with reasons."""
        with self.db.write() as session:
            outcome = perform_batch(session, self.evaluator, action=action, result_ids=result_ids,
                                    versions=versions, actor=actor, role=role, confirm_critical=confirm_critical,
                                    confirm_held=confirm_held, now=utcnow())
            released = outcome.released
            corrections = [r for r in released if r.revision > 0]
            plain = [r for r in released if r.revision == 0]
            orders = run_release_hooks(session, self.release_hooks, plain, False)
            orders_c = run_release_hooks(session, self.release_hooks, corrections, True)
        publish_released(self.bus, plain, orders, False, actor)
        publish_released(self.bus, corrections, orders_c, True, actor)
        return outcome

    def batch_ids(self, session: Session, *, specimen_id: str | None = None, status: Sequence[str] | None = None,
                  test_code: str | None = None, instrument: str | None = None, limit: int = 5000) -> list[int]:
        """Result ids of a specimen or a filtered worklist (for :meth:`batch`)."""
        stmt = select(Result.id).where(col(Result.is_qc).is_(False)).order_by(col(Result.id)).limit(limit)
        if specimen_id:
            stmt = stmt.where(Result.accession == specimen_id)
        if status:
            stmt = stmt.where(col(Result.status).in_(list(status)))
        if test_code:
            stmt = stmt.where(Result.test_code == test_code)
        if instrument:
            stmt = stmt.where(Result.instrument == instrument)
        return [i for i in session.exec(stmt).all() if i is not None]

    # -- critical values --------------------------------------------------------------------------------------
    def notify_critical(self, result_id: int, *, actor: str, notified: str, method: str, read_back: bool,
                        notified_at: datetime | None = None, comment: str = "") -> Any:
        with self.db.write() as session:
            return critical.record_notification(session, result_id, actor, notified=notified, method=method,
                                                read_back=read_back, notified_at=notified_at, comment=comment)

    def pending_criticals(self, limit: int = 500) -> list[critical.PendingCritical]:
        with self.db.read() as session:
            return critical.pending_criticals(session, limit)

    # -- simulator and reports --------------------------------------------------------------------------------
    def simulate(self, rule_sets: dict[str, dict[str, Any]] | None = None, test_codes: Sequence[str] = (), *,
                 since: datetime | None = None, until: datetime | None = None) -> simulator.SimulationReport:
        """AUTO15: candidate rule sets (test code → definition) or the saved ones of ``test_codes``."""
        with self.db.read() as session:
            specs: dict[str, RuleSetSpec] = {}
            for code, definition in (rule_sets or {}).items():
                specs[code] = validate_rule_set(session, code, **definition)
            saved = load_policies(session).rule_sets
            for code in test_codes:
                if code not in specs:
                    specs[code] = saved.get(code) or validate_rule_set(session, code)
            return simulator.simulate(session, self.evaluator, specs, since=since, until=until)

    def tat_report(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        with self.db.read() as session:
            return tat.tat_report(session, since, until)
