"""Release holds: opening, corrective action and lifting (STANDARDS.md "Westgard QC"; issue 5 §5).

Life cycle of a ``rejected_run`` or ``cannot_evaluate`` hold (one open hold per analyte × instrument × reason):

1. a rejected (or not evaluable) run opens it, ``since`` = time of the last accepted run before that run
   (None: there was none), so every patient result since the last accepted run is held;
2. a validator records a corrective action → state ``awaiting_run`` (an accepted run evaluated *before*
   the corrective action does not lift it);
3. the next accepted run (decision accept or warning) evaluated after that lifts it; ``lifted_by`` is the
   validator who recorded the corrective action, ``lifted_by_run_id`` the run.

A further rejected / not evaluable run while the hold is ``awaiting_run`` puts it back to ``open`` (a new
corrective action is needed). A ``no_qc_in_interval`` hold (opened by the periodic check) needs no
corrective action: the next accepted run lifts it. Every change is audited (``qc.hold.opened``,
``qc.hold.reopened``, ``qc.corrective_action``, ``qc.hold.lifted``). What the holds mean for patient
results is in ``lis.services.qc_holds``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from lis.models import QcCorrectiveAction, QcDecision, QcHold, QcHoldReason, QcHoldState, QcRun
from lis.services import audit
from lis.services.qc_holds import PairQcState, configured_pairs, qc_states
from qc.errors import QcConflict, QcNotFound
from qc.model import QcInputError

SYSTEM_ACTOR = "qc"


@dataclass
class HoldChanges:
    """Hold ids opened (or reopened) and lifted in one transaction (published after commit)."""

    opened: list[int] = field(default_factory=list)
    lifted: list[int] = field(default_factory=list)


def _hold_dict(hold: QcHold) -> dict[str, object]:
    return {"reason": hold.reason, "state": hold.state, "since": hold.since.isoformat() if hold.since else None,
            "run_id": hold.run_id, "instrument": hold.instrument, "test_code": hold.test_code}


def _unlifted(session: Session, instrument: str, test_code: str, reason: str | None = None) -> list[QcHold]:
    stmt = select(QcHold).where(QcHold.instrument == instrument, QcHold.test_code == test_code,
                                QcHold.state != QcHoldState.LIFTED)
    if reason is not None:
        stmt = stmt.where(QcHold.reason == reason)
    return list(session.exec(stmt.order_by(col(QcHold.id))).all())


def last_accepted_before(session: Session, run: QcRun) -> datetime | None:
    """Time of the last accepted run (accept or warning) of the run's pair at or before it."""
    return session.exec(
        select(func.max(QcRun.run_at)).where(
            QcRun.instrument == run.instrument, QcRun.test_code == run.test_code, QcRun.id != run.id,
            col(QcRun.decision).in_(QcDecision.ACCEPTING), col(QcRun.run_at) <= run.run_at)
    ).first()


def open_failure_hold(session: Session, run: QcRun, reason: str, now: datetime, changes: HoldChanges) -> QcHold:
    """Open (or reopen) the hold of a rejected or not evaluable run."""
    assert run.id is not None
    existing = _unlifted(session, run.instrument, run.test_code, reason)
    if existing:
        hold = existing[0]
        hold.run_id = run.id
        if hold.state == QcHoldState.AWAITING_RUN:
            before = _hold_dict(hold)
            hold.state = QcHoldState.OPEN
            audit.record(session, SYSTEM_ACTOR, "qc.hold.reopened", "qc_hold", hold.id or 0, before=before,
                         after=_hold_dict(hold), run_id=run.id)
            changes.opened.append(hold.id or 0)
        session.add(hold)
        return hold
    hold = QcHold(instrument=run.instrument, test_code=run.test_code, reason=reason,
                  since=last_accepted_before(session, run), created_at=now, run_id=run.id)
    session.add(hold)
    session.flush()
    audit.record(session, SYSTEM_ACTOR, "qc.hold.opened", "qc_hold", hold.id or 0, after=_hold_dict(hold))
    changes.opened.append(hold.id or 0)
    return hold


