"""QC status per instrument × analyte for the QC dashboard: accepted / warning / rejected / held / no_qc.

``status``: ``rejected`` when an open rejected-run hold applies now, ``held`` for any other hold (no QC in
the interval, not evaluable run), else the last Westgard decision (``accepted`` / ``warning``), ``no_qc``
when the analyte is not under QC or has no decided run yet. ``hold_reason`` is what
``lis.services.qc_holds`` answers for a patient result observed now.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import QcDecision, QcHoldReason, QcRun
from lis.services.qc_holds import configured_pairs, qc_states

_STATUS_OF = {QcDecision.ACCEPT: "accepted", QcDecision.WARNING: "warning", QcDecision.REJECT: "rejected"}


def qc_status(session: Session, now: datetime, instrument: str | None = None) -> list[dict[str, object]]:
    """One row per (instrument, analyte) under QC or with QC runs, sorted."""
    pairs = configured_pairs(session) | {
        (str(i), str(t)) for i, t in session.exec(select(QcRun.instrument, QcRun.test_code).distinct()).all()}
    if instrument is not None:
        pairs = {p for p in pairs if p[0] == instrument}
    states = qc_states(session, pairs)
    last_runs: dict[tuple[str, str], QcRun] = {}
    last_westgard: dict[tuple[str, str], QcRun] = {}
    for run in session.exec(select(QcRun).where(col(QcRun.decision).is_not(None)).order_by(col(QcRun.id))).all():
        pair = (run.instrument, run.test_code)
        if pair in pairs:
            last_runs[pair] = run
            if run.decision in QcDecision.EVALUATED:
                last_westgard[pair] = run
    out: list[dict[str, object]] = []
    for pair in sorted(pairs):
        state = states[pair]
        reason = state.hold_reason(now)
        last = last_runs.get(pair)
        last_decided = last_westgard.get(pair)
        if not state.configured:
            status = "no_qc"
        elif reason == QcHoldReason.REJECTED_RUN:
            status = "rejected"
        elif reason is not None:
            status = "held"
        elif last_decided is not None and last_decided.decision is not None:
            status = _STATUS_OF[last_decided.decision]
        else:
            status = "no_qc"
        out.append({
            "instrument": pair[0], "test_code": pair[1], "status": status, "configured": state.configured,
            "hold_reason": reason, "open_holds": len(state.holds),
            "last_run": None if last is None else {"id": last.id, "run_key": last.run_key,
                                                   "run_at": last.run_at.isoformat(), "decision": last.decision},
            "last_accepted_at": state.last_accepted_at.isoformat() if state.last_accepted_at else None,
        })
    return out
