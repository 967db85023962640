"""Is a patient result held by QC? The query the release workflow asks (issue 5, STANDARDS.md "Westgard QC").

This module is on the ``lis`` side and never imports ``qc``: the QC service (``qc/``) writes runs and holds
into the tables of ``lis.models.qc``; this reads them. Semantics, fail closed:

* **No QC configured → not held.** An analyte on an instrument with no QC target (any lot, any state) and
  no rule set is not under QC at all (e.g. a calculated test, or an analyser the lab does not run controls
  on); holding its results forever would block the laboratory for no safety gain. Configuring a target or a
  rule set puts the analyte under QC, and from then on everything below applies.
* **Rejected run** (``rejected_run``): the QC service opens a hold whose ``since`` is the time of the last
  accepted run before the rejected one (None when there was none). Every patient result of that analyte on
  that instrument observed at or after ``since`` is held until the hold is lifted: a validator records a
  corrective action (hold → ``awaiting_run``) and an accepted run evaluated after that lifts it.
* **Cannot evaluate** (``cannot_evaluate``): a run with a non-numeric control value, an unknown material,
  a missing target or an SD ≤ 0 holds exactly like a rejected run.
* **No QC in the interval** (``no_qc_in_interval``): a result observed at ``t`` is held when the latest
  accepted run (accept or warning) of its analyte on its instrument is at or before ``t − interval``, or
  there has never been one. The interval is the rule set's ``max_interval_hours`` (default 24 h). Computed
  here from the runs, so it holds even before the periodic check has written its ``no_qc_in_interval`` hold
  (which makes the gap visible and audited); the next accepted run lifts that hold and, being after the
  results, brackets them, so they are no longer held.

Times: a result's time is its ``observed_at`` (analyser clock, the same clock as the QC runs of that
instrument), else ``received_at``. Speed: :func:`held_results` answers a batch in five queries whatever its
size (results, configured pairs, rule sets, last accepted runs, open holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from lis.models import QcDecision, QcHold, QcHoldReason, QcHoldState, QcRuleSet, QcRun, QcTarget, Result

DEFAULT_INTERVAL = timedelta(hours=24)
_CHUNK = 500

Pair = tuple[str, str]  # (instrument, test_code)


@dataclass(frozen=True, slots=True)
class PairQcState:
    """What decides holds for one analyte on one instrument."""

    configured: bool
    interval: timedelta
    last_accepted_at: datetime | None
    holds: tuple[tuple[str, datetime | None], ...] = ()  # (reason, since) of every hold not lifted

    def hold_reason(self, at: datetime) -> str | None:
        """The reason a patient result observed at ``at`` is held, or None (precedence: QcHoldReason.ALL)."""
        if not self.configured:
            return None
        found = {reason for reason, since in self.holds if since is None or at >= since}
        if self.last_accepted_at is None or at >= self.last_accepted_at + self.interval:
            found.add(QcHoldReason.NO_QC_IN_INTERVAL)
        return next((r for r in QcHoldReason.ALL if r in found), None)


def configured_pairs(session: Session) -> set[Pair]:
    """Every (instrument, test_code) under QC: with a target (any lot, any state) or a rule set."""
    targets = session.exec(select(QcTarget.instrument, QcTarget.test_code).distinct()).all()
    rule_sets = session.exec(select(QcRuleSet.instrument, QcRuleSet.test_code)).all()
    return {(i, t) for i, t in (*targets, *rule_sets)}


def qc_states(session: Session, pairs: Iterable[Pair]) -> dict[Pair, PairQcState]:
    """Hold-relevant state of each pair, in four queries."""
    wanted = set(pairs)
    if not wanted:
        return {}
    instruments = sorted({i for i, _ in wanted})
    codes = sorted({t for _, t in wanted})

    def in_pairs(rows: Iterable[Sequence[object]]) -> list[Sequence[object]]:
        return [r for r in rows if (r[0], r[1]) in wanted]

    configured = {
        (str(r[0]), str(r[1]))
        for r in in_pairs(session.exec(
            select(QcTarget.instrument, QcTarget.test_code).distinct()
            .where(col(QcTarget.instrument).in_(instruments), col(QcTarget.test_code).in_(codes))
        ).all())
    }
    intervals: dict[Pair, timedelta] = {}
    for r in in_pairs(session.exec(
        select(QcRuleSet.instrument, QcRuleSet.test_code, QcRuleSet.max_interval_hours)
        .where(col(QcRuleSet.instrument).in_(instruments), col(QcRuleSet.test_code).in_(codes))
    ).all()):
        pair = (str(r[0]), str(r[1]))
        configured.add(pair)
        intervals[pair] = timedelta(hours=float(r[2]))  # type: ignore[arg-type]
    last_accepted = {
        (str(r[0]), str(r[1])): r[2]
        for r in in_pairs(session.exec(
            select(QcRun.instrument, QcRun.test_code, func.max(QcRun.run_at))
            .where(col(QcRun.instrument).in_(instruments), col(QcRun.test_code).in_(codes),
                   col(QcRun.decision).in_(QcDecision.ACCEPTING))
            .group_by(QcRun.instrument, QcRun.test_code)
        ).all())
    }
    holds: dict[Pair, list[tuple[str, datetime | None]]] = {}
    for r in in_pairs(session.exec(
        select(QcHold.instrument, QcHold.test_code, QcHold.reason, QcHold.since)
        .where(col(QcHold.instrument).in_(instruments), col(QcHold.test_code).in_(codes),
               QcHold.state != QcHoldState.LIFTED)
    ).all()):
        holds.setdefault((str(r[0]), str(r[1])), []).append((str(r[2]), r[3]))  # type: ignore[arg-type]
    return {
        pair: PairQcState(
            configured=pair in configured,
            interval=intervals.get(pair, DEFAULT_INTERVAL),
            last_accepted_at=last_accepted.get(pair),  # type: ignore[arg-type]
            holds=tuple(holds.get(pair, ())),
        )
        for pair in wanted
    }


def is_held(session: Session, instrument: str, test_code: str, at: datetime) -> str | None:
    """Reason a patient result of ``test_code`` on ``instrument`` observed at ``at`` is held, or None."""
    return qc_states(session, [(instrument, test_code)])[(instrument, test_code)].hold_reason(at)


def held_results(session: Session, result_ids: Iterable[int]) -> dict[int, str]:
    """Held patient results among ``result_ids``: result id → hold reason (absent: not held by QC).

    QC observations themselves, results without a catalogue test and unknown ids are never in the answer.
    """
    ids = sorted(set(result_ids))
    rows: list[tuple[int, str, str, datetime]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for rid, instrument, test_code, observed_at, received_at in session.exec(
            select(Result.id, Result.instrument, Result.test_code, Result.observed_at, Result.received_at)
            .where(col(Result.id).in_(chunk), col(Result.is_qc).is_(False), col(Result.test_code).is_not(None))
        ).all():
            assert rid is not None and test_code is not None
            rows.append((rid, instrument, test_code, observed_at or received_at))
    states = qc_states(session, {(r[1], r[2]) for r in rows})
    out: dict[int, str] = {}
    for rid, instrument, test_code, at in rows:
        reason = states[(instrument, test_code)].hold_reason(at)
        if reason is not None:
            out[rid] = reason
    return out
