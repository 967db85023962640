"""Lab-established targets (issue 5 §1): a target created with ``source="lab"`` and no mean/SD is in state
``establishing``; its observations are collected (run decision ``establishing``, no Westgard evaluation),
and once ``n_establish`` of them exist (default 20, one per run) the mean and SD of the first N
(:func:`qc.stats.establish_target`, exact decimals) become the target and it turns ``active``. The
Westgard history of that lot starts with the next run. Audited as ``qc.target.established``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from lis.models import QcRunObservation, QcTarget
from lis.services import audit
from qc.holds import SYSTEM_ACTOR
from qc.model import QcInputError
from qc.stats import establish_target


def establish_targets(session: Session, members: Sequence[QcRunObservation], now: datetime) -> list[int]:
    """Activate the establishing targets of these observations that have enough values; returns their ids."""
    activated: list[int] = []
    for target_id in sorted({m.target_id for m in members if m.status == "establishing" and m.target_id}):
        target = session.get(QcTarget, target_id)
        if target is None or target.state != "establishing":
            continue
        values = session.exec(select(QcRunObservation.value).where(
            QcRunObservation.target_id == target_id, QcRunObservation.status == "establishing")
            .order_by(col(QcRunObservation.observed_at), col(QcRunObservation.id))).all()
        if len(values) < target.n_establish:
            continue
        try:
            established = establish_target(list(values), target.n_establish)
        except QcInputError as exc:  # e.g. no spread: stays establishing, the note says why
            target.note = f"not established: {exc}"[:500]
            session.add(target)
            continue
        before = {"state": target.state, "mean": target.mean, "sd": target.sd}
        target.mean, target.sd = str(established.mean), str(established.sd)
        target.state = "active"
        target.established_at = now
        target.note = f"established from {established.n} runs"
        session.add(target)
        audit.record(session, SYSTEM_ACTOR, "qc.target.established", "qc_target", target_id, before=before,
                     after={"state": "active", "mean": target.mean, "sd": target.sd, "n": established.n})
        activated.append(target_id)
    return activated