def lift_after_accepted_run(session: Session, run: QcRun, now: datetime, changes: HoldChanges) -> None:
    """An accepted run lifts interval holds, and failure holds whose corrective action is recorded."""
    for hold in _unlifted(session, run.instrument, run.test_code):
        if hold.reason != QcHoldReason.NO_QC_IN_INTERVAL and hold.state != QcHoldState.AWAITING_RUN:
            continue  # a failure hold needs its corrective action first
        action = session.get(QcCorrectiveAction, hold.corrective_action_id) if hold.corrective_action_id else None
        who = action.recorded_by if action is not None else SYSTEM_ACTOR
        before = _hold_dict(hold)
        hold.state = QcHoldState.LIFTED
        hold.lifted_at = now
        hold.lifted_by = who
        hold.lifted_by_run_id = run.id
        session.add(hold)
        audit.record(session, SYSTEM_ACTOR, "qc.hold.lifted", "qc_hold", hold.id or 0, before=before,
                     after=_hold_dict(hold), run_id=run.id, lifted_by=who,
                     corrective_action=hold.corrective_action)
        changes.lifted.append(hold.id or 0)


def record_corrective_action(session: Session, hold_id: int, action: str, actor: str,
                             now: datetime) -> QcCorrectiveAction:
    """A validator's corrective action on a hold: the hold waits for the next accepted run."""
    action = action.strip()
    if len(action) < 3:
        raise QcInputError("describe the corrective action (at least 3 characters)")
    hold = session.get(QcHold, hold_id)
    if hold is None:
        raise QcNotFound(f"QC hold {hold_id} does not exist")
    if hold.state == QcHoldState.LIFTED:
        raise QcConflict(f"QC hold {hold_id} was already lifted")
    entry = QcCorrectiveAction(hold_id=hold_id, instrument=hold.instrument, test_code=hold.test_code,
                               action=action, recorded_by=actor, recorded_at=now)
    session.add(entry)
    session.flush()
    before = _hold_dict(hold)
    hold.state = QcHoldState.AWAITING_RUN
    hold.corrective_action = action
    hold.corrective_action_id = entry.id
    session.add(hold)
    audit.record(session, actor, "qc.corrective_action", "qc_hold", hold_id, before=before,
                 after=_hold_dict(hold), corrective_action=action, corrective_action_id=entry.id)
    return entry


def lock_pair(session: Session, instrument: str, test_code: str) -> None:
    """Serialise QC writes of one analyte × instrument across LIS processes (PostgreSQL advisory lock held
    to the end of the transaction; SQLite write transactions are serial already)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"qc:{instrument}:{test_code}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _interval_expired(state: PairQcState, now: datetime) -> bool:
    last = state.last_accepted_at
    return last is None or now >= last + state.interval


def open_interval_holds(session: Session, now: datetime, changes: HoldChanges) -> None:
    """Fail closed: a hold for every analyte under QC without an accepted run within its interval."""
    candidates = [pair for pair, state in qc_states(session, configured_pairs(session)).items()
                  if _interval_expired(state, now)]
    for instrument, test_code in sorted(candidates):
        lock_pair(session, instrument, test_code)  # an accepted run may have been committed meanwhile
        state = qc_states(session, [(instrument, test_code)])[(instrument, test_code)]
        if not _interval_expired(state, now):
            continue
        if _unlifted(session, instrument, test_code, QcHoldReason.NO_QC_IN_INTERVAL):
            continue
        last = state.last_accepted_at
        hold = QcHold(instrument=instrument, test_code=test_code, reason=QcHoldReason.NO_QC_IN_INTERVAL,
                      since=last + state.interval if last is not None else None, created_at=now)
        session.add(hold)
        session.flush()
        audit.record(session, SYSTEM_ACTOR, "qc.hold.opened", "qc_hold", hold.id or 0, after=_hold_dict(hold),
                     interval_hours=state.interval.total_seconds() / 3600)
        changes.opened.append(hold.id or 0)


def hold_dict(hold: QcHold) -> dict[str, object]:
    """A hold for the API."""
    return {"id": hold.id, "instrument": hold.instrument, "test_code": hold.test_code, "reason": hold.reason,
            "state": hold.state, "since": hold.since.isoformat() if hold.since else None,
            "created_at": hold.created_at.isoformat(), "run_id": hold.run_id,
            "corrective_action": hold.corrective_action,
            "lifted_at": hold.lifted_at.isoformat() if hold.lifted_at else None, "lifted_by": hold.lifted_by,
            "lifted_by_run_id": hold.lifted_by_run_id}
